/**
 * The payment a checkout stands for, as the bank sees it, and the access token that pays it.
 *
 * What the customer approves (RFC 9396 `authorization_details` in the CIBA request) and what is
 * then paid (DESIGN.md §4) must be the same, so both are built by `paymentInitiation`. The token
 * is kept only encrypted (house convention 5) and only until the payment is settled.
 */
import type { Config } from '../config.ts';
import type { KeyRing } from '../infra/crypto.ts';
import type { BankTokens, PaymentInitiation, RawTokenAnswer } from '../integrations/bank.client.ts';
import type { CheckoutRow } from './checkout.repository.ts';
import { toDecimalString } from './money.ts';

/** RFC 9396 `payment_initiation` for this checkout: amount, currency, creditor, reference. */
export function paymentInitiation(
  checkout: Pick<CheckoutRow, 'amount' | 'currency' | 'reference'>,
  merchant: Config['merchant'],
): PaymentInitiation {
  return {
    instructedAmount: {
      currency: checkout.currency,
      amount: toDecimalString(checkout.amount, checkout.currency),
    },
    creditorName: merchant.name,
    creditorAccount: { iban: merchant.iban },
    remittanceInformationUnstructured: checkout.reference,
  };
}

/** The stored-token format (the plaintext of `tokensEncrypted`). */
export interface StoredTokens {
  accessToken: string;
  /** Epoch ms after which the access token is no longer usable; null when the bank did not say. */
  accessTokenExpiresAt: number | null;
}

/** The lifetime assumed for an access token whose `expires_in` is missing or unreadable (s). */
const DEFAULT_TOKEN_LIFETIME_S = 3600;

/**
 * Encrypts the access token of a token response received at `now` (epoch ms) for storage in the
 * row of `checkoutId`, bound to it (AES-GCM additional data): it opens for that checkout only.
 */
export function sealTokens(keys: KeyRing, checkoutId: string, tokens: BankTokens, now: number): string {
  const stored: StoredTokens = {
    accessToken: tokens.accessToken,
    // A token without a readable lifetime is not kept usable for ever: a payment retried against an
    // unanswering bank must end (as payment_outcome_unknown) rather than retry without end.
    accessTokenExpiresAt:
      now +
      Math.min(
        tokens.expiresIn && tokens.expiresIn > 0 ? tokens.expiresIn : DEFAULT_TOKEN_LIFETIME_S,
        86_400,
      ) *
        1000,
  };
  return keys.encrypt(JSON.stringify(stored), checkoutId);
}

/**
 * Decrypts what `sealTokens` stored for `checkoutId`; undefined when it does not open (another
 * checkout's value, tampered, or its key no longer configured).
 */
export function openTokens(keys: KeyRing, checkoutId: string, sealed: string): StoredTokens | undefined {
  try {
    return JSON.parse(keys.decrypt(sealed, checkoutId)) as StoredTokens;
  } catch {
    return undefined;
  }
}

/**
 * Seals a bank's token answer (RawTokenAnswer, tokens included) for the row of `checkoutId`, bound
 * to it like the access token: stored the moment it is read, opened by whoever finishes with it.
 */
export function sealTokenAnswer(keys: KeyRing, checkoutId: string, answer: RawTokenAnswer): string {
  return keys.encrypt(JSON.stringify(answer), `token-answer:${checkoutId}`);
}

/** What `sealTokenAnswer` stored for `checkoutId`; undefined when it does not open. */
export function openTokenAnswer(
  keys: KeyRing,
  checkoutId: string,
  sealed: string,
): RawTokenAnswer | undefined {
  try {
    return JSON.parse(keys.decrypt(sealed, `token-answer:${checkoutId}`)) as RawTokenAnswer;
  } catch {
    return undefined;
  }
}

/** Whether the stored access token may still be presented at `now` (epoch ms). */
export function isAccessTokenUsable(tokens: StoredTokens, now: number): boolean {
  return tokens.accessTokenExpiresAt === null || now < tokens.accessTokenExpiresAt;
}
