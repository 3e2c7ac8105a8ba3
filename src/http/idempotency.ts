/**
 * Idempotency-Key for unsafe requests (the Stripe model; IETF draft-ietf-httpapi-idempotency-key-header):
 * the first response is stored and replayed for 24 h; the same key with another body is a client
 * error (422); the same key while the first request still runs is a conflict (409).
 *
 * A key never seen is taken in the same statement that creates the resource and stores its
 * response (checkout.repository.ts `insertCheckout`): a stored response always has its resource,
 * and a concurrent duplicate waits for that one statement, then gets the replay. A key whose record
 * expired, or was left `in_flight` by a crashed request, is claimed here first (compare-and-set),
 * and a request meeting such a claim gets 409.
 */
import { createHash } from 'node:crypto';
import type { Prisma } from '../generated/prisma/client.ts';
import type { Database } from '../infra/database.ts';
import { ProblemError } from './problem.ts';

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

export function requestFingerprint(method: string, route: string, body: unknown): string {
  return createHash('sha256')
    .update(`${method} ${route}\n${canonical(body)}`)
    .digest('hex');
}

export type Claim = { kind: 'claimed' } | { kind: 'replay'; status: number; body: Prisma.JsonValue };

export async function claimIdempotencyKey(
  db: Database,
  apiKeyId: string,
  key: string,
  fingerprint: string,
): Promise<Claim> {
  const now = new Date();
  const expiresAt = new Date(now.getTime() + IDEMPOTENCY_TTL_MS);
  const inserted = await db.$executeRaw`
    INSERT INTO idempotency_records (api_key_id, key, request_hash, state, created_at, expires_at)
    VALUES (${apiKeyId}, ${key}, ${fingerprint}, 'in_flight', ${now}, ${expiresAt})
    ON CONFLICT (api_key_id, key) DO NOTHING`;
  if (inserted === 1) return { kind: 'claimed' };

  const existing = await db.idempotencyRecord.findUnique({ where: { apiKeyId_key: { apiKeyId, key } } });
  if (!existing) return claimIdempotencyKey(db, apiKeyId, key, fingerprint); // removed meanwhile
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
    return claimIdempotencyKey(db, apiKeyId, key, fingerprint);
  }
  if (existing.requestHash !== fingerprint) {
    throw new ProblemError(
      422,
      'idempotency_key_reused',
      'Idempotency-Key reused',
      'This Idempotency-Key was used with a different request body',
    );
  }
  if (existing.state === 'in_flight' || existing.responseStatus === null) {
    throw new ProblemError(
      409,
      'idempotency_key_in_use',
      'Request in progress',
      'A request with this Idempotency-Key is still being processed; retry later',
      {
        retryAfterSeconds: 1,
      },
    );
  }
  return { kind: 'replay', status: existing.responseStatus, body: existing.responseBody };
}

/** Gives the key back after a failure that stored nothing, so the client can retry with it. */
export async function releaseIdempotencyKey(db: Database, apiKeyId: string, key: string): Promise<void> {
  await db.idempotencyRecord.deleteMany({ where: { apiKeyId, key, state: 'in_flight' } }).catch(() => {});
}
