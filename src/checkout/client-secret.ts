/**
 * The clientSecret lets a browser follow its own checkout without the merchant key. It is derived
 * (HMAC of the checkout id under the key ring) rather than stored: nothing to leak from the
 * database, the create response can be replayed exactly, and it only ever opens its own checkout.
 */
import type { KeyRing } from '../infra/crypto.ts';

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

export function looksLikeClientSecret(presented: string): boolean {
  return presented.includes(SEPARATOR);
}
