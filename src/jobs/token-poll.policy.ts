/**
 * What a token poll's answer means for the checkout (CIBA Core §7.3, §10.1.1, §11): a pure
 * function from the poll (the checkout's CIBA state as claimed) and the bank's answer to a
 * decision. The token poller (token-poller.ts) is the mechanism that asks and records; this is the
 * policy, apart so that it can be read and table-tested on its own and reused by every path that
 * makes a token request.
 *
 *   before asking: past the expiry → expired;  bank no longer configured → failed
 *   authorization_pending → again after the interval
 *   slow_down             → interval + 5 s, for this and every later poll, persisted (CIBA Core §11)
 *   503 / 429             → again after Retry-After (never sooner than the interval)
 *   network errors, 5xx,  → again with backoff, never sooner than the interval, until the expiry
 *   unreadable answers      (the table in integrations/bank.answers.ts says which answers are so)
 *   Retry-After on any of these (also on authorization_pending or slow_down) → never sooner than it
 *   access_denied         → declined;  expired_token → expired
 *   any other error       → failed; that auth_req_id is never polled again
 *   tokens                → authorized (the client validated the ID Token; the tokens are stored)
 *
 * The wait of "ask again" is counted from when the answer is recorded, not from when we asked:
 * the next request then arrives at least that long after the previous one did.
 *
 * Ping mode (CIBA Core §10.2; DESIGN.md §7.1): the bank's ping brings the token request forward
 * (poll-schedule.repository.ts, notePing) to `minWaitMs` after the last answer at the soonest;
 * underneath, authorization_pending and slow_down wait SAFETY_POLL_FACTOR intervals, so a lost
 * ping, or a refusal the bank never pings, costs time and never the outcome. Errors are retried as
 * in poll mode: that request was wanted now.
 */
import { type Failure, failures, isPastExpiry } from '../checkout/checkout.outcomes.ts';
import type { EventDetail } from '../checkout/checkout.repository.ts';
import type { DuePoll } from '../checkout/poll-schedule.repository.ts';
import {
  BankError,
  type BankTokens,
  DEFAULT_POLL_INTERVAL_S,
  SLOW_DOWN_INCREMENT_S,
  type TokenPollOutcome,
} from '../integrations/bank.client.ts';
import { backoffMs } from './bank-step.ts';

/** How long past the expiry a stored (in-time) answer may still be finished: 10 minutes. */
export const STORED_ANSWER_GRACE_MS = 10 * 60_000;

/** Ping mode's safety poll comes every this many intervals (DESIGN.md §7.1: at most every 4 ×). */
export const SAFETY_POLL_FACTOR = 4;

/**
 * How long after an acknowledgement (or an "ask again" answer) the next token request waits when
 * nothing brings it forward, in ms: the interval (seconds) in poll mode, SAFETY_POLL_FACTOR times
 * it in ping mode.
 */
export function scheduledPollDelayMs(intervalS: number, deliveryMode: 'poll' | 'ping'): number {
  return intervalS * 1000 * (deliveryMode === 'ping' ? SAFETY_POLL_FACTOR : 1);
}

/** The part of a claimed poll the policy reads (deliveryMode: the bank's, default poll). */
export type PollState = Pick<DuePoll, 'pollIntervalS' | 'stepErrors'> &
  Partial<Pick<DuePoll, 'unansweredClaims' | 'pinged'>> & { deliveryMode?: 'poll' | 'ping' };

export type PollDecision =
  /** Still awaiting approval: ask again `waitMs` after recording this answer. */
  | {
      kind: 'ask_again';
      waitMs: number;
      /**
       * How soon a ping may bring the next request (ping mode): at once after a scheduled poll's
       * authorization_pending (CIBA Core §10.2: on a ping the client asks for the result), but
       * the interval after a request a ping brought (so repeated pings cannot make us ask faster
       * than CIBA Core §7.3 allows), and never before slow_down, a Retry-After or the error
       * backoff. At most waitMs.
       */
      minWaitMs: number;
      /** The timeline event's outcome: the answer's name (`authorization_pending`, `slow_down`, …). */
      outcome: string;
      /** Consecutive unusable answers, after this one (drives the backoff). */
      stepErrors: number;
      /** Only when the interval changes (slow_down), in seconds. */
      pollIntervalS?: number;
      detail: EventDetail;
    }
  /** A terminal answer: the checkout ends as `to` with `failure`. */
  | { kind: 'settle'; to: 'declined' | 'expired' | 'failed'; failure: Failure; detail: EventDetail }
  /** The customer approved: store the tokens and pay. */
  | { kind: 'authorize'; tokens: BankTokens; subject: string };

/**
 * Whether a claimed poll should be asked at all: a settle decision when the checkout is past its
 * expiry at `now` (epoch ms) or its bank is no longer configured, else null.
 */
export function decideBeforePoll(
  poll: Pick<DuePoll, 'expiresAt' | 'bankId'> & Partial<Pick<DuePoll, 'storedAnswer'>>,
  now: number,
  bankConfigured: boolean,
): PollDecision | null {
  // A stored answer arrived before the deadline: it is what the bank said in time, and gets
  // STORED_ANSWER_GRACE_MS more to be finished (a key fetch failing meanwhile), not for ever.
  if (isPastExpiry(poll.expiresAt, now, poll.storedAnswer ? STORED_ANSWER_GRACE_MS : 0)) {
    return { kind: 'settle', to: 'expired', failure: failures.notApprovedInTime, detail: {} };
  }
  if (!bankConfigured) {
    return { kind: 'settle', to: 'failed', failure: failures.bankNotConfigured(poll.bankId), detail: {} };
  }
  return null;
}

/**
 * The decision for one token request's answer: `answer` is what the bank client returned, or the
 * BankError it threw. `backoff` (ms for the n-th consecutive error) is injectable for tests.
 */
export function decidePollAnswer(
  poll: PollState,
  answer: TokenPollOutcome | BankError,
  backoff: (consecutiveErrors: number) => number = backoffMs,
): PollDecision {
  const intervalMs = (poll.pollIntervalS ?? DEFAULT_POLL_INTERVAL_S) * 1000;
  const mode = poll.deliveryMode ?? 'poll';
  if (answer instanceof BankError) {
    const error = answer;
    if (error.retryable) {
      const stepErrors = poll.stepErrors + 1;
      const waitMs = Math.max(intervalMs, backoff(stepErrors), (error.retryAfterSeconds ?? 0) * 1000);
      return {
        kind: 'ask_again',
        waitMs,
        minWaitMs: waitMs,
        outcome: error.code,
        stepErrors,
        detail: { status: error.status ?? null, retryInMs: waitMs },
      };
    }
    // invalid_id_token and anything else we cannot use: the tokens are never stored nor used.
    return {
      kind: 'settle',
      to: 'failed',
      failure: failures.bankError(error),
      detail: { status: error.status ?? null },
    };
  }
  switch (answer.kind) {
    case 'pending':
      // RFC 9110 §10.2.3: a Retry-After is honoured whatever the answer it comes with (row
      // retryAfter of the table in integrations/bank.answers.ts).
      return {
        kind: 'ask_again',
        waitMs: Math.max(
          scheduledPollDelayMs(intervalMs / 1000, mode),
          (answer.retryAfterSeconds ?? 0) * 1000,
        ),
        minWaitMs: Math.max(poll.pinged ? intervalMs : 0, (answer.retryAfterSeconds ?? 0) * 1000),
        outcome: 'authorization_pending',
        stepErrors: 0,
        detail: answer.retryAfterSeconds === undefined ? {} : { retryAfter: answer.retryAfterSeconds },
      };
    case 'slow_down': {
      const interval = intervalMs / 1000 + SLOW_DOWN_INCREMENT_S;
      return {
        kind: 'ask_again',
        waitMs: Math.max(scheduledPollDelayMs(interval, mode), (answer.retryAfterSeconds ?? 0) * 1000),
        minWaitMs: Math.max(interval * 1000, (answer.retryAfterSeconds ?? 0) * 1000),
        outcome: 'slow_down',
        stepErrors: 0,
        pollIntervalS: interval,
        detail:
          answer.retryAfterSeconds === undefined
            ? { interval }
            : { interval, retryAfter: answer.retryAfterSeconds },
      };
    }
    case 'unavailable':
      return {
        kind: 'ask_again',
        waitMs: Math.max(intervalMs, (answer.retryAfterSeconds ?? 0) * 1000),
        minWaitMs: Math.max(intervalMs, (answer.retryAfterSeconds ?? 0) * 1000),
        outcome: 'unavailable',
        stepErrors: poll.stepErrors + 1,
        detail: { retryAfter: answer.retryAfterSeconds ?? null },
      };
    case 'denied':
      return { kind: 'settle', to: 'declined', failure: failures.declined, detail: {} };
    case 'expired':
      return { kind: 'settle', to: 'expired', failure: failures.notApprovedInTime, detail: {} };
    case 'failed':
      // invalid_grant after a token request whose answer never got recorded (a worker died holding
      // it): the bank answers an auth_req_id once, so that lost answer may have been the approval.
      if (answer.code === 'invalid_grant' && (poll.unansweredClaims ?? 0) > 1) {
        return {
          kind: 'settle',
          to: 'failed',
          failure: { ...failures.approvalLost, bankText: answer.description },
          detail: { lostAnswers: (poll.unansweredClaims ?? 0) - 1 },
        };
      }
      return {
        kind: 'settle',
        to: 'failed',
        failure: failures.bankAnswered(answer.code, answer.description),
        detail: {},
      };
    case 'tokens':
      return { kind: 'authorize', tokens: answer.tokens, subject: answer.subject };
  }
}
