import { createHash } from 'node:crypto';
import {
  type CryptoKey,
  createLocalJWKSet,
  exportJWK,
  generateKeyPair,
  importJWK,
  type JWK,
  type JWTPayload,
  SignJWT,
  UnsecuredJWT,
} from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { BankError } from '../../src/integrations/bank.errors.ts';
import {
  AUTH_REQ_ID_CLAIM,
  accessTokenHash,
  type IdTokenExpectations,
  validateIdToken,
} from '../../src/integrations/id-token.validator.ts';
import { createJwksCache } from '../../src/integrations/jwks.cache.ts';

const ISSUER = 'https://bank.example/master';
const CLIENT_ID = 'shop';
const AUTH_REQ_ID = 'auth-req-1';
const ACCESS_TOKEN = 'eyJhbGciOiJQUzI1NiJ9.access-token-body.signature';
const NOW = Date.UTC(2026, 10, 26, 12, 0, 0);
const nowSeconds = Math.floor(NOW / 1000);

let rsa: { privateKey: CryptoKey; publicJwk: JWK };
let foreign: { privateKey: CryptoKey };
let ec: { privateKey: CryptoKey; publicJwk: JWK };
let keys: ReturnType<typeof createLocalJWKSet>;

beforeAll(async () => {
  const r = await generateKeyPair('PS256', { extractable: true });
  rsa = { privateKey: r.privateKey, publicJwk: { ...(await exportJWK(r.publicKey)), kid: 'rsa-1' } };
  foreign = { privateKey: (await generateKeyPair('PS256')).privateKey };
  const e = await generateKeyPair('ES256', { extractable: true });
  ec = { privateKey: e.privateKey, publicJwk: { ...(await exportJWK(e.publicKey)), kid: 'ec-1' } };
  keys = createLocalJWKSet({ keys: [rsa.publicJwk, ec.publicJwk] });
});

function atHash(token: string): string {
  const digest = createHash('sha256').update(token).digest();
  return digest.subarray(0, 16).toString('base64url');
}

function claims(overrides: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    iss: ISSUER,
    aud: CLIENT_ID,
    sub: 'alice',
    iat: nowSeconds - 2,
    exp: nowSeconds + 600,
    auth_time: nowSeconds - 5,
    at_hash: atHash(ACCESS_TOKEN),
    [AUTH_REQ_ID_CLAIM]: AUTH_REQ_ID,
  };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base as JWTPayload;
}

async function sign(
  payload: JWTPayload,
  options: { alg?: string; key?: CryptoKey | Uint8Array; kid?: string } = {},
): Promise<string> {
  const alg = options.alg ?? 'PS256';
  return new SignJWT(payload)
    .setProtectedHeader({ alg, kid: options.kid ?? (alg === 'ES256' ? 'ec-1' : 'rsa-1'), typ: 'JWT' })
    .sign(options.key ?? (alg === 'ES256' ? ec.privateKey : rsa.privateKey));
}

function expectations(overrides: Partial<IdTokenExpectations> = {}): IdTokenExpectations {
  return {
    issuer: ISSUER,
    clientId: CLIENT_ID,
    algorithm: 'PS256',
    authReqId: AUTH_REQ_ID,
    accessToken: ACCESS_TOKEN,
    expectedSubject: 'alice',
    now: NOW,
    ...overrides,
  };
}

/** The BankError of a refused token; also proves the message never carries the token. */
async function refusal(token: string, expected = expectations()): Promise<BankError> {
  try {
    await validateIdToken(token, keys, expected);
  } catch (error) {
    expect(error).toBeInstanceOf(BankError);
    const e = error as BankError;
    expect(e.code).toBe('invalid_id_token');
    expect(e.retryable).toBe(false);
    expect(e.message).not.toContain(token);
    for (const part of token.split('.')) if (part.length > 8) expect(e.message).not.toContain(part);
    expect(e.message).not.toContain(ACCESS_TOKEN);
    return e;
  }
  throw new Error('the ID Token was accepted');
}

describe('validateIdToken (OIDC Core §3.1.3.7, CIBA Core §7.4)', () => {
  it('accepts a valid ID Token and returns its claims', async () => {
    const result = await validateIdToken(await sign(claims()), keys, expectations());
    expect(result.sub).toBe('alice');
    expect(result[AUTH_REQ_ID_CLAIM]).toBe(AUTH_REQ_ID);
  });

  it('accepts one without the optional claims (at_hash, auth_req_id, azp) and without a subject pin', async () => {
    const token = await sign(claims({ at_hash: undefined, [AUTH_REQ_ID_CLAIM]: undefined, sub: 'u-123' }));
    const result = await validateIdToken(token, keys, expectations({ expectedSubject: undefined }));
    expect(result.sub).toBe('u-123');
  });

  it('accepts ES256 when that is the configured algorithm', async () => {
    const token = await sign(claims(), { alg: 'ES256' });
    await expect(validateIdToken(token, keys, expectations({ algorithm: 'ES256' }))).resolves.toMatchObject({
      sub: 'alice',
    });
  });

  it('refuses a signature by another key under the bank key id', async () => {
    const e = await refusal(await sign(claims(), { key: foreign.privateKey }));
    expect(e.message).toMatch(/signature/);
  });

  it('refuses a kid the bank does not publish', async () => {
    const e = await refusal(await sign(claims(), { key: foreign.privateKey, kid: 'unknown' }));
    expect(e.message).toMatch(/signature: no key/);
  });

  it('refuses alg none', async () => {
    const token = new UnsecuredJWT(claims()).encode();
    const e = await refusal(token);
    expect(e.message).toMatch(/alg/);
  });

  it('refuses HS256 (keyed with the public key: the RS/HS confusion attack)', async () => {
    const secret = new TextEncoder().encode(JSON.stringify(rsa.publicJwk));
    const e = await refusal(await sign(claims(), { alg: 'HS256', key: secret }));
    expect(e.message).toMatch(/alg/);
  });

  it('refuses RS256 with the genuine bank key when PS256 is pinned', async () => {
    // The same RSA key, imported for RSASSA-PKCS1-v1_5: the signature itself verifies under RS256.
    const rs256 = (await importJWK(await exportJWK(rsa.privateKey), 'RS256')) as CryptoKey;
    const token = await sign(claims(), { alg: 'RS256', key: rs256 });
    await expect(validateIdToken(token, keys, expectations({ algorithm: 'RS256' }))).resolves.toBeTruthy();
    const e = await refusal(token);
    expect(e.message).toMatch(/alg: not the configured PS256/);
  });

  it('refuses ES256 when PS256 is pinned, even though the bank publishes the EC key', async () => {
    const e = await refusal(await sign(claims(), { alg: 'ES256' }));
    expect(e.message).toMatch(/alg/);
  });

  it('never accepts a configured algorithm outside the allowlist', async () => {
    const token = await sign(claims());
    const e = await refusal(token, expectations({ algorithm: 'HS256' as 'PS256' }));
    expect(e.message).toMatch(/alg/);
  });

  it('refuses another issuer', async () => {
    const e = await refusal(await sign(claims({ iss: 'https://evil.example/master' })));
    expect(e.message).toMatch(/^ID Token iss/);
  });

  it('refuses an audience without our client_id', async () => {
    const e = await refusal(await sign(claims({ aud: 'someone-else' })));
    expect(e.message).toMatch(/aud: does not contain our client_id/);
  });

  it('refuses a missing audience', async () => {
    const e = await refusal(await sign(claims({ aud: undefined })));
    expect(e.message).toMatch(/aud/);
  });

  it('refuses several audiences without azp', async () => {
    const e = await refusal(await sign(claims({ aud: [CLIENT_ID, 'other'] })));
    expect(e.message).toMatch(/azp: required/);
  });

  it('accepts several audiences with azp = our client_id', async () => {
    const token = await sign(claims({ aud: [CLIENT_ID, 'other'], azp: CLIENT_ID }));
    await expect(validateIdToken(token, keys, expectations())).resolves.toMatchObject({ azp: CLIENT_ID });
  });

  it('refuses an azp that is not our client_id (single or several audiences)', async () => {
    expect((await refusal(await sign(claims({ azp: 'other' })))).message).toMatch(/azp: not our client_id/);
    expect((await refusal(await sign(claims({ aud: [CLIENT_ID, 'other'], azp: 'other' })))).message).toMatch(
      /azp: not our client_id/,
    );
  });

  it('refuses an expired token beyond the 30 s tolerance, accepts one within it', async () => {
    expect((await refusal(await sign(claims({ exp: nowSeconds - 31 })))).message).toMatch(/exp: expired/);
    await expect(
      validateIdToken(await sign(claims({ exp: nowSeconds - 20 })), keys, expectations()),
    ).resolves.toBeTruthy();
  });

  it('refuses a token without exp', async () => {
    expect((await refusal(await sign(claims({ exp: undefined })))).message).toMatch(/exp: missing/);
  });

  it('refuses a stale iat (older than 5 minutes)', async () => {
    const e = await refusal(await sign(claims({ iat: nowSeconds - 10 * 60 })));
    expect(e.message).toMatch(/iat: too old/);
  });

  it('refuses an iat in the future beyond the tolerance, accepts small skew', async () => {
    expect((await refusal(await sign(claims({ iat: nowSeconds + 120 })))).message).toMatch(
      /iat: in the future/,
    );
    await expect(
      validateIdToken(await sign(claims({ iat: nowSeconds + 10 })), keys, expectations()),
    ).resolves.toBeTruthy();
  });

  it('refuses a token without iat', async () => {
    expect((await refusal(await sign(claims({ iat: undefined })))).message).toMatch(/iat: missing/);
  });

  it('refuses a token without sub', async () => {
    expect((await refusal(await sign(claims({ sub: undefined })))).message).toMatch(/sub: missing/);
  });

  it('refuses a subject other than the login hint when the bank maps them', async () => {
    const e = await refusal(await sign(claims({ sub: 'bob' })));
    expect(e.message).toMatch(/sub: not the customer/);
  });

  it('refuses an auth_req_id claim for another request', async () => {
    const e = await refusal(await sign(claims({ [AUTH_REQ_ID_CLAIM]: 'another-request' })));
    expect(e.message).toMatch(/auth_req_id/);
  });

  it('refuses an at_hash that does not match the access token', async () => {
    const e = await refusal(await sign(claims({ at_hash: atHash('another-access-token') })));
    expect(e.message).toMatch(/at_hash/);
  });

  it('refuses a token without the auth_req_id claim when the bank requires it (requireAuthReqIdClaim)', async () => {
    const token = await sign(claims({ [AUTH_REQ_ID_CLAIM]: undefined }));
    const e = await refusal(token, expectations({ requireAuthReqIdClaim: true }));
    expect(e.message).toBe(
      'ID Token auth_req_id (urn:openid:params:jwt:claim:auth_req_id): missing, and this bank requires it',
    );
    // Optional by default (CIBA Core §10.3.1): the same token passes without the requirement.
    await expect(validateIdToken(token, keys, expectations())).resolves.toMatchObject({ sub: 'alice' });
  });

  it('refuses a token without at_hash when the bank requires it (requireAtHash)', async () => {
    const token = await sign(claims({ at_hash: undefined }));
    const e = await refusal(token, expectations({ requireAtHash: true }));
    expect(e.message).toBe('ID Token at_hash: missing, and this bank requires it');
    await expect(validateIdToken(token, keys, expectations())).resolves.toMatchObject({ sub: 'alice' });
  });

  it('accepts a token with both claims when both are required, and still checks their values', async () => {
    const strict = expectations({ requireAuthReqIdClaim: true, requireAtHash: true });
    await expect(validateIdToken(await sign(claims()), keys, strict)).resolves.toMatchObject({
      [AUTH_REQ_ID_CLAIM]: AUTH_REQ_ID,
    });
    expect((await refusal(await sign(claims({ at_hash: atHash('other') })), strict)).message).toMatch(
      /at_hash: does not match/,
    );
    expect(
      (await refusal(await sign(claims({ [AUTH_REQ_ID_CLAIM]: 'another-request' })), strict)).message,
    ).toMatch(/auth_req_id: not the polled request/);
    // A claim set to null is there but unusable: refused as a mismatch, never taken as absent.
    expect((await refusal(await sign(claims({ at_hash: null })), strict)).message).toMatch(/at_hash/);
  });

  it('refuses a nbf in the future', async () => {
    const e = await refusal(await sign(claims({ nbf: nowSeconds + 600 })));
    expect(e.message).toMatch(/nbf/);
  });

  it('refuses what is not a JWT at all', async () => {
    const e = await refusal('not-a-jwt');
    expect(e.message).toMatch(/format/);
  });

  it('computes at_hash as the left half of SHA-256, base64url (OIDC Core §3.2.2.9)', () => {
    // Example from OIDC Core Appendix A.4 / A.6 (access_token jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y).
    expect(accessTokenHash('jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y', 'RS256')).toBe(
      '77QmUPtjPfzWtF2AnpK9RQ',
    );
  });
});

describe('createJwksCache (the bank keys, refreshed on an unknown kid)', () => {
  function fakeFetch(sets: Array<{ keys: JWK[] } | 'down'>) {
    let calls = 0;
    const fetch = async () => {
      const next = sets[Math.min(calls, sets.length - 1)];
      calls++;
      if (next === 'down') throw new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
      return new Response(JSON.stringify(next), {
        status: 200,
        headers: { 'content-type': 'application/json' },
      });
    };
    return { fetch, calls: () => calls };
  }

  it('fetches once, then refetches when a token names a key it does not know (rotation)', async () => {
    let clock = NOW;
    const rotated = await generateKeyPair('PS256', { extractable: true });
    const rotatedJwk = { ...(await exportJWK(rotated.publicKey)), kid: 'rsa-2' };
    const f = fakeFetch([{ keys: [rsa.publicJwk] }, { keys: [rsa.publicJwk, rotatedJwk] }]);
    const cache = createJwksCache(f.fetch, 'https://bank.example/jwks', { now: () => clock });
    await cache.refresh();
    await validateIdToken(await sign(claims()), cache.getKey, expectations());
    expect(f.calls()).toBe(1);
    clock += 60_000; // past the cooldown
    const token = await sign(claims({ iat: Math.floor(clock / 1000) }), {
      key: rotated.privateKey,
      kid: 'rsa-2',
    });
    await validateIdToken(token, cache.getKey, expectations({ now: clock }));
    expect(f.calls()).toBe(2);
  });

  it('keeps the keys it has when a refetch fails, and answers bank_unavailable when it has none', async () => {
    let clock = NOW;
    const f = fakeFetch([{ keys: [rsa.publicJwk] }, 'down']);
    const cache = createJwksCache(f.fetch, 'https://bank.example/jwks', { now: () => clock, maxAgeMs: 1000 });
    await cache.refresh();
    clock += 5000; // stale: a refetch is tried and fails
    const token = await sign(claims({ iat: Math.floor(clock / 1000) }));
    await expect(validateIdToken(token, cache.getKey, expectations({ now: clock }))).resolves.toBeTruthy();

    const empty = createJwksCache(fakeFetch(['down']).fetch, 'https://bank.example/jwks', {
      now: () => clock,
    });
    await expect(validateIdToken(token, empty.getKey, expectations({ now: clock }))).rejects.toMatchObject({
      code: 'bank_unavailable',
      retryable: true,
    });
  });
});
