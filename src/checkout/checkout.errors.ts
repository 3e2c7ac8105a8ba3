/**
 * The ways a checkout operation refuses a request, as domain errors with stable codes. They say
 * nothing of HTTP: src/http/problem.ts answers each code with its status and title (RFC 9457), the
 * way bank.errors.ts lists the outbound codes; app.ts registers this class there, and the compiler
 * refuses a code that has no problem.
 */

export const CHECKOUT_ERROR_CODES = [
  /** The input breaks a rule the schema cannot express (a currency ISO 4217 does not list, …). */
  'invalid_request',
  /** No checkout with that id (or a clientSecret of another checkout). */
  'checkout_not_found',
  /** Cancel after authorization (DESIGN.md §2). */
  'checkout_not_cancelable',
  /** The Idempotency-Key's first request has not stored its response yet: retry shortly. */
  'idempotency_key_in_use',
  /** The Idempotency-Key was used with another request body. */
  'idempotency_key_reused',
  /** The bankId names no configured bank. */
  'unknown_bank',
  /** A CIBA ping whose bearer token, bank or auth_req_id does not match a checkout awaiting approval. */
  'invalid_notification',
] as const;

export type CheckoutErrorCode = (typeof CHECKOUT_ERROR_CODES)[number];

/** A request member that is wrong: a JSON pointer into the request as the API describes it (`/body/currency`). */
export interface InvalidField {
  pointer: string;
  detail: string;
}

export class CheckoutError extends Error {
  override name = 'CheckoutError';
  readonly code: CheckoutErrorCode;
  readonly fields: InvalidField[] | undefined;
  /** When asking again can succeed (seconds), for a refusal that is temporary. */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    code: CheckoutErrorCode,
    message: string,
    options: { fields?: InvalidField[]; retryAfterSeconds?: number } = {},
  ) {
    super(message);
    this.code = code;
    this.fields = options.fields;
    this.retryAfterSeconds = options.retryAfterSeconds;
  }
}

export function checkoutNotFound(id: string): CheckoutError {
  return new CheckoutError('checkout_not_found', `No checkout ${id}`);
}
