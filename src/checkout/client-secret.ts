/**
 * The clientSecret lets a browser follow its own checkout without the merchant key. It is derived
 * (HMAC of the checkout id under its own key ring, CLIENT_SECRET_KEYS) rather than stored: nothing
 * to leak from the database, the create response can be replayed exactly, and it only ever opens
 * its own checkout. Its keys are not the token-encryption keys, so rotating either leaves the
 * other alone; and it stops opening its checkout a day after the checkout has ended.
 */
import type { KeyRing } from '../infra/crypto.ts';
import { type CheckoutStatus, isTerminal } from './checkout.states.ts';

/** How long after a checkout has ended its clientSecret still reads it (ms): long enough for a page to show the outcome. */
export const CLIENT_SECRET_ACCEPTED_AFTER_END_MS = 24 * 60 * 60 * 1000;

const PURPOSE = 'client-secret';
const SEPARATOR = '_secret_';

export function issueClientSecret(keys: KeyRing, checkoutId: string): string {
  return `${checkoutId}${SEPARATOR}${keys.sign(PURPOSE, checkoutId)}`;
}

/** True when `presented` is the clientSecret of `checkoutId` (constant-time on the signature). */
export function verifyClientSecret(keys: KeyRing, checkoutId: string, presented: string): boolean {
  const at = presented.lastIndexOf(SEPARATOR);
  if (at <= 0 || presented.length > 200) return false;
  const id = presented.slice(0, at);
  if (id !== checkoutId) return false;
  return keys.verify(PURPOSE, id, presented.slice(at + SEPARATOR.length));
}

/** True when `presented` is the clientSecret of the checkout it names (whichever that is). */
export function isGenuineClientSecret(keys: KeyRing, presented: string): boolean {
  const at = presented.lastIndexOf(SEPARATOR);
  return at > 0 && verifyClientSecret(keys, presented.slice(0, at), presented);
}

export function looksLikeClientSecret(presented: string): boolean {
  return presented.includes(SEPARATOR);
}

/**
 * Whether a clientSecret may still read its checkout at `now` (epoch ms): while the checkout is
 * open, and for CLIENT_SECRET_ACCEPTED_AFTER_END_MS after it ended (`updatedAt` of a terminal
 * checkout is when it ended).
 */
export function clientSecretStillAccepted(
  checkout: { status: CheckoutStatus; updatedAt: string },
  now: number,
): boolean {
  return (
    !isTerminal(checkout.status) || Date.parse(checkout.updatedAt) + CLIENT_SECRET_ACCEPTED_AFTER_END_MS > now
  );
}
