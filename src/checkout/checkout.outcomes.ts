/**
 * How a checkout ends, in one place: the `failure.code` values and the sentence the merchant reads
 * for each (DESIGN.md §2), the expiry rule, and the moves to a terminal status that the jobs make
 * (each a compare-and-set through `transition`, with the event that explains it).
 *
 * A bank's own OAuth/CIBA error code (`unknown_user_id`, `invalid_request`, `transaction_failed`,
 * …) passes through as the failure code; the codes below are ours.
 */
import type { CheckoutEventInput, CheckoutPatch, CheckoutRepository } from './checkout.repository.ts';
import type { CheckoutStatus } from './checkout.states.ts';

/**
 * `failure` of the checkout object: a stable code and a sentence for the merchant, always ours.
 * What the bank wrote about it (`error_description`, a payment's `reason`, an error we composed
 * around a bank value) is untrusted text: it goes only to the logs and the timeline, as `bankText`,
 * sanitized and capped, never to `failure.message`, which browsers show.
 */
export interface Failure {
  code: string;
  message: string;
  bankText?: string | undefined;
}

export const FAILURE_CODES = {
  /** The customer refused in their bank app (CIBA Core §11 `access_denied`): status declined. */
  accessDenied: 'access_denied',
  /** Not approved before the bank's or our deadline (CIBA Core §11 `expired_token`): status expired. */
  expiredToken: 'expired_token',
  /** The bank did not answer usably in time (network, 5xx, 503/429 until the deadline). */
  bankUnavailable: 'bank_unavailable',
  /** The bank's metadata or our configuration for it cannot work. */
  configurationError: 'configuration_error',
  /** The ID Token failed validation (OIDC Core §3.1.3.7, CIBA Core §7.4 / FAPI-CIBA). */
  invalidIdToken: 'invalid_id_token',
  /** The bank answered something we cannot use. */
  invalidBankResponse: 'invalid_bank_response',
  /** The bank's payment API refused the payment (DESIGN.md §4). */
  paymentRejected: 'payment_rejected',
  /** A payment request got no answer and the bank now refuses to answer again: check with the bank. */
  paymentOutcomeUnknown: 'payment_outcome_unknown',
  /**
   * The bank's answer to a token request was lost (a worker died holding it) and the bank, which
   * answers an auth_req_id once, no longer does (invalid_grant): the customer may have approved.
   */
  approvalLost: 'approval_lost',
} as const;

/**
 * Our sentence for each failure code a bank can give (CIBA Core §13, RFC 6749 §5.2) or we give;
 * any other bank code gets the generic one. Never the bank's words.
 */
const SENTENCES: Readonly<Record<string, string>> = {
  access_denied: 'the customer declined in their bank app',
  expired_token: 'the customer did not approve in time',
  bank_unavailable: 'the bank could not be reached in time',
  configuration_error: 'the connection to this bank is not configured correctly',
  invalid_id_token: "the bank's confirmation of the customer did not pass our checks",
  invalid_bank_response: 'the bank answered something Bankpay could not use',
  payment_rejected: 'the bank rejected the payment',
  unknown_user_id: 'the bank does not know this customer',
  invalid_request: 'the bank refused the request as invalid',
  invalid_client: 'the bank refused our client: check its registration at the bank',
  unauthorized_client: 'the bank does not allow our client this request: check its registration',
  invalid_scope: 'the bank refused the requested scope',
  invalid_grant: 'the bank no longer knows this request',
  transaction_failed: 'the bank could not complete the request',
  invalid_binding_message: 'the bank refused the binding message',
  expired_login_hint_token: 'the bank found the customer hint expired',
  missing_user_code: 'the bank asks for a user code',
  invalid_user_code: 'the bank refused the user code',
  unsupported_grant_type: 'the bank does not offer this kind of approval to our client',
  temporarily_unavailable: 'the bank could not be reached in time',
  approval_lost:
    "the customer may have approved, but the bank's answer was lost and the bank does not give it twice: nothing was paid, and the merchant may retry with a new checkout",
};

/** Our sentence for `code` (SENTENCES), the generic one for a code we do not know. */
export function failureSentence(code: string): string {
  return SENTENCES[code] ?? 'the bank refused the request';
}

/** Bank-written text as the logs and the timeline may keep it: printable, one line, 200 characters at most. */
export function sanitizeBankText(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const clean = text
    // Controls (C0, DEL, C1), line and paragraph separators, bidirectional overrides and isolates.
    .replace(/[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]+/gu, ' ')
    .trim();
  if (clean.length === 0) return undefined;
  return clean.length > 200 ? `${clean.slice(0, 199)}…` : clean;
}

/** The failures the jobs record, each with its message. */
export const failures = {
  declined: {
    code: FAILURE_CODES.accessDenied,
    message: 'the customer declined in their bank app',
  },
  notApprovedInTime: {
    code: FAILURE_CODES.expiredToken,
    message: 'the customer did not approve in time',
  },
  notAcceptedInTime: {
    code: FAILURE_CODES.bankUnavailable,
    message: 'the bank did not accept the authentication request in time',
  },
  bankNotConfigured: (bankId: string): Failure => ({
    code: FAILURE_CODES.configurationError,
    message: `bank ${bankId} is no longer configured`,
  }),
  noAccessToken: {
    code: FAILURE_CODES.configurationError,
    message: 'no bank client or no access token for this checkout',
  },
  unreadableAccessToken: {
    code: FAILURE_CODES.configurationError,
    message: 'the stored access token cannot be read for this checkout (key removed, or not its own)',
  },
  /** A bank error answer (CIBA Core §11, §13), its description kept apart as bankText. */
  bankAnswered: (code: string, description?: string): Failure => ({
    code,
    message: failureSentence(code),
    bankText: description,
  }),
  /** An error of the bank layer: its code, our sentence; its message (which may quote the bank) apart. */
  bankError: (error: { code: string; message: string }, code = error.code): Failure => ({
    code,
    message: failureSentence(code),
    bankText: error.message,
  }),
  approvalLost: {
    code: FAILURE_CODES.approvalLost,
    message: failureSentence(FAILURE_CODES.approvalLost),
  },
  paymentRejected: (reason?: string): Failure => ({
    code: FAILURE_CODES.paymentRejected,
    message: failureSentence(FAILURE_CODES.paymentRejected),
    bankText: reason,
  }),
  paymentOutcomeUnknown: (bankCode: string, checkoutId: string): Failure => ({
    code: FAILURE_CODES.paymentOutcomeUnknown,
    message: `an earlier payment request got no answer and the bank now refuses to answer again (${bankCode}): check with the bank under Idempotency-Key ${checkoutId}`,
  }),
} as const;

/**
 * The deadline rule: a checkout not authorized by `expiresAt` (the bank's `expires_in` from the
 * acknowledgement, or before it our own grace) is over, whoever notices first. `slackMs` lets a
 * safety net step in only once the step that owns the deadline is clearly late.
 */
export function isPastExpiry(expiresAt: Date | number, now: number, slackMs = 0): boolean {
  return now >= (typeof expiresAt === 'number' ? expiresAt : expiresAt.getTime()) + slackMs;
}

/**
 * Moves a checkout from `from` to failed with `failure` (and `patch`, e.g. the bank's payment id).
 * The row, or null when the checkout was no longer in `from`.
 */
export function failCheckout(
  checkouts: CheckoutRepository,
  id: string,
  from: CheckoutStatus,
  failure: Failure,
  event?: CheckoutEventInput,
  patch: CheckoutPatch = {},
) {
  return checkouts.transition(
    id,
    from,
    'failed',
    { failureCode: failure.code, failureMessage: failure.message, ...patch },
    withBankText(event, failure),
  );
}

/** The event, with the bank's own words about the failure (sanitized) in its detail. */
function withBankText(
  event: CheckoutEventInput | undefined,
  failure: Failure,
): CheckoutEventInput | undefined {
  const bankText = sanitizeBankText(failure.bankText);
  if (bankText === undefined || bankText === failure.message) return event;
  return {
    step: event?.step ?? 'status',
    outcome: event?.outcome ?? 'failed',
    detail: { ...event?.detail, bankText },
  };
}

/** awaiting_approval → declined: the customer refused (CIBA Core §11 `access_denied`). */
export function declineCheckout(checkouts: CheckoutRepository, id: string, event: CheckoutEventInput) {
  const { code, message } = failures.declined;
  return checkouts.transition(
    id,
    'awaiting_approval',
    'declined',
    { failureCode: code, failureMessage: message },
    event,
  );
}

/**
 * The end of a checkout the customer did not approve in time: awaiting_approval → expired
 * (`expired_token`: the bank said so, or the deadline passed), or pending → failed
 * (`bank_unavailable`: the bank never accepted the request). The event's outcome is `outcome`,
 * by default `expired` or `gave_up`.
 */
export function expireCheckout(
  checkouts: CheckoutRepository,
  checkout: { id: string; status: 'pending' | 'awaiting_approval' },
  step: string,
  outcome?: string,
) {
  if (checkout.status === 'pending') {
    return failCheckout(checkouts, checkout.id, 'pending', failures.notAcceptedInTime, {
      step,
      outcome: outcome ?? 'gave_up',
    });
  }
  const { code, message } = failures.notApprovedInTime;
  return checkouts.transition(
    checkout.id,
    'awaiting_approval',
    'expired',
    { failureCode: code, failureMessage: message },
    { step, outcome: outcome ?? 'expired' },
  );
}
