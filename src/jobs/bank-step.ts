/**
 * What every job step that talks to a bank shares: waiting for a bank that did not answer
 * (backoff, Retry-After, BullMQ's "run me again later"), and recording what a bank did answer
 * even through a short database outage.
 */
import { DelayedError, type Job } from 'bullmq';
import type { CheckoutStatus } from '../checkout/checkout.states.ts';
import { isDatabaseUnavailable } from '../infra/database.ts';
import type { BankError } from '../integrations/bank.errors.ts';
import type { JobContext } from './job.context.ts';

/**
 * "Not a failure, run me again at `at`" (epoch ms): the job goes back to the delayed set with its
 * attempt count untouched (BullMQ's moveToDelayed + DelayedError). The next run makes the next
 * request.
 */
async function runAgainAt(job: Job, token: string | undefined, at: number): Promise<never> {
  await job.moveToDelayed(Math.ceil(at), token);
  throw new DelayedError();
}

/**
 * A bank step that got no usable answer (network error, 5xx, 429/503): counts the error on the
 * checkout, puts it on the timeline, and runs the job again after the backoff or the bank's
 * Retry-After, whichever is longer, counted from the answer (RFC 9110 §10.2.3), never past
 * `notAfter` (epoch ms).
 */
export async function retryStepLater(
  ctx: JobContext,
  job: Job,
  token: string | undefined,
  checkout: { id: string; stepErrors: number },
  step: { status: CheckoutStatus; name: string; logMessage: string; notAfter?: number },
  error: BankError,
): Promise<never> {
  const errors = checkout.stepErrors + 1;
  const wait = Math.max(backoffMs(errors), (error.retryAfterSeconds ?? 0) * 1000);
  await ctx.checkouts.updateWhileInStatus(
    checkout.id,
    step.status,
    { stepErrors: errors },
    { step: step.name, outcome: error.code, detail: { status: error.status ?? null, retryInMs: wait } },
  );
  ctx.log.warn({ checkoutId: checkout.id, code: error.code, retryInMs: wait }, step.logMessage);
  const answeredAt = Date.now();
  return runAgainAt(job, token, Math.min(answeredAt + wait, step.notAfter ?? Number.POSITIVE_INFINITY));
}

/**
 * Exponential backoff with jitter for a bank that did not answer, in ms: a base of 1 s, 2 s, 4 s …
 * for the 1st, 2nd, 3rd … consecutive error, capped at 60 s, then ±20 % (so at most 72 s).
 */
export function backoffMs(consecutiveErrors: number): number {
  const base = Math.min(60_000, 1_000 * 2 ** Math.max(0, consecutiveErrors - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

/**
 * Runs a database write that records what a peer just said, retrying while PostgreSQL is briefly
 * unreachable. Losing such a write is costly: a lost acknowledgement leaves an orphan request at
 * the bank, and lost tokens cannot be fetched again (the bank redeems an auth_req_id once); a lost
 * webhook outcome sends the event again. Other errors, and an outage longer than `maxWaitMs`,
 * propagate (the job is then retried as a whole).
 */
export async function persistBankAnswer<T>(
  ctx: Pick<JobContext, 'log'>,
  what: string,
  write: () => Promise<T>,
  maxWaitMs = 30_000,
): Promise<T> {
  const deadline = Date.now() + maxWaitMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await write();
    } catch (error) {
      if (!isDatabaseUnavailable(error) || Date.now() > deadline) throw error;
      const wait = Math.min(2_000, 100 * 2 ** attempt);
      ctx.log.warn(
        { what, attempt, retryInMs: wait },
        `database unavailable while recording ${what}; retrying`,
      );
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}
