/**
 * ciba-poll: exactly one token request per run (CIBA Core §10.1 poll mode), then either schedules
 * the next run or settles the checkout:
 *
 *   authorization_pending → again after the interval
 *   slow_down             → interval + 5 s, for this and every later poll, persisted (CIBA Core §11)
 *   503 / 429             → again after Retry-After (never sooner than the interval)
 *   access_denied         → declined;  expired_token, or past the expiry → expired
 *   any other error       → failed; that auth_req_id is never polled again
 *   network errors, 5xx   → again with backoff, never sooner than the interval, until the expiry
 *   tokens                → the ID Token was validated by the client; the access token is stored
 *                           encrypted in the same update that authorizes the checkout, before the
 *                           job acknowledges; then bank-pay is enqueued
 */
import type { Job } from 'bullmq';
import { type CheckoutJobData, enqueueCheckoutJob, JOB_NAMES } from '../checkout/checkout.jobs.ts';
import {
  type CheckoutRow,
  type EventDetail,
  findCheckout,
  transition,
  updateWhileInStatus,
} from '../checkout/checkout.repository.ts';
import { BankError } from '../integrations/bank.errors.ts';
import { DEFAULT_POLL_INTERVAL_S } from './ciba-start.job.ts';
import { backoffMs, type JobContext, persistBankAnswer, runAgainAt } from './job.context.ts';

/** CIBA Core §11 (via RFC 8628 §3.5): slow_down adds 5 seconds to the interval. */
export const SLOW_DOWN_INCREMENT_S = 5;

export interface StoredTokens {
  accessToken: string;
  /** Epoch ms after which the access token is no longer usable. */
  accessTokenExpiresAt: number | null;
}

async function settle(
  ctx: JobContext,
  checkout: CheckoutRow,
  to: 'declined' | 'expired' | 'failed',
  code: string,
  message: string,
  detail: EventDetail = {},
) {
  await transition(
    ctx.db,
    checkout.id,
    'awaiting_approval',
    to,
    { failureCode: code, failureMessage: message, nextPollAt: null },
    {
      step: 'token_poll',
      outcome: code,
      detail,
    },
  );
  return to;
}

export async function pollBackchannelToken(
  job: Job<CheckoutJobData>,
  ctx: JobContext,
  token?: string,
): Promise<string> {
  const now = ctx.now?.() ?? Date.now();
  const checkout = await findCheckout(ctx.db, job.data.checkoutId);
  if (checkout?.status === 'authorized') {
    // An earlier run stored the tokens and may have died before enqueueing the payment.
    await enqueueCheckoutJob(ctx.queue, JOB_NAMES.bankPay, checkout.id);
    return 'skipped';
  }
  if (!checkout || checkout.status !== 'awaiting_approval' || !checkout.authReqId) return 'skipped';

  const expiresAt = checkout.expiresAt.getTime();
  if (now >= expiresAt)
    return settle(ctx, checkout, 'expired', 'expired_token', 'the customer did not approve in time');
  // Never ask sooner than allowed, even when a duplicate run comes early.
  if (checkout.nextPollAt && checkout.nextPollAt.getTime() > now + 50) {
    return runAgainAt(job, token, checkout.nextPollAt.getTime());
  }
  // Claim this poll in Postgres before asking the bank: a second run of the same job (a worker
  // that stalled and came back, a re-enqueue racing the original) finds the claim taken and
  // stops. Two token requests racing for one auth_req_id would make the bank redeem it once and
  // answer the other invalid_grant, revoking the tokens (CIBA Core §11; RFC 6749 §4.1.2).
  const lease = new Date(now + ctx.config.worker.bankTimeoutMs + 5_000);
  const { count: claimed } = await ctx.db.checkout.updateMany({
    where: { id: checkout.id, status: 'awaiting_approval', nextPollAt: checkout.nextPollAt },
    data: { nextPollAt: lease },
  });
  if (claimed === 0) {
    // Someone else holds the claim (or settled the checkout). Keep this job alive and look again
    // when their claim ends: completing it here could end the chain of polls.
    const current = await findCheckout(ctx.db, checkout.id);
    if (!current || current.status !== 'awaiting_approval') return 'skipped';
    const intervalMs = (current.pollIntervalS ?? DEFAULT_POLL_INTERVAL_S) * 1000;
    return runAgainAt(job, token, Math.max(now + 1_000, current.nextPollAt?.getTime() ?? now + intervalMs));
  }
  const bank = ctx.banks.get(checkout.bankId);
  if (!bank)
    return settle(
      ctx,
      checkout,
      'failed',
      'configuration_error',
      `bank ${checkout.bankId} is no longer configured`,
    );

  let interval = checkout.pollIntervalS ?? DEFAULT_POLL_INTERVAL_S;
  const scheduleNext = async (
    waitMs: number,
    outcome: string,
    patch: { pollIntervalS?: number; stepErrors?: number },
    detail: EventDetail = {},
  ) => {
    // Counted from the answer, not from when we asked: the next request then arrives at least
    // `waitMs` after the previous one did, whatever the latency of each.
    const answeredAt = ctx.now?.() ?? Date.now();
    const at = Math.min(answeredAt + waitMs, expiresAt);
    await updateWhileInStatus(
      ctx.db,
      checkout.id,
      'awaiting_approval',
      { ...patch, nextPollAt: new Date(at) },
      {
        step: 'token_poll',
        outcome,
        detail,
      },
    );
    return runAgainAt(job, token, at);
  };

  let outcome: Awaited<ReturnType<typeof bank.pollToken>>;
  try {
    outcome = await bank.pollToken(checkout.authReqId, { loginHint: checkout.loginHint });
  } catch (error) {
    if (!(error instanceof BankError)) throw error;
    if (error.retryable) {
      const errors = checkout.stepErrors + 1;
      const wait = Math.max(interval * 1000, backoffMs(errors), (error.retryAfterSeconds ?? 0) * 1000);
      ctx.log.warn(
        { checkoutId: checkout.id, code: error.code, retryInMs: wait },
        'token poll failed; retrying',
      );
      return scheduleNext(
        wait,
        error.code,
        { stepErrors: errors },
        { status: error.status ?? null, retryInMs: wait },
      );
    }
    // invalid_id_token and anything else we cannot use: the tokens are never stored nor used.
    return settle(ctx, checkout, 'failed', error.code, error.message, { status: error.status ?? null });
  }

  switch (outcome.kind) {
    case 'pending':
      return scheduleNext(interval * 1000, 'authorization_pending', { stepErrors: 0 });
    case 'slow_down':
      interval += SLOW_DOWN_INCREMENT_S;
      return scheduleNext(
        interval * 1000,
        'slow_down',
        { pollIntervalS: interval, stepErrors: 0 },
        { interval },
      );
    case 'unavailable': {
      const wait = Math.max(interval * 1000, (outcome.retryAfterSeconds ?? 0) * 1000);
      return scheduleNext(
        wait,
        'unavailable',
        { stepErrors: checkout.stepErrors + 1 },
        { retryAfter: outcome.retryAfterSeconds ?? null },
      );
    }
    case 'denied':
      return settle(ctx, checkout, 'declined', 'access_denied', 'the customer declined in their bank app');
    case 'expired':
      return settle(ctx, checkout, 'expired', 'expired_token', 'the customer did not approve in time');
    case 'failed':
      return settle(
        ctx,
        checkout,
        'failed',
        outcome.code,
        outcome.description ?? `the bank answered ${outcome.code}`,
      );
    case 'tokens': {
      const stored: StoredTokens = {
        accessToken: outcome.tokens.accessToken,
        accessTokenExpiresAt: outcome.tokens.expiresIn ? now + outcome.tokens.expiresIn * 1000 : null,
      };
      // The bank will not give these tokens twice: keep trying to store them through a short outage.
      const authorized = await persistBankAnswer(ctx, 'tokens', () =>
        transition(
          ctx.db,
          checkout.id,
          'awaiting_approval',
          'authorized',
          {
            tokensEncrypted: ctx.keys.encrypt(JSON.stringify(stored)),
            subject: outcome.subject,
            nextPollAt: null,
            stepErrors: 0,
          },
          { step: 'token_poll', outcome: 'tokens', detail: { idToken: 'valid' } },
        ),
      );
      // Canceled in the meantime: the tokens are dropped unused and nothing is paid.
      if (!authorized) return 'skipped';
      await enqueueCheckoutJob(ctx.queue, JOB_NAMES.bankPay, checkout.id);
      return 'authorized';
    }
  }
}
