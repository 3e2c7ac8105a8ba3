/**
 * Idempotency-Key records (the Stripe model; IETF draft-ietf-httpapi-idempotency-key-header): the
 * only code that touches the `idempotency_records` table. The first response to a key is stored
 * and replayed for 24 h; the same key with another body, or while the first request still runs,
 * is refused (the service says how).
 *
 * A key never seen is taken in the same statement that creates the checkout and stores its
 * response: `checkout.repository.ts` `insert` embeds `completeRecordSql` below, so a stored
 * response always has its checkout, and a concurrent duplicate waits for that one statement, then
 * gets the replay. A key whose record expired, or was left `in_flight` by a crashed request, is
 * taken over here first by compare-and-set (`claim`), and a request meeting such a claim is told
 * it is in flight.
 *
 * Access style: Prisma for the cold statements (only duplicates and retries reach `claim`); the
 * SQL fragment for the create, which runs on node-postgres with the checkout insert.
 */
import { createHash } from 'node:crypto';
import type { Prisma } from '../generated/prisma/client.ts';
import type { Database } from '../infra/database.ts';

export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/** A claim older than this was left by a crashed request: a retry may take it over. */
export const STALE_CLAIM_MS = 60 * 1000;

/** Canonical JSON (sorted keys) so that key order does not make "another body". */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value && typeof value === 'object') {
    return `{${Object.keys(value)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/** SHA-256 (hex) of the method, the route and the canonical body: what "the same request" means. */
export function requestFingerprint(method: string, route: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${route}\n${canonical(body)}`)
    .digest('hex');
}

/** What the record of a create holds once the checkout exists. */
export interface StoredResponse {
  apiKeyId: string;
  key: string;
  requestHash: string;
  status: number;
  body: unknown;
  expiresAt: Date;
}

/** How an existing key was met: taken for this request, or what the earlier request left. */
export type Claim =
  | { kind: 'claimed' }
  | { kind: 'replay'; status: number; body: Prisma.JsonValue }
  /** Same key, another request body. */
  | { kind: 'reused' }
  /** Same key and body, and the first request has not stored its response yet. */
  | { kind: 'in_flight' };

/**
 * The statement that stores a create's response under its key, as a CTE for the checkout insert
 * (one statement, atomic). Parameters: $1 api key id, $2 key, $3 request hash, $4 response status,
 * $5 response body (json text), $6 resource id, $7 created at, $8 record expiry. Yields one row
 * when the key was taken:
 * - 'new': the key must not exist yet (nothing is stored when it does);
 * - 'claimed': the caller holds the key `in_flight` (see `claim`); the record is completed while
 *   the claim is still this request's.
 */
export function completeRecordSql(claim: 'new' | 'claimed'): string {
  return claim === 'new'
    ? `INSERT INTO idempotency_records (api_key_id, key, request_hash, state, response_status, response_body, resource_id, created_at, expires_at)
         VALUES ($1, $2, $3, 'done', $4, $5::jsonb, $6, $7, $8)
         ON CONFLICT (api_key_id, key) DO NOTHING RETURNING 1`
    : `UPDATE idempotency_records
         SET state = 'done', response_status = $4, response_body = $5::jsonb, resource_id = $6, created_at = $7, expires_at = $8
         WHERE api_key_id = $1 AND key = $2 AND request_hash = $3 AND state = 'in_flight'
         RETURNING 1`;
}

/** The values `completeRecordSql` takes, in its parameter order ($1–$8). */
export function completeRecordValues(
  response: StoredResponse,
  resourceId: string,
  createdAt: Date,
): unknown[] {
  return [
    response.apiKeyId,
    response.key,
    response.requestHash,
    response.status,
    JSON.stringify(response.body),
    resourceId,
    createdAt,
    response.expiresAt,
  ];
}

export interface IdempotencyRepository {
  /**
   * For a key that already has a record: takes it `in_flight` for this request when that record
   * expired or was abandoned (compare-and-set: only one request wins), else says what it holds.
   */
  claim(apiKeyId: string, key: string, fingerprint: string): Promise<Claim>;
  /** Gives the key back after a failure that stored nothing, so the client can retry with it. */
  release(apiKeyId: string, key: string): Promise<void>;
  /** Deletes records past their expiry; how many. */
  purgeExpired(now: Date): Promise<number>;
}

export function createIdempotencyRepository(db: Database): IdempotencyRepository {
  async function claim(apiKeyId: string, key: string, fingerprint: string): Promise<Claim> {
    const now = new Date();
    const expiresAt = new Date(now.getTime() + IDEMPOTENCY_TTL_MS);
    const inserted = await db.$executeRaw`
      INSERT INTO idempotency_records (api_key_id, key, request_hash, state, created_at, expires_at)
      VALUES (${apiKeyId}, ${key}, ${fingerprint}, 'in_flight', ${now}, ${expiresAt})
      ON CONFLICT (api_key_id, key) DO NOTHING`;
    if (inserted === 1) return { kind: 'claimed' };

    const existing = await db.idempotencyRecord.findUnique({ where: { apiKeyId_key: { apiKeyId, key } } });
    if (!existing) return claim(apiKeyId, key, fingerprint); // removed meanwhile
    const expired = existing.expiresAt.getTime() <= now.getTime();
    const stale =
      existing.state === 'in_flight' && now.getTime() - existing.createdAt.getTime() > STALE_CLAIM_MS;
    if (expired || stale) {
      // Take over, but only if nobody else did first (compare-and-set on the old claim).
      const { count } = await db.idempotencyRecord.updateMany({
        where: { apiKeyId, key, createdAt: existing.createdAt, state: existing.state },
        data: {
          requestHash: fingerprint,
          state: 'in_flight',
          createdAt: now,
          expiresAt,
          responseStatus: null,
          responseBody: undefined,
          resourceId: null,
        },
      });
      if (count === 1) return { kind: 'claimed' };
      return claim(apiKeyId, key, fingerprint);
    }
    if (existing.requestHash !== fingerprint) return { kind: 'reused' };
    if (existing.state === 'in_flight' || existing.responseStatus === null) return { kind: 'in_flight' };
    return { kind: 'replay', status: existing.responseStatus, body: existing.responseBody };
  }

  return {
    claim,
    async release(apiKeyId, key) {
      await db.idempotencyRecord.deleteMany({ where: { apiKeyId, key, state: 'in_flight' } }).catch(() => {});
    },
    async purgeExpired(now) {
      const { count } = await db.idempotencyRecord.deleteMany({ where: { expiresAt: { lt: now } } });
      return count;
    },
  };
}
