import { describe, expect, it } from 'vitest';
import { devLogLine } from '../../devstack/log-lines.ts';

describe('devLogLine: the development terminal form of a JSON log line', () => {
  it.each([
    [
      { level: 30, msg: 'checkout authorized by the customer', checkoutId: 'chk_1', status: 'authorized' },
      'checkout authorized by the customer checkout=chk_1 status=authorized',
    ],
    [
      {
        level: 30,
        msg: 'checkout chk_2 failed: invalid_grant',
        checkoutId: 'chk_2',
        status: 'failed',
        code: 'invalid_grant',
      },
      'checkout chk_2 failed: invalid_grant',
    ],
    [
      {
        level: 40,
        msg: 'bank unreachable; retrying',
        checkoutId: 'chk_3',
        code: 'bank_unavailable',
        retryInMs: 2000,
      },
      'WARN bank unreachable; retrying checkout=chk_3 code=bank_unavailable retry_in_ms=2000',
    ],
    [{ level: 50, msg: 'worker error', err: 'connection refused' }, 'ERROR worker error: connection refused'],
    [
      { level: 40, msg: 'job failed', job: 'ciba-start', err: { message: 'boom' } },
      'WARN job failed job=ciba-start: boom',
    ],
    [{ level: 30, msg: 'GET /v1/checkouts/chk_4 200 4.1 ms' }, 'GET /v1/checkouts/chk_4 200 4.1 ms'],
    [
      { level: 30, msg: 'POST /v1/checkouts 202 71.2 ms', method: 'POST', status: 202, ms: 71.2 },
      'POST /v1/checkouts 202 71.2 ms',
    ],
    [
      { level: 30, msg: 'GET /v1/banks 200 0.9 ms', status: 200, clientRequestId: 'my-trace-123' },
      'GET /v1/banks 200 0.9 ms client_request_id=my-trace-123',
    ],
  ])('%j → %s', (entry, expected) => {
    expect(devLogLine(JSON.stringify(entry))).toBe(expected);
  });

  it('passes through what is not a JSON object', () => {
    expect(devLogLine('Server listening')).toBe('Server listening');
    expect(devLogLine('[1,2]')).toBe('[1,2]');
    expect(devLogLine('42')).toBe('42');
  });
});
