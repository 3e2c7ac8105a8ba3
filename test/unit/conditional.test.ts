/** Entity tags, If-None-Match (RFC 9110 §8.8.3, §13.1.2) and Prefer: wait (RFC 7240 §4.3). */
import { describe, expect, it } from 'vitest';
import {
  ifNoneMatchMatches,
  isIfNoneMatchAny,
  MAX_WAIT_SECONDS,
  preferredWaitSeconds,
  weakETag,
} from '../../src/http/conditional.ts';

const V = 'q3V9cJmXo2LbT8wz1KpE4a';

describe('weakETag', () => {
  it('is W/ and the quoted version', () => {
    expect(weakETag(V)).toBe(`W/"${V}"`);
  });
});

describe('If-None-Match (weak comparison)', () => {
  it.each([
    [`W/"${V}"`, true],
    [`"${V}"`, true],
    [V, true],
    [`W/"other", W/"${V}"`, true],
    [` W/"${V}" `, true],
    ['*', true],
    ['W/"other"', false],
    [`W/"${V}x"`, false],
    [`W/"${V.slice(0, -1)}"`, false],
    ['', false],
    [',,,', false],
    ['W/', false],
    ['"', false],
  ])('%j matches: %s', (header, expected) => {
    expect(ifNoneMatchMatches(header, V)).toBe(expected);
  });

  it('no header: no condition', () => {
    expect(ifNoneMatchMatches(undefined, V)).toBe(false);
  });

  it('* alone is "any"', () => {
    expect(isIfNoneMatchAny('*')).toBe(true);
    expect(isIfNoneMatchAny(' * ')).toBe(true);
    expect(isIfNoneMatchAny(`*, W/"${V}"`)).toBe(false);
    expect(isIfNoneMatchAny(undefined)).toBe(false);
  });
});

describe('Prefer: wait', () => {
  it.each([
    ['wait=10', 10],
    ['WAIT=10', 10],
    ['wait = 7', 7],
    ['wait="5"', 5],
    ['respond-async, wait=10', 10],
    ['return=minimal; foo=bar, wait=3; x=y', 3],
    ['wait=30', 30],
    ['wait=31', MAX_WAIT_SECONDS],
    ['wait=3600', MAX_WAIT_SECONDS],
    ['wait=99999999999999999999999999', MAX_WAIT_SECONDS],
    ['wait=0', 0],
    ['wait=1, wait=20', 1],
  ])('%j → %s', (header, expected) => {
    expect(preferredWaitSeconds(header)).toBe(expected);
  });

  it.each(['wait', 'wait=', 'wait=-1', 'wait=1.5', 'wait=soon', 'return=minimal', '', 'waiting=5'])(
    '%j: no wait it understands',
    (header) => {
      expect(preferredWaitSeconds(header)).toBeUndefined();
    },
  );

  it('reads repeated Prefer headers as one list', () => {
    expect(preferredWaitSeconds(['respond-async', 'wait=4'])).toBe(4);
    expect(preferredWaitSeconds(undefined)).toBeUndefined();
  });
});
