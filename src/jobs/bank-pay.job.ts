/**
 * bank-pay: executes the approved payment on the bank's payment API (DESIGN.md §4) over mTLS with
 * the certificate-bound access token, Idempotency-Key = the checkout id. Re-running is safe: the
 * bank answers the same key with its first answer, so a lost answer is recovered by asking again,
 * and the bank is never asked to pay twice for one checkout.
 */
import type { Job } from 'bullmq';
import type { CheckoutJobData } from '../checkout/checkout.jobs.ts';
import { FAILURE_CODES, type Failure, failCheckout, failures } from '../checkout/checkout.outcomes.ts';
import { isAccessTokenUsable, openTokens, paymentInitiation } from '../checkout/checkout.payment.ts';
import type { CheckoutPatch } from '../checkout/checkout.repository.ts';
import { BankError, bankErrorCodes } from '../integrations/bank.errors.ts';
import { persistBankAnswer, retryStepLater } from './bank-step.ts';
import type { JobContext } from './job.context.ts';

/** `paymentStatus` while a payment request may be out at the bank and no answer is recorded. */
const PAYMENT_REQUESTED = 'requested';

export async function executePayment(
  job: Job<CheckoutJobData>,
  ctx: JobContext,
  token?: string,
): Promise<string> {
  const now = Date.now();
  const checkout = await ctx.checkouts.find(job.data.checkoutId);
  if (!checkout || checkout.status !== 'authorized') return 'skipped';
  const fail = async (failure: Failure, patch: CheckoutPatch = {}) => {
    ctx.log.info({ status: 'failed', code: failure.code }, `checkout ${checkout.id} failed: ${failure.code}`);
    await failCheckout(
      ctx.checkouts,
      checkout.id,
      'authorized',
      failure,
      { step: 'payment', outcome: failure.code },
      patch,
    );
    return 'failed';
  };
  const bank = ctx.banks.get(checkout.bankId);
  if (!bank || !checkout.tokensEncrypted) return fail(failures.noAccessToken);
  const tokens = openTokens(ctx.keys, checkout.id, checkout.tokensEncrypted);
  // Not this checkout's (a value copied from another row), tampered, or its key removed.
  if (!tokens) return fail(failures.unreadableAccessToken);

  // Written down before asking: whatever happens to this run (a crash, a lost answer, a write that
  // fails), a later run knows a request may have reached the bank and never reads a refusal as a
  // rejection of the payment. An earlier unanswered attempt also shows in stepErrors.
  const askedBefore = checkout.paymentStatus === PAYMENT_REQUESTED || checkout.stepErrors > 0;
  if (checkout.paymentStatus !== PAYMENT_REQUESTED) {
    await ctx.checkouts.updateWhileInStatus(checkout.id, 'authorized', { paymentStatus: PAYMENT_REQUESTED });
  }
  try {
    const result = await bank.initiatePayment(
      tokens.accessToken,
      checkout.id,
      paymentInitiation(checkout, ctx.config.merchant),
    );
    if (result.status === 'accepted') {
      const recorded = await persistBankAnswer(ctx, 'payment answer', () =>
        ctx.checkouts.transition(
          checkout.id,
          'authorized',
          'succeeded',
          { bankPaymentId: result.paymentId, paymentStatus: 'accepted' },
          { step: 'payment', outcome: 'accepted', detail: { bankPaymentId: result.paymentId } },
        ),
      );
      if (!recorded) {
        // Another run settled the checkout meanwhile: the bank paid under this checkout's key, so
        // whatever that run recorded must be checked against this payment id.
        ctx.log.error(
          { checkoutId: checkout.id, bankPaymentId: result.paymentId },
          'the bank accepted the payment but the checkout was already settled',
        );
        return 'skipped';
      }
      ctx.log.info({ status: 'succeeded', bankPaymentId: result.paymentId }, 'the bank accepted the payment');
      return 'succeeded';
    }
    return fail(failures.paymentRejected(result.reason), {
      bankPaymentId: result.paymentId,
      paymentStatus: 'rejected',
    });
  } catch (error) {
    if (!(error instanceof BankError)) throw error;
    if (error.retryable && isAccessTokenUsable(tokens, now)) {
      // The request may have reached the bank: only the same Idempotency-Key may ask again.
      return retryStepLater(
        ctx,
        job,
        token,
        checkout,
        {
          status: 'authorized',
          name: 'payment',
          logMessage: 'payment answer not received; re-sending with the same Idempotency-Key',
        },
        error,
      );
    }
    if (askedBefore || error.retryable) {
      // An earlier request, or this one, got no answer, so the bank may have paid; this refusal
      // (often an access token that expired meanwhile) says nothing about that. Never report it
      // as rejected: the merchant must check with the bank (the payment's Idempotency-Key is the
      // checkout id).
      return fail(failures.paymentOutcomeUnknown(error.code, checkout.id));
    }
    // A 4xx from the payment API is its refusal of this payment; any other code is the bank's own.
    const code = error.code === bankErrorCodes.paymentApiError ? FAILURE_CODES.paymentRejected : error.code;
    return fail(failures.bankError(error, code));
  }
}
