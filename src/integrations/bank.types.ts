/**
 * The shapes the outbound bank layer speaks in (re-exported by bank.client.ts, the entry point).
 */

/** RFC 9396 `payment_initiation` details and the payment API body (DESIGN.md §4). */
export interface PaymentInitiation {
  instructedAmount: { currency: string; amount: string };
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured: string;
}

/** CIBA Core §7.3: the poll interval when the acknowledgement gives none, in seconds. */
export const DEFAULT_POLL_INTERVAL_S = 5;

/** CIBA Core §11 (via RFC 8628 §3.5): `slow_down` adds 5 seconds to the interval, for good. */
export const SLOW_DOWN_INCREMENT_S = 5;

/** CIBA Core §7.3: the bank accepted the authentication request. */
export interface BackchannelAuthenticationAck {
  authReqId: string;
  /** Seconds the auth_req_id stays valid. */
  expiresIn: number;
  /** Minimum seconds between polls; undefined → the caller's default (5 s, CIBA Core §7.3). */
  interval: number | undefined;
}

/** A validated token response; a refresh token is not taken (nothing here refreshes). */
export interface BankTokens {
  accessToken: string;
  idToken: string;
  expiresIn?: number;
}

/**
 * A token endpoint answer as it arrived, read whole and not yet interpreted: what is kept (sealed)
 * the moment it is read, so that a worker that dies while validating it loses nothing.
 */
export interface RawTokenAnswer {
  status: number;
  /** The headers the interpretation reads (content-type, retry-after, www-authenticate). */
  headers: Record<string, string>;
  body: string;
}

/**
 * One token request's outcome (CIBA Core §10.1.1, §11). `retryAfterSeconds` is the answer's
 * Retry-After (RFC 9110 §10.2.3), honoured on top of the interval whatever the status it came with.
 */
export type TokenPollOutcome =
  | { kind: 'pending'; retryAfterSeconds?: number } // authorization_pending
  | { kind: 'slow_down'; retryAfterSeconds?: number } // caller adds 5 s to its interval (CIBA §11 / RFC 8628 §3.5)
  | { kind: 'unavailable'; retryAfterSeconds: number | undefined } // 503 (+Retry-After), or 429
  | { kind: 'tokens'; tokens: BankTokens; subject: string }
  | { kind: 'denied' } // access_denied
  | { kind: 'expired' } // expired_token
  | { kind: 'failed'; code: string; description?: string }; // invalid_grant, transaction_failed, ...

export const paymentStatuses = ['accepted', 'rejected'] as const;
export type PaymentStatus = (typeof paymentStatuses)[number];

/** DESIGN.md §4: `201 { paymentId, status, reason? }`. */
export interface PaymentResult {
  paymentId: string;
  status: PaymentStatus;
  reason?: string;
}
