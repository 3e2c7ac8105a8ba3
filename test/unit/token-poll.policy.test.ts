/**
 * The token poll policy, row by row (src/jobs/token-poll.policy.ts): every kind of bank answer
 * against the decision it must lead to, without a database or a bank.
 */
import { describe, expect, it } from 'vitest';
import { BankError, type TokenPollOutcome } from '../../src/integrations/bank.client.ts';
import { decideBeforePoll, decidePollAnswer, type PollState } from '../../src/jobs/token-poll.policy.ts';

/** A backoff that says which error count it was asked about, so the table can check both. */
const backoff = (errors: number) => errors * 1_000;
const fresh: PollState = { pollIntervalS: null, stepErrors: 0 };
const after3Errors: PollState = { pollIntervalS: 7, stepErrors: 3 };
const tokens = { accessToken: 'at', idToken: 'id', expiresIn: 60 };

describe('before asking', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    ['past the expiry', now - 1, true, { kind: 'settle', to: 'expired', failure: { code: 'expired_token' } }],
    [
      'exactly at the expiry',
      now,
      true,
      { kind: 'settle', to: 'expired', failure: { code: 'expired_token' } },
    ],
    [
      'bank no longer configured',
      now + 1,
      false,
      {
        kind: 'settle',
        to: 'failed',
        failure: { code: 'configuration_error', message: 'bank b1 is no longer configured' },
      },
    ],
    ['expired and unconfigured: expiry first', now - 1, false, { kind: 'settle', to: 'expired' }],
  ])('%s', (_name, expiresAt, configured, expected) => {
    expect(decideBeforePoll({ expiresAt: new Date(expiresAt), bankId: 'b1' }, now, configured)).toMatchObject(
      expected,
    );
  });

  it('finishes an answer stored in time even past the expiry', () => {
    expect(
      decideBeforePoll(
        { expiresAt: new Date(now - 60_000), bankId: 'b1', storedAnswer: 'v2.sealed' },
        now,
        true,
      ),
    ).toBeNull();
  });

  it('gives a stored answer ten minutes past the expiry, not for ever', () => {
    const stored = { bankId: 'b1', storedAnswer: 'v2.sealed' };
    expect(decideBeforePoll({ ...stored, expiresAt: new Date(now - 9 * 60_000) }, now, true)).toBeNull();
    expect(decideBeforePoll({ ...stored, expiresAt: new Date(now - 10 * 60_000) }, now, true)).toMatchObject({
      kind: 'settle',
      to: 'expired',
    });
  });

  it('asks when neither', () => {
    expect(decideBeforePoll({ expiresAt: new Date(now + 1), bankId: 'b1' }, now, true)).toBeNull();
  });
});

const ping: PollState = { pollIntervalS: 2, stepErrors: 0, deliveryMode: 'ping' };

const answers: Array<[string, PollState, TokenPollOutcome | BankError, object]> = [
  [
    'ping mode, authorization_pending: the safety poll 4 intervals later; a ping may ask at once',
    ping,
    { kind: 'pending' },
    { kind: 'ask_again', waitMs: 8_000, minWaitMs: 0, outcome: 'authorization_pending', stepErrors: 0 },
  ],
  [
    'ping mode, authorization_pending to a request a ping brought: the next ping waits the interval',
    { ...ping, pinged: true },
    { kind: 'pending' },
    { kind: 'ask_again', waitMs: 8_000, minWaitMs: 2_000, outcome: 'authorization_pending' },
  ],
  [
    'ping mode, authorization_pending with a longer Retry-After: the Retry-After',
    ping,
    { kind: 'pending', retryAfterSeconds: 30 },
    { kind: 'ask_again', waitMs: 30_000, minWaitMs: 30_000 },
  ],
  [
    'ping mode, slow_down: interval + 5 s, then 4 of those',
    ping,
    { kind: 'slow_down' },
    { kind: 'ask_again', waitMs: 28_000, minWaitMs: 7_000, pollIntervalS: 7 },
  ],
  [
    'ping mode, a network error: retried with backoff as in poll mode (that request was wanted now)',
    ping,
    new BankError('bank_unavailable', 'token: reset'),
    { kind: 'ask_again', waitMs: 2_000, stepErrors: 1 },
  ],
  [
    'ping mode, tokens',
    ping,
    { kind: 'tokens', tokens, subject: 'alice' },
    { kind: 'authorize', subject: 'alice' },
  ],
  [
    'authorization_pending, default interval (CIBA Core §7.3: 5 s)',
    fresh,
    { kind: 'pending' },
    { kind: 'ask_again', waitMs: 5_000, outcome: 'authorization_pending', stepErrors: 0, detail: {} },
  ],
  [
    'authorization_pending, the bank interval; resets the error count',
    after3Errors,
    { kind: 'pending' },
    { kind: 'ask_again', waitMs: 7_000, outcome: 'authorization_pending', stepErrors: 0 },
  ],
  [
    'slow_down: interval + 5 s, persisted',
    after3Errors,
    { kind: 'slow_down' },
    {
      kind: 'ask_again',
      waitMs: 12_000,
      outcome: 'slow_down',
      pollIntervalS: 12,
      stepErrors: 0,
      detail: { interval: 12 },
    },
  ],
  [
    'slow_down from the default interval',
    fresh,
    { kind: 'slow_down' },
    { kind: 'ask_again', waitMs: 10_000, pollIntervalS: 10 },
  ],
  [
    'authorization_pending with a Retry-After longer than the interval (RFC 9110 §10.2.3)',
    after3Errors,
    { kind: 'pending', retryAfterSeconds: 20 },
    {
      kind: 'ask_again',
      waitMs: 20_000,
      outcome: 'authorization_pending',
      stepErrors: 0,
      detail: { retryAfter: 20 },
    },
  ],
  [
    'authorization_pending with a Retry-After shorter than the interval: the interval',
    after3Errors,
    { kind: 'pending', retryAfterSeconds: 2 },
    { kind: 'ask_again', waitMs: 7_000, outcome: 'authorization_pending' },
  ],
  [
    'slow_down with a Retry-After longer than the new interval: both kept',
    after3Errors,
    { kind: 'slow_down', retryAfterSeconds: 30 },
    {
      kind: 'ask_again',
      waitMs: 30_000,
      outcome: 'slow_down',
      pollIntervalS: 12,
      detail: { interval: 12, retryAfter: 30 },
    },
  ],
  [
    'an unreadable answer (bank.answers.ts: transient) → backoff, with its Retry-After',
    fresh,
    new BankError('bank_unavailable', 'token: the answer (200) is not a JSON object', {
      status: 200,
      retryAfterSeconds: 9,
    }),
    { kind: 'ask_again', waitMs: 9_000, outcome: 'bank_unavailable', stepErrors: 1 },
  ],
  [
    '503 with a Retry-After longer than the interval',
    fresh,
    { kind: 'unavailable', retryAfterSeconds: 30 },
    {
      kind: 'ask_again',
      waitMs: 30_000,
      outcome: 'unavailable',
      stepErrors: 1,
      detail: { retryAfter: 30 },
    },
  ],
  [
    '503 with a Retry-After shorter than the interval: never sooner than the interval',
    after3Errors,
    { kind: 'unavailable', retryAfterSeconds: 1 },
    { kind: 'ask_again', waitMs: 7_000, stepErrors: 4 },
  ],
  [
    '429 without Retry-After',
    fresh,
    { kind: 'unavailable', retryAfterSeconds: undefined },
    { kind: 'ask_again', waitMs: 5_000, detail: { retryAfter: null } },
  ],
  [
    'network error: backoff for the 4th error (4 s) is under the interval (7 s)',
    after3Errors,
    new BankError('bank_unavailable', 'token: connection reset'),
    {
      kind: 'ask_again',
      waitMs: 7_000,
      outcome: 'bank_unavailable',
      stepErrors: 4,
      detail: { status: null, retryInMs: 7_000 },
    },
  ],
  [
    'network error: backoff longer than the interval',
    { pollIntervalS: 5, stepErrors: 9 },
    new BankError('bank_unavailable', 'token: timed out'),
    { kind: 'ask_again', waitMs: 10_000, stepErrors: 10 },
  ],
  [
    '5xx with Retry-After longer than backoff and interval',
    fresh,
    new BankError('bank_unavailable', 'token: 502', { status: 502, retryAfterSeconds: 40 }),
    { kind: 'ask_again', waitMs: 40_000, stepErrors: 1, detail: { status: 502, retryInMs: 40_000 } },
  ],
  [
    'access_denied → declined',
    fresh,
    { kind: 'denied' },
    {
      kind: 'settle',
      to: 'declined',
      failure: { code: 'access_denied', message: 'the customer declined in their bank app' },
    },
  ],
  [
    'expired_token → expired',
    fresh,
    { kind: 'expired' },
    {
      kind: 'settle',
      to: 'expired',
      failure: { code: 'expired_token', message: 'the customer did not approve in time' },
    },
  ],
  [
    'another CIBA error with a description → failed with the bank code and description',
    fresh,
    { kind: 'failed', code: 'transaction_failed', description: 'limit exceeded' },
    {
      kind: 'settle',
      to: 'failed',
      failure: {
        code: 'transaction_failed',
        message: 'the bank could not complete the request',
        bankText: 'limit exceeded',
      },
    },
  ],
  [
    'another CIBA error without a description',
    fresh,
    { kind: 'failed', code: 'invalid_grant' },
    {
      kind: 'settle',
      to: 'failed',
      failure: { code: 'invalid_grant', message: 'the bank no longer knows this request' },
    },
  ],
  [
    'an ID Token that fails validation → failed, tokens unused',
    fresh,
    new BankError('invalid_id_token', 'the ID Token audience is wrong'),
    {
      kind: 'settle',
      to: 'failed',
      failure: {
        code: 'invalid_id_token',
        message: "the bank's confirmation of the customer did not pass our checks",
        bankText: 'the ID Token audience is wrong',
      },
      detail: { status: null },
    },
  ],
  [
    'tokens we cannot use (bank.answers.ts: final, e.g. a token_type other than Bearer) → failed',
    fresh,
    new BankError('invalid_bank_response', 'token: unexpected token_type mac', { status: 200 }),
    { kind: 'settle', to: 'failed', failure: { code: 'invalid_bank_response' }, detail: { status: 200 } },
  ],
  [
    'tokens → authorize with the tokens and subject',
    after3Errors,
    { kind: 'tokens', tokens, subject: 'alice' },
    { kind: 'authorize', tokens, subject: 'alice' },
  ],
];

describe('the answer', () => {
  it.each(answers)('%s', (_name, poll, answer, expected) => {
    expect(decidePollAnswer(poll, answer, backoff)).toMatchObject(expected);
  });

  it.each([
    [1, 'invalid_grant'],
    [2, 'approval_lost'],
    [5, 'approval_lost'],
  ])('invalid_grant after %d claims without a recorded answer → %s', (claims, code) => {
    const decision = decidePollAnswer(
      { ...fresh, unansweredClaims: claims },
      { kind: 'failed', code: 'invalid_grant' },
      backoff,
    );
    expect(decision).toMatchObject({ kind: 'settle', to: 'failed', failure: { code } });
  });

  it('another refusal after a lost answer stays what the bank said', () => {
    expect(
      decidePollAnswer(
        { ...fresh, unansweredClaims: 3 },
        { kind: 'failed', code: 'transaction_failed' },
        backoff,
      ),
    ).toMatchObject({ failure: { code: 'transaction_failed' } });
  });

  it('never asks again sooner than the interval on its own; a ping only after a scheduled poll', () => {
    for (const [, poll, answer] of answers) {
      const decision = decidePollAnswer(poll, answer, () => 0);
      if (decision.kind === 'ask_again') {
        expect(decision.waitMs).toBeGreaterThanOrEqual((poll.pollIntervalS ?? 5) * 1000);
        expect(decision.minWaitMs).toBeLessThanOrEqual(decision.waitMs);
        // After a request a ping brought, a slow_down or an error: the interval at least; a
        // Retry-After always holds.
        if (poll.pinged || decision.outcome !== 'authorization_pending')
          expect(decision.minWaitMs).toBeGreaterThanOrEqual((poll.pollIntervalS ?? 5) * 1000);
        const retryAfter = 'retryAfterSeconds' in answer ? (answer.retryAfterSeconds ?? 0) : 0;
        expect(decision.minWaitMs).toBeGreaterThanOrEqual(retryAfter * 1000);
      }
    }
  });

  it('uses the real backoff (with jitter) by default', () => {
    const decision = decidePollAnswer(
      { pollIntervalS: 1, stepErrors: 20 },
      new BankError('bank_unavailable', 'token: reset'),
    );
    expect(decision).toMatchObject({ kind: 'ask_again' });
    const wait = (decision as { waitMs: number }).waitMs;
    expect(wait).toBeGreaterThanOrEqual(48_000);
    expect(wait).toBeLessThanOrEqual(72_000);
  });
});
