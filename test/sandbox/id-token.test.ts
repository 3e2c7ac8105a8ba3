import { createHash, createPublicKey } from 'node:crypto';
import {
  compactVerify,
  createLocalJWKSet,
  decodeJwt,
  decodeProtectedHeader,
  type JWK,
  jwtVerify,
} from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUTH_REQ_ID_CLAIM } from '../../sandbox/id-token.ts';
import {
  approvedTokenResponse,
  bankJwks,
  newTestBankCustomer,
  pay,
  shopClient,
  startTestBank,
  type TestBank,
  testBankControl,
} from './helpers.ts';

let tb: TestBank;
let jwks: { keys: JWK[] };

beforeAll(async () => {
  tb = await startTestBank();
  jwks = await bankJwks(tb);
});

afterAll(async () => {
  await tb?.close();
});

const script = (login: string, body: unknown) =>
  testBankControl(tb, 'PUT', `/customers/${login}/faults`, body);

/** Verifies with the bank's JWKS (any of the given algs); the payload, or the jose error code. */
async function verifyWithJwks(idToken: string, algorithms = ['PS256']) {
  try {
    const { payload } = await jwtVerify(idToken, createLocalJWKSet(jwks), { algorithms });
    return payload;
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

/** What oauth4webapi (the library Bankpay's client uses) makes of the token response. */
async function oauthVerdict(res: Response): Promise<string> {
  try {
    await oauth.processBackchannelAuthenticationGrantResponse(tb.as, shopClient(tb), res);
    return 'accepted';
  } catch (error) {
    return (error as { code?: string }).code ?? String(error);
  }
}

const atHash = (accessToken: string) =>
  createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url');

describe('sandbox bank: the ID Token of CIBA token responses', () => {
  it('is PS256-signed by the OP, carries at_hash, the auth_req_id claim and sub = the login', async () => {
    const login = await newTestBankCustomer(tb);
    const { ack, res, body } = await approvedTokenResponse(tb, { loginHint: login });
    const header = decodeProtectedHeader(body.id_token);
    expect(header.alg).toBe('PS256');
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    const payload = await verifyWithJwks(body.id_token);
    expect(payload).toEqual({
      iss: tb.bank.issuer,
      sub: login,
      aud: 'shop',
      exp: expect.any(Number),
      iat: expect.any(Number),
      auth_time: expect.any(Number),
      at_hash: atHash(body.access_token),
      [AUTH_REQ_ID_CLAIM]: ack.auth_req_id,
    });
    expect(Object.keys(payload).sort()).toEqual(
      ['at_hash', 'aud', 'auth_time', 'exp', 'iat', 'iss', 'sub', AUTH_REQ_ID_CLAIM].sort(),
    );
    // oauth4webapi's own checks (iss, aud, exp, iat, alg, at_hash when present) pass
    expect(await oauthVerdict(res.clone() as Response)).toBe('accepted');
  });

  it('signs with a foreign key under the OP kid: the signature fails, the access token still pays', async () => {
    const login = await newTestBankCustomer(tb);
    await script(login, { idToken: { sign: 'foreign-key' } });
    const { ack, body } = await approvedTokenResponse(tb, { loginHint: login });
    const header = decodeProtectedHeader(body.id_token);
    expect(header.alg).toBe('PS256');
    expect(header.kid).toBe(jwks.keys.find((k) => k.kty === 'RSA')?.kid);
    expect(await verifyWithJwks(body.id_token)).toBe('ERR_JWS_SIGNATURE_VERIFICATION_FAILED');
    // the claims themselves are the genuine ones
    expect(decodeJwt(body.id_token)).toMatchObject({
      sub: login,
      aud: 'shop',
      [AUTH_REQ_ID_CLAIM]: ack.auth_req_id,
    });
    // the access token beside it is untouched: a client that ignored the ID Token could pay
    expect((await pay(tb, body.access_token, { idempotencyKey: `fk-${login}` })).status).toBe(201);
    const timeline = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(timeline.body.polls[0]).toMatchObject({
      result: 'tokens',
      idTokenFault: { sign: 'foreign-key', alg: 'PS256', claims: [], shift: [] },
    });
  });

  it('issues an unsigned alg "none" JWT, which oauth4webapi refuses', async () => {
    const login = await newTestBankCustomer(tb);
    await script(login, { idToken: { sign: 'none' } });
    const { res } = await approvedTokenResponse(tb, { loginHint: login });
    const body = (await res.clone().json()) as { id_token: string };
    const [header, payload, signature] = body.id_token.split('.');
    expect(JSON.parse(Buffer.from(header!, 'base64url').toString())).toEqual({ alg: 'none' });
    expect(signature).toBe('');
    expect(JSON.parse(Buffer.from(payload!, 'base64url').toString()).sub).toBe(login);
    expect(await oauthVerdict(res as Response)).not.toBe('accepted');
  });

  it('signs genuinely with the OP key but RS256 (or ES256) instead of the registered PS256', async () => {
    for (const alg of ['RS256', 'ES256'] as const) {
      const login = await newTestBankCustomer(tb);
      await script(login, { idToken: { sign: 'op', alg } });
      const { res } = await approvedTokenResponse(tb, { loginHint: login });
      const body = (await res.clone().json()) as { id_token: string };
      expect(decodeProtectedHeader(body.id_token).alg).toBe(alg);
      // a real OP signature: it verifies with the published JWKS under that alg ...
      const payload = await verifyWithJwks(body.id_token, [alg]);
      expect(payload).toMatchObject({ sub: login, iss: tb.bank.issuer });
      // ... and a client holding the registered alg refuses it
      expect(await verifyWithJwks(body.id_token, ['PS256'])).toBe('ERR_JOSE_ALG_NOT_ALLOWED');
      expect(await oauthVerdict(res as Response)).not.toBe('accepted');
    }
  });

  it('signs HS256 keyed with the OP RSA public key (key confusion)', async () => {
    const login = await newTestBankCustomer(tb);
    await script(login, { idToken: { sign: 'hs256' } });
    const { body } = await approvedTokenResponse(tb, { loginHint: login });
    const rsa = jwks.keys.find((k) => k.kty === 'RSA')!;
    expect(decodeProtectedHeader(body.id_token)).toEqual({ alg: 'HS256', kid: rsa.kid });
    const pem = createPublicKey({ key: rsa as JWK & { kty: string }, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    await expect(compactVerify(body.id_token, new Uint8Array(Buffer.from(pem)))).resolves.toBeTruthy();
    expect(await verifyWithJwks(body.id_token)).toBe('ERR_JOSE_ALG_NOT_ALLOWED');
  });
});

describe('sandbox bank: ID Token claim faults (OP-signed, one claim changed)', () => {
  const now = () => Math.floor(Date.now() / 1000);
  const cases: {
    name: string;
    fault: { claims?: Record<string, unknown>; shift?: Record<string, number> };
    expect: (claims: Record<string, unknown>) => void;
    /** oauth4webapi checks this claim itself (the others are the client's own job). */
    oauth4webapi?: 'refused';
  }[] = [
    {
      name: 'wrong iss',
      fault: { claims: { iss: 'https://evil.example/master' } },
      expect: (p) => expect(p.iss).toBe('https://evil.example/master'),
      oauth4webapi: 'refused',
    },
    {
      name: 'wrong aud',
      fault: { claims: { aud: 'another-client' } },
      expect: (p) => expect(p.aud).toBe('another-client'),
      oauth4webapi: 'refused',
    },
    {
      name: 'several aud without azp',
      fault: { claims: { aud: ['shop', 'another-client'] } },
      expect: (p) => {
        expect(p.aud).toEqual(['shop', 'another-client']);
        expect(p).not.toHaveProperty('azp');
      },
      oauth4webapi: 'refused',
    },
    {
      name: 'several aud with a wrong azp',
      fault: { claims: { aud: ['shop', 'another-client'], azp: 'another-client' } },
      expect: (p) => expect(p.azp).toBe('another-client'),
      oauth4webapi: 'refused',
    },
    {
      name: 'expired exp',
      fault: { shift: { exp: -3600, iat: -3660 } },
      expect: (p) => expect(p.exp as number).toBeLessThan(now()),
      oauth4webapi: 'refused',
    },
    {
      name: 'stale iat (an hour old, exp still ahead)',
      fault: { shift: { iat: -3600 } },
      expect: (p) => {
        expect(p.iat as number).toBeLessThanOrEqual(now() - 3590);
        expect(p.exp as number).toBeGreaterThan(now());
      },
    },
    {
      name: 'sub of another customer',
      fault: { claims: { sub: 'bob' } },
      expect: (p) => expect(p.sub).toBe('bob'),
    },
    {
      name: 'wrong auth_req_id claim',
      fault: { claims: { [AUTH_REQ_ID_CLAIM]: 'not-the-auth-req-id' } },
      expect: (p) => expect(p[AUTH_REQ_ID_CLAIM]).toBe('not-the-auth-req-id'),
    },
    {
      name: 'at_hash deleted',
      fault: { claims: { at_hash: null } },
      expect: (p) => expect(p).not.toHaveProperty('at_hash'),
    },
  ];

  it.each(cases)('$name', async (c) => {
    const login = await newTestBankCustomer(tb);
    await script(login, { idToken: { ...c.fault, times: 1 } });
    const { ack, res } = await approvedTokenResponse(tb, { loginHint: login });
    const body = (await res.clone().json()) as { id_token: string; access_token: string };
    // still a genuine OP signature: only the scripted claim differs
    const { payload } = await compactVerify(body.id_token, createLocalJWKSet(jwks), {
      algorithms: ['PS256'],
    });
    const claims = JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
    c.expect(claims);
    const untouched = ['iss', 'sub', 'aud', 'azp', 'exp', 'iat', 'at_hash', AUTH_REQ_ID_CLAIM].filter(
      (k) => !(k in (c.fault.claims ?? {})) && !(k in (c.fault.shift ?? {})),
    );
    const expected: Record<string, unknown> = {
      iss: tb.bank.issuer,
      sub: login,
      aud: 'shop',
      at_hash: atHash(body.access_token),
      [AUTH_REQ_ID_CLAIM]: ack.auth_req_id,
    };
    for (const k of untouched) if (k in expected) expect(claims[k]).toEqual(expected[k]);
    if (c.oauth4webapi) expect(await oauthVerdict(res as Response)).not.toBe('accepted');
    // times: 1 — the next token response is clean again
    const clean = await approvedTokenResponse(tb, { loginHint: login });
    expect(await verifyWithJwks(clean.body.id_token)).toMatchObject({
      iss: tb.bank.issuer,
      sub: login,
      aud: 'shop',
      at_hash: atHash(clean.body.access_token),
      [AUTH_REQ_ID_CLAIM]: clean.ack.auth_req_id,
    });
    expect((await testBankControl(tb, 'GET', `/customers/${login}/faults`)).body.idToken.times).toBe(0);
  });

  it('keeps rewriting every token response while no times is given', async () => {
    const login = await newTestBankCustomer(tb);
    await script(login, { idToken: { claims: { sub: 'carol' } } });
    for (let i = 0; i < 2; i++) {
      const { body } = await approvedTokenResponse(tb, { loginHint: login });
      expect(decodeJwt(body.id_token).sub).toBe('carol');
    }
    // another customer's tokens are untouched
    const other = await newTestBankCustomer(tb);
    expect(decodeJwt((await approvedTokenResponse(tb, { loginHint: other })).body.id_token).sub).toBe(other);
  });

  it('validates the idToken member of a fault script', async () => {
    const login = await newTestBankCustomer(tb);
    expect((await script(login, { idToken: { sign: 'rsa' } })).status).toBe(400);
    expect((await script(login, { idToken: { sign: 'none', alg: 'RS256' } })).status).toBe(400);
    expect((await script(login, { idToken: { alg: 'HS512' } })).status).toBe(400);
    expect((await script(login, { idToken: { claims: [] } })).status).toBe(400);
    expect((await script(login, { idToken: { shift: { iat: 'an hour' } } })).status).toBe(400);
    expect((await script(login, { idToken: { times: 0 } })).status).toBe(400);
    expect((await script(login, { idToken: { signature: 'op' } })).status).toBe(400);
    const ok = await script(login, { idToken: { claims: { azp: null }, alg: 'ES256', times: 2 } });
    expect(ok).toEqual({
      status: 200,
      body: { idToken: { sign: 'op', alg: 'ES256', claims: { azp: null }, times: 2 } },
    });
  });
});
