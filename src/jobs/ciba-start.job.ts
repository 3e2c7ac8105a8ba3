/**
 * ciba-start: sends the backchannel authentication request (CIBA Core §7.1) for a pending
 * checkout, once per run, and on acknowledgement moves it to awaiting_approval and schedules the
 * first token poll after the interval (CIBA Core §7.3: default 5 s). To a ping-mode bank it also
 * sends a fresh client_notification_token, keeping only its hash, and the first (safety) poll
 * waits SAFETY_POLL_FACTOR intervals: the bank's ping brings it forward (DESIGN.md §7.1).
 *
 * A crash after the request went out but before the answer was stored re-sends it on the next
 * run: the bank then has two requests, we keep one, and the other expires unpolled. Nothing is paid
 * without tokens from the one we keep.
 */
import type { Job } from 'bullmq';
import type { CheckoutJobData } from '../checkout/checkout.jobs.ts';
import { expireCheckout, failCheckout, failures, isPastExpiry } from '../checkout/checkout.outcomes.ts';
import { paymentInitiation } from '../checkout/checkout.payment.ts';
import { BankError, DEFAULT_POLL_INTERVAL_S } from '../integrations/bank.client.ts';
import { newClientNotificationToken } from '../notifications/notification-token.ts';
import { persistBankAnswer, retryStepLater } from './bank-step.ts';
import type { JobContext } from './job.context.ts';
import { scheduledPollDelayMs } from './token-poll.policy.ts';

export async function startBackchannelAuthentication(
  job: Job<CheckoutJobData>,
  ctx: JobContext,
  token?: string,
): Promise<string> {
  const now = Date.now();
  const checkout = await ctx.checkouts.find(job.data.checkoutId);
  // (A pending checkout always has its login hint: it is cleared only once the checkout ends.)
  if (!checkout || checkout.status !== 'pending' || checkout.loginHint === null) return 'skipped';

  const bankConfig = ctx.config.banks.find((b) => b.id === checkout.bankId);
  const bank = ctx.banks.get(checkout.bankId);
  if (!bankConfig || !bank) {
    await failCheckout(ctx.checkouts, checkout.id, 'pending', failures.bankNotConfigured(checkout.bankId));
    return 'failed';
  }
  if (isPastExpiry(checkout.expiresAt, now)) {
    await expireCheckout(ctx.checkouts, { id: checkout.id, status: 'pending' }, 'backchannel_authentication');
    return 'failed';
  }

  // CIBA Core §7.1: a new token for every request; a resent request gets its own.
  const notification = bankConfig.deliveryMode === 'ping' ? newClientNotificationToken() : undefined;
  try {
    const ack = await bank.startBackchannelAuthentication({
      loginHint: checkout.loginHint,
      bindingMessage: checkout.bindingMessage,
      requestedExpiry: bankConfig.requestedExpiry,
      ...(bankConfig.authorizationDetails
        ? { payment: paymentInitiation(checkout, ctx.config.merchant) }
        : {}),
      ...(notification ? { clientNotificationToken: notification.token } : {}),
    });
    const acked = Date.now();
    const interval = ack.interval ?? DEFAULT_POLL_INTERVAL_S;
    const moved = await persistBankAnswer(ctx, 'backchannel acknowledgement', () =>
      ctx.checkouts.transition(
        checkout.id,
        'pending',
        'awaiting_approval',
        {
          authReqId: ack.authReqId,
          pollIntervalS: interval,
          nextPollAt: new Date(acked + scheduledPollDelayMs(interval, bankConfig.deliveryMode)),
          // CIBA Core §7.3: the interval is a wait *between* token requests; before the first one a
          // ping brings it forward to at once.
          earliestPollAt: null,
          notificationTokenHash: notification?.hash ?? null,
          expiresAt: new Date(acked + ack.expiresIn * 1000),
          stepErrors: 0,
        },
        {
          step: 'backchannel_authentication',
          outcome: 'accepted',
          detail: { expiresIn: ack.expiresIn, interval: ack.interval ?? null },
        },
      ),
    );
    // The token poller takes it from here at `nextPollAt`. Canceled meanwhile: the bank's request
    // expires unpolled; nothing else to do.
    if (!moved) return 'skipped';
    ctx.log.info({ status: 'awaiting_approval' }, 'the bank accepted the request: awaiting the customer');
    return 'awaiting_approval';
  } catch (error) {
    if (!(error instanceof BankError)) throw error;
    if (error.retryable) {
      return retryStepLater(
        ctx,
        job,
        token,
        checkout,
        {
          status: 'pending',
          name: 'backchannel_authentication',
          logMessage: 'bank unavailable for backchannel authentication; retrying',
          notAfter: checkout.expiresAt.getTime(),
        },
        error,
      );
    }
    await failCheckout(ctx.checkouts, checkout.id, 'pending', failures.bankError(error), {
      step: 'backchannel_authentication',
      outcome: error.code,
      detail: { status: error.status ?? null },
    });
    return 'failed';
  }
}
