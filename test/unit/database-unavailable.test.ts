/** Which database errors are "unavailable" (answered 503 with Retry-After), which are bugs (500). */
import { describe, expect, it } from 'vitest';
import { isDatabaseUnavailable } from '../../src/infra/database.ts';

describe('isDatabaseUnavailable', () => {
  it.each([
    ['ECONNREFUSED', { code: 'ECONNREFUSED' }],
    ['08006 connection failure', { code: '08006' }],
    ['53300 too many connections', { code: '53300' }],
    ['53200 out of memory', { code: '53200' }],
    ['57P01 admin shutdown', { code: '57P01' }],
    ['57P03 cannot connect now', { code: '57P03' }],
    ['wrapped in a cause', { message: 'x', cause: { code: '53300' } }],
  ])('%s → unavailable', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(true);
  });

  it.each([
    ['22021 invalid byte sequence (a NUL in a value)', { code: '22021' }],
    ['23505 unique violation', { code: '23505' }],
    ['42P01 undefined table', { code: '42P01' }],
    ['a plain error', new Error('boom')],
  ])('%s → a bug, not an outage', (_name, error) => {
    expect(isDatabaseUnavailable(error)).toBe(false);
  });
});
