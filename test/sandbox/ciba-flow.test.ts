import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, decodeJwt, decodeProtectedHeader, jwtVerify } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  app,
  DETAILS,
  errorCode,
  ORDER,
  pay,
  poll,
  pollResult,
  requestObject,
  shopClient,
  shopJwtClient,
  signingKey,
  startCiba,
  startCibaOk,
  startTestBank,
  type TestBank,
  testBankControl,
  transport,
} from './helpers.ts';

let tb: TestBank;

beforeAll(async () => {
  tb = await startTestBank();
});

afterAll(async () => {
  await tb?.close();
});

describe('sandbox bank: CIBA poll round trip over mTLS', () => {
  it('publishes mTLS endpoint aliases and the CIBA/RAR metadata in discovery', () => {
    const aliases = tb.as.mtls_endpoint_aliases;
    expect(aliases?.backchannel_authentication_endpoint).toBe(`${tb.bank.issuer}/mtls/backchannel`);
    expect(aliases?.token_endpoint).toBe(`${tb.bank.issuer}/mtls/token`);
    expect(tb.as.backchannel_token_delivery_modes_supported).toContain('poll');
    expect(tb.as.authorization_details_types_supported).toEqual(['payment_initiation']);
    expect(tb.as.token_endpoint_auth_methods_supported).toEqual(
      expect.arrayContaining(['tls_client_auth', 'private_key_jwt']),
    );
  });

  it('approves in the bank app, issues certificate-bound tokens and pays exactly once', async () => {
    // bc-authorize with only client_id and the signed request object outside (CIBA Core §7.1.1)
    const ack = await startCibaOk(tb, { loginHint: 'alice', bindingMessage: 'PAY-ROUND1' });
    expect(ack.auth_req_id).toEqual(expect.any(String));
    expect(ack.expires_in).toBeGreaterThan(0);
    expect(ack.expires_in).toBeLessThanOrEqual(300); // requested_expiry honoured

    // the client used the mTLS alias (seen on the bank's side)
    const timeline = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(timeline.body.bcAuthorize.path).toBe(new URL(`${tb.bank.issuer}/mtls/backchannel`).pathname);

    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');

    // the customer approves through the bank app's own endpoint
    const approved = await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/approve`, {
      login: 'alice',
    });
    expect(approved).toEqual({ status: 200, body: { authReqId: ack.auth_req_id, status: 'approved' } });

    const tokens = await pollResult(tb, ack.auth_req_id);
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(tokens.authorization_details).toEqual([DETAILS]);

    // RFC 8705 §3.1: cnf.x5t#S256 is the SHA-256 thumbprint of the client certificate
    const cert = new X509Certificate(readFileSync(tb.certs.clientCert));
    const thumbprint = createHash('sha256').update(cert.raw).digest('base64url');
    const at = decodeJwt(tokens.access_token);
    expect(decodeProtectedHeader(tokens.access_token).typ).toBe('at+jwt');
    expect(at.cnf).toEqual({ 'x5t#S256': thumbprint });
    expect(at.aud).toBe(tb.bank.paymentsApiUrl);
    expect(at.sub).toBe('alice');
    expect(at.client_id).toBe('shop');
    expect(at.authorization_details).toEqual([DETAILS]);

    // the ID Token is PS256 and verifies against the bank's JWKS
    const jwksResponse = await tb.mtls.fetch(tb.as.jwks_uri!, {
      method: 'GET',
      headers: {},
      body: undefined,
      redirect: 'manual',
    });
    const jwks = createLocalJWKSet((await jwksResponse.json()) as Parameters<typeof createLocalJWKSet>[0]);
    const idToken = tokens.id_token!;
    expect(decodeProtectedHeader(idToken).alg).toBe('PS256');
    const { payload } = await jwtVerify(idToken, jwks, {
      issuer: tb.bank.issuer,
      audience: 'shop',
      algorithms: ['PS256'],
    });
    expect(payload.sub).toBe('alice');
    const claims = oauth.getValidatedIdTokenClaims(tokens);
    expect(claims?.sub).toBe('alice');

    // pay with the bound token
    const first = await pay(tb, tokens.access_token, { idempotencyKey: 'checkout-round-1' });
    expect(first.status).toBe(201);
    const created = (await first.json()) as { paymentId: string; status: string };
    expect(created).toEqual({ paymentId: expect.any(String), status: 'accepted' });

    // the same token with another certificate of the same CA is refused (RFC 8705 §3)
    const stolen = await pay(tb, tokens.access_token, {
      idempotencyKey: 'checkout-round-1',
      fetch: tb.other.fetch,
    });
    expect(stolen.status).toBe(401);
    expect(stolen.headers.get('www-authenticate')).toMatch(/^Bearer error="invalid_token"/);

    // the same Idempotency-Key replays the first answer and creates nothing
    const replay = await pay(tb, tokens.access_token, { idempotencyKey: 'checkout-round-1' });
    expect(replay.status).toBe(201);
    expect(await replay.json()).toEqual(created);
    const payments = await testBankControl(tb, 'GET', '/payments?login=alice');
    expect(payments.body.count).toBe(1);

    // GET returns the same object
    const fetched = await tb.mtls.fetch(`${tb.bank.paymentsApiUrl}/payments/${created.paymentId}`, {
      method: 'GET',
      headers: { authorization: `Bearer ${tokens.access_token}` },
      body: undefined,
      redirect: 'manual',
    });
    expect(fetched.status).toBe(200);
    expect(await fetched.json()).toEqual(created);

    // the timeline recorded both polls
    const after = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(after.body.polls).toHaveLength(2);
    expect(after.body.status).toBe('approved');
  });

  it('refuses a payment that differs from the approved details (403) and one without Idempotency-Key (400)', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'bob' });
    await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
    const tokens = await pollResult(tb, ack.auth_req_id);

    const noKey = await pay(tb, tokens.access_token);
    expect(noKey.status).toBe(400);

    const more = { ...ORDER, instructedAmount: { currency: 'EUR', amount: '499.00' } };
    const mismatch = await pay(tb, tokens.access_token, { idempotencyKey: 'checkout-mismatch', body: more });
    expect(mismatch.status).toBe(403);
    expect(((await mismatch.json()) as { error: string }).error).toBe('payment_mismatch');

    const otherCreditor = { ...ORDER, creditorAccount: { iban: 'FR1420041010050500013M02606' } };
    expect(
      (await pay(tb, tokens.access_token, { idempotencyKey: 'checkout-mismatch', body: otherCreditor }))
        .status,
    ).toBe(403);
    expect((await testBankControl(tb, 'GET', '/payments?login=bob')).body.count).toBe(0);
  });

  it('rejects a token presented without any client certificate', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'carol' });
    await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
    const tokens = await pollResult(tb, ack.auth_req_id);
    const anonymous = transport(tb.certs, 'none');
    try {
      const res = await pay(tb, tokens.access_token, { idempotencyKey: 'no-cert', fetch: anonymous.fetch });
      expect(res.status).toBe(401);
    } finally {
      await anonymous.agent.destroy();
    }
  });
});

describe('sandbox bank: refusals and the other client', () => {
  it('answers access_denied after the customer denies', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'carol' });
    const denied = await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/deny`);
    expect(denied.body.status).toBe('denied');
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('access_denied');
    // a decided request cannot be decided again
    expect((await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/approve`)).status).toBe(409);
  });

  it('answers unknown_user_id for an unknown login hint (CIBA Core §13)', async () => {
    const res = await startCiba(tb, { loginHint: 'mallory' });
    expect(await errorCode(oauth.processBackchannelAuthenticationResponse(tb.as, shopClient(tb), res))).toBe(
      'unknown_user_id',
    );
  });

  it('refuses a request from shop without a signed request object', async () => {
    const res = await oauth.backchannelAuthenticationRequest(
      tb.as,
      shopClient(tb),
      oauth.TlsClientAuth(),
      { scope: 'openid payments', login_hint: 'alice', binding_message: 'PAY-PLAIN1' },
      { [oauth.customFetch]: tb.mtls.fetch },
    );
    expect(await errorCode(oauth.processBackchannelAuthenticationResponse(tb.as, shopClient(tb), res))).toBe(
      'invalid_request',
    );
  });

  it('refuses a replayed request object (same jti) and a malformed payment detail', async () => {
    const jwt = await requestObject(tb, 'shop', { loginHint: 'alice' });
    const send = () =>
      oauth.backchannelAuthenticationRequest(
        tb.as,
        shopClient(tb),
        oauth.TlsClientAuth(),
        { request: jwt },
        {
          [oauth.customFetch]: tb.mtls.fetch,
        },
      );
    expect((await send()).status).toBe(200);
    expect((await send()).status).toBe(400);

    const bad = await startCiba(tb, {
      loginHint: 'alice',
      details: [{ ...DETAILS, instructedAmount: { currency: 'EUR', amount: 49.9 } }],
    });
    expect(await errorCode(oauth.processBackchannelAuthenticationResponse(tb.as, shopClient(tb), bad))).toBe(
      'invalid_authorization_details',
    );
  });

  it('serves shop-jwt with private_key_jwt, with PS256 and ES256 request objects', async () => {
    for (const alg of ['PS256', 'ES256'] as const) {
      const clientAuth = oauth.PrivateKeyJwt(await signingKey(tb, alg));
      const jwt = await requestObject(tb, 'shop-jwt', { loginHint: 'bob' }, alg);
      const ack = await oauth.processBackchannelAuthenticationResponse(
        tb.as,
        shopJwtClient(tb),
        await oauth.backchannelAuthenticationRequest(
          tb.as,
          shopJwtClient(tb),
          clientAuth,
          { request: jwt },
          {
            [oauth.customFetch]: tb.mtls.fetch,
          },
        ),
      );
      await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
      const tokens = await oauth.processBackchannelAuthenticationGrantResponse(
        tb.as,
        shopJwtClient(tb),
        await oauth.backchannelAuthenticationGrantRequest(
          tb.as,
          shopJwtClient(tb),
          clientAuth,
          ack.auth_req_id,
          {
            [oauth.customFetch]: tb.mtls.fetch,
          },
        ),
      );
      expect(decodeJwt(tokens.access_token).client_id).toBe('shop-jwt');
      expect(decodeJwt(tokens.access_token).cnf).toHaveProperty(['x5t#S256']);
    }
  });

  it('answers invalid_grant when an auth_req_id is redeemed twice', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'bob' });
    await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
    await pollResult(tb, ack.auth_req_id);
    const again = await poll(tb, ack.auth_req_id);
    expect(
      await errorCode(oauth.processBackchannelAuthenticationGrantResponse(tb.as, shopClient(tb), again)),
    ).toBe('invalid_grant');
  });
});

describe('sandbox bank: storage', () => {
  // oidc-provider's default memory adapter is a two-generation LRU of 1,000 entries (it holds
  // 1,000-2,000): past 2,000 newer entries the first auth_req_id is evicted and answers
  // invalid_grant. Checked: this test fails with the default adapter.
  it('keeps more than 2,000 pending requests pollable', async () => {
    const first = await startCibaOk(tb, { loginHint: 'alice', details: null });
    const batch = 100;
    for (let sent = 0; sent < 2_100; sent += batch) {
      const responses = await Promise.all(
        Array.from({ length: batch }, () => startCiba(tb, { loginHint: 'bob', details: null })),
      );
      expect(responses.every((r) => r.status === 200)).toBe(true);
    }
    expect(await errorCode(pollResult(tb, first.auth_req_id))).toBe('authorization_pending');
  });
});
