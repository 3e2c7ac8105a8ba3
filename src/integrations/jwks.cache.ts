/**
 * The bank's ID Token signing keys (OIDC Discovery `jwks_uri`, RFC 7517), fetched over the bank's
 * mTLS Agent and cached. Refetched when a token names a key we do not know (key rotation, OIDC
 * Core §10.1.1) at most once per cooldown, and after `maxAgeMs`; a failed refetch keeps the keys
 * we have, so a JWKS outage does not turn valid tokens into failures.
 */
import { createLocalJWKSet, errors, type JSONWebKeySet, type JWTVerifyGetKey } from 'jose';
import { answerError, readBankAnswer, unreadableBody } from './bank.answers.ts';
import { BankError, bankErrorCodes, transportError } from './bank.errors.ts';
import type { BankFetch } from './mtls.agent.ts';

export interface JwksCacheOptions {
  now: () => number;
  /** Minimum time between two fetches caused by an unknown key (ms, default 30 s). */
  cooldownMs?: number;
  /** Refetch in the background of a verification after this long (ms, default 10 min). */
  maxAgeMs?: number;
}

export interface JwksCache {
  /** jose key resolver for jwtVerify. */
  getKey: JWTVerifyGetKey;
  /** Fetches now (used to warm the cache right after discovery). */
  refresh(): Promise<void>;
}

/** GET jwks_uri (OIDC Discovery §3): the raw Response. */
export function jwksRequest(fetch: BankFetch, jwksUri: string): Promise<Response> {
  return fetch(jwksUri, { method: 'GET', headers: { accept: 'application/json, application/jwk-set+json' } });
}

/**
 * Validates a JWKS answer (RFC 7517 §5): a JSON object with a `keys` array. Anything else is
 * transient (rows later, otherStatus, notJson, jwksWithoutKeys in bank.answers.ts): a key set we
 * cannot read now may be readable on the next fetch, and the keys we have stay in use meanwhile.
 */
export async function processJwksResponse(response: Response, now: number): Promise<JSONWebKeySet> {
  const answer = await readBankAnswer(response, 'jwks_uri', now, (status) => status === 200);
  if (!answer.json) throw unreadableBody('jwks_uri', answer, now);
  const keys = answer.json.keys;
  if (!Array.isArray(keys) || !keys.every((k) => typeof k === 'object' && k !== null && !Array.isArray(k))) {
    throw answerError('jwksWithoutKeys', 'jwks_uri', 'the answer has no keys array', answer, now);
  }
  return answer.json as unknown as JSONWebKeySet;
}

export function createJwksCache(fetch: BankFetch, jwksUri: string, options: JwksCacheOptions): JwksCache {
  const cooldownMs = options.cooldownMs ?? 30_000;
  const maxAgeMs = options.maxAgeMs ?? 10 * 60_000;
  let local: JWTVerifyGetKey | undefined;
  let fetchedAt = Number.NEGATIVE_INFINITY;
  let pending: Promise<void> | undefined;

  function refresh(): Promise<void> {
    pending ??= (async () => {
      try {
        let response: Response;
        try {
          response = await jwksRequest(fetch, jwksUri);
        } catch (error) {
          throw transportError(error, 'jwks_uri');
        }
        const jwks = await processJwksResponse(response, options.now());
        local = createLocalJWKSet(jwks);
        fetchedAt = options.now();
      } finally {
        pending = undefined;
      }
    })();
    return pending;
  }

  const getKey: JWTVerifyGetKey = async (header, token) => {
    if (!local) await refresh();
    // Stale: refetch in the background. The keys we have still verify this token (the bank may
    // already have spent the auth_req_id: never make its answer wait on a slow jwks_uri); a
    // rotated-out kid meets the refetch below.
    else if (options.now() - fetchedAt > maxAgeMs) void refresh().catch(() => undefined);
    const current = local;
    if (!current) throw new BankError(bankErrorCodes.bankUnavailable, 'jwks_uri: no keys');
    try {
      return await current(header, token);
    } catch (error) {
      if (!(error instanceof errors.JWKSNoMatchingKey) || options.now() - fetchedAt < cooldownMs) throw error;
      // An unknown kid: the bank may have rotated its keys since we fetched them.
      await refresh();
      const refreshed = local;
      if (!refreshed) throw error;
      return refreshed(header, token);
    }
  };

  return { getKey, refresh };
}
