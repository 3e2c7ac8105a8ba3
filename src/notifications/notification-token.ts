/**
 * The client_notification_token of CIBA ping mode (CIBA Core §7.1, §10.2): a bearer token we make
 * for each backchannel authentication request, which the bank's ping must carry. Only its SHA-256
 * is stored, so a database read does not yield a token that could forge pings.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** 256 bits of randomness (DESIGN.md §7.1 asks ≥ 128), base64url: 43 characters of the Bearer token68 set. */
const TOKEN_BYTES = 32;

function sha256(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A fresh token and the hash to store (hex SHA-256). */
export function newClientNotificationToken(): { token: string; hash: string } {
  const token = randomBytes(TOKEN_BYTES).toString('base64url');
  return { token, hash: sha256(token).toString('hex') };
}

// Compared against when there is no stored hash, so that an unknown auth_req_id costs what a
// known one does.
const NO_HASH = sha256('no stored client_notification_token');

/**
 * Whether a presented bearer token is the one whose hash was stored, compared in constant time
 * over the two SHA-256 digests (hashing first makes the lengths equal whatever was presented).
 * False when `storedHash` is null or not a 64-digit hex string.
 */
export function clientNotificationTokenMatches(presented: string, storedHash: string | null): boolean {
  const stored =
    storedHash !== null && /^[0-9a-f]{64}$/.test(storedHash) ? Buffer.from(storedHash, 'hex') : null;
  const equal = timingSafeEqual(sha256(presented), stored ?? NO_HASH);
  return stored !== null && equal;
}
