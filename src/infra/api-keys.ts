/**
 * Merchant API keys: 256 random bits, shown once, stored only as SHA-256 (a fast hash is right
 * for high-entropy secrets: there is nothing to brute-force). Lookup by hash is an index hit; the
 * secret itself is never compared, so its timing tells nothing about it.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Database } from './database.ts';

export const API_KEY_PREFIX = 'bpk_';

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export interface CreatedApiKey {
  id: string;
  name: string;
  key: string;
}

export async function createApiKey(db: Database, name: string): Promise<CreatedApiKey> {
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  const id = randomUUID();
  await db.apiKey.create({ data: { id, name, prefix: key.slice(0, 12), hash: hashSecret(key) } });
  return { id, name, key };
}

/**
 * Keys verified in the last few seconds (by hash, never the secret), so that a storefront's
 * requests do not each pay a database lookup: a key revoked in the database stops working within
 * this time. Unknown keys are never remembered.
 */
export const VERIFIED_KEY_TTL_MS = 5_000;
const MAX_VERIFIED_KEYS = 10_000;
const verified = new Map<string, { id: string; until: number }>();

/** The API key's id when `presented` is a live merchant key, else null. */
export async function authenticateApiKey(db: Database, presented: string): Promise<string | null> {
  if (!presented.startsWith(API_KEY_PREFIX) || presented.length > 200) return null;
  const hash = hashSecret(presented);
  const now = Date.now();
  const known = verified.get(hash);
  if (known && known.until > now) return known.id;
  const row = await db.apiKey.findUnique({
    where: { hash },
    select: { id: true, revokedAt: true },
  });
  if (!row || row.revokedAt) {
    verified.delete(hash);
    return null;
  }
  if (verified.size >= MAX_VERIFIED_KEYS) verified.clear();
  verified.set(hash, { id: row.id, until: now + VERIFIED_KEY_TTL_MS });
  return row.id;
}
