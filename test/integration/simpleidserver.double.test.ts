/**
 * The SimpleIdServer 4.x test double (test/support/simpleidserver.double.ts) is as strict as the
 * real server: every refusal below is one SimpleIdServer's source makes. Requests are sent by hand
 * over undici with the development client certificate, so nothing of Bankpay is in the way.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as jose from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { certificateFiles } from '../../devstack/certificates.ts';
import {
  CIBA_GRANT,
  type SimpleIdServerDouble,
  startSimpleIdServerDouble,
} from '../support/simpleidserver.double.ts';

const certsDir = inject('certsDir');
const file = (name: string) => readFileSync(join(certsDir, name));
const agent = (cert?: string, key?: string) =>
  new Agent({
    connect: {
      ca: file(certificateFiles.caCert),
      ...(cert && key ? { cert: file(cert), key: file(key) } : {}),
    },
  });
const mtls = agent(certificateFiles.clientCert, certificateFiles.clientKey);
const otherClient = agent(certificateFiles.otherClientCert, certificateFiles.otherClientKey);
const noCertificate = agent();

const DETAIL = {
  type: 'payment_initiation',
  instructedAmount: { currency: 'EUR', amount: '49.90' },
  creditorName: 'Acme Shop',
  creditorAccount: { iban: 'DE89370400440532013000' },
  remittanceInformationUnstructured: 'order-1234',
};

let sids: SimpleIdServerDouble;
let signingKey: jose.CryptoKey;
let kid: string;
let endpoints: { bc: string; token: string };

beforeAll(async () => {
  signingKey = await jose.importPKCS8(file(certificateFiles.es256Key).toString(), 'ES256');
  const publicJwk = await jose.exportJWK(
    await jose.importSPKI(file(certificateFiles.es256PublicKey).toString(), 'ES256'),
  );
  // What Bankpay puts in the header: the RFC 7638 thumbprint of its public key.
  kid = await jose.calculateJwkThumbprint(publicJwk);
  const client = {
    subjectDn: 'CN=client',
    jwks: [{ ...publicJwk, kid, use: 'sig' }],
    authorizationDataTypes: ['payment_initiation'],
    scopes: ['openid', 'payments'],
  };
  sids = await startSimpleIdServerDouble({
    certsDir,
    users: ['alice'],
    // `shop` as the External Device template leaves it (interval 5 s); `quick` and `steady` 1 and 2 s.
    clients: [
      { clientId: 'shop', ...client },
      { clientId: 'quick', ...client, intervalSeconds: 1 },
      { clientId: 'steady', ...client, intervalSeconds: 2 },
    ],
  });
  const discovery = await get(`${sids.issuer}/.well-known/openid-configuration`);
  const aliases = (discovery.json as { mtls_endpoint_aliases: Record<string, string> }).mtls_endpoint_aliases;
  endpoints = { bc: aliases.backchannel_authentication_endpoint!, token: aliases.token_endpoint! };
});

afterAll(async () => {
  await sids?.close();
  await Promise.all([mtls.close(), otherClient.close(), noCertificate.close()]);
});

interface Answer {
  status: number;
  contentType: string | null;
  headers: Headers;
  text: string;
  json: Record<string, unknown> | undefined;
}

async function answer(res: Awaited<ReturnType<typeof undiciFetch>>): Promise<Answer> {
  const text = await res.text();
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    headers: res.headers as Headers,
    text,
    json,
  };
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Answer> {
  return answer(await undiciFetch(url, { headers, dispatcher: mtls }));
}

async function post(url: string, form: Record<string, string>, dispatcher: Agent = mtls): Promise<Answer> {
  return answer(
    await undiciFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
      dispatcher,
    }),
  );
}

const now = () => Math.floor(Date.now() / 1000);

/** A request object as Bankpay signs it (iat = nbf = now, exp = nbf + 300), with changes. */
async function requestObject(
  changes: { claims?: Record<string, unknown>; omit?: string[]; kid?: string; clientId?: string } = {},
): Promise<string> {
  const t = now();
  const claims: Record<string, unknown> = {
    iss: changes.clientId ?? 'shop',
    aud: sids.issuer,
    iat: t,
    nbf: t,
    exp: t + 300,
    jti: crypto.randomUUID(),
    scope: 'openid payments',
    login_hint: 'alice',
    binding_message: 'PAY-K7P2X9',
    requested_expiry: 300,
    authorization_details: [DETAIL],
    ...changes.claims,
  };
  for (const name of changes.omit ?? []) delete claims[name];
  return new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'ES256', kid: changes.kid ?? kid })
    .sign(signingKey);
}

function bcAuthorize(request: string, clientId = 'shop', dispatcher: Agent = mtls): Promise<Answer> {
  return post(endpoints.bc, { client_id: clientId, request }, dispatcher);
}

function poll(authReqId: string, clientId = 'shop', dispatcher: Agent = mtls): Promise<Answer> {
  return post(
    endpoints.token,
    { grant_type: CIBA_GRANT, client_id: clientId, auth_req_id: authReqId },
    dispatcher,
  );
}

/** A refusal as SimpleIdServer's BuildError writes it: 400 (unless said), JSON, the error code. */
function expectRefusal(a: Answer, error: string, status = 400): void {
  expect(a.status, a.text).toBe(status);
  expect(a.contentType).toMatch(/^application\/json/);
  expect(a.json).toMatchObject({ error, error_description: expect.any(String) });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('discovery', () => {
  it('publishes mTLS aliases for the token and backchannel endpoints only, and no PS256', async () => {
    const { json } = await get(`${sids.issuer}/.well-known/openid-configuration`);
    expect(sids.issuer).toMatch(/^https:\/\/localhost:\d+\/master$/);
    expect(json).toMatchObject({ issuer: sids.issuer, jwks_uri: `${sids.issuer}/jwks` });
    expect(json?.mtls_endpoint_aliases).toEqual({
      token_endpoint: `${sids.issuer}/mtls/token`,
      backchannel_authentication_endpoint: `${sids.issuer}/mtls/bc-authorize`,
    });
    for (const field of [
      'request_object_signing_alg_values_supported',
      'id_token_signing_alg_values_supported',
    ]) {
      expect(json?.[field]).toContain('ES256');
      expect(json?.[field]).not.toContain('PS256');
    }
  });
});

describe('the acknowledgement', () => {
  it('carries a 62-character auth_req_id, the requested expiry and the client interval', async () => {
    const ack = await bcAuthorize(await requestObject());
    expect(ack.status, ack.text).toBe(200);
    const id = ack.json?.auth_req_id as string;
    expect(id).toMatch(/^[A-Za-z0-9]{62}$/);
    expect(new Set(id).size).toBe(62);
    expect(ack.json).toEqual({ auth_req_id: id, expires_in: 300, interval: 5 });
    const unrequested = await bcAuthorize(await requestObject({ omit: ['requested_expiry'] }));
    expect(unrequested.json?.expires_in).toBe(120);
  });
});

describe('request object refusals', () => {
  it('refuses a kid that names no key registered on the client', async () => {
    expectRefusal(
      await bcAuthorize(await requestObject({ kid: 'not-the-registered-kid' })),
      'invalid_request',
    );
  });

  it('refuses an algorithm other than the client one (PS256 with a registered kid)', async () => {
    const rsa = await jose.importPKCS8(file(certificateFiles.signingKey).toString(), 'PS256');
    const t = now();
    const jwt = await new jose.SignJWT({
      iss: 'shop',
      aud: sids.issuer,
      nbf: t,
      exp: t + 300,
      jti: 'j',
      login_hint: 'alice',
    })
      .setProtectedHeader({ alg: 'PS256', kid })
      .sign(rsa);
    expectRefusal(await bcAuthorize(jwt), 'invalid_request');
  });

  it('refuses nbf one second ahead (no leeway) and accepts nbf = now', async () => {
    const t = now();
    expectRefusal(
      await bcAuthorize(await requestObject({ claims: { nbf: t + 2, exp: t + 302 } })),
      'invalid_request',
    );
    expect((await bcAuthorize(await requestObject({ claims: { nbf: t, exp: t + 300 } }))).status).toBe(200);
  });

  it('takes a backdated nbf only while exp − nbf stays within 300 s', async () => {
    const t = now();
    const backdated = { nbf: t - 60, iat: t - 60 };
    expect((await bcAuthorize(await requestObject({ claims: { ...backdated, exp: t + 240 } }))).status).toBe(
      200,
    );
    expectRefusal(
      await bcAuthorize(await requestObject({ claims: { ...backdated, exp: t + 241 } })),
      'invalid_request',
    );
  });

  it('refuses a 301-second lifetime and accepts 300', async () => {
    const t = now();
    expectRefusal(
      await bcAuthorize(await requestObject({ claims: { nbf: t, exp: t + 301 } })),
      'invalid_request',
    );
    expect((await bcAuthorize(await requestObject({ claims: { nbf: t, exp: t + 300 } }))).status).toBe(200);
  });

  it('refuses a request object without nbf, exp or jti, or with the wrong aud or iss', async () => {
    for (const omit of ['nbf', 'exp', 'jti']) {
      expectRefusal(await bcAuthorize(await requestObject({ omit: [omit] })), 'invalid_request');
    }
    expectRefusal(
      await bcAuthorize(await requestObject({ claims: { aud: 'https://elsewhere' } })),
      'invalid_request',
    );
    expectRefusal(await bcAuthorize(await requestObject({ clientId: 'quick' })), 'invalid_request');
  });
});

describe('authorization_details', () => {
  it('crashes on a second entry in a request object: 500, not an OAuth error', async () => {
    const second = { ...DETAIL, remittanceInformationUnstructured: 'order-5678' };
    const a = await bcAuthorize(await requestObject({ claims: { authorization_details: [DETAIL, second] } }));
    expect(a.status).toBe(500);
    expect(a.contentType).toMatch(/^text\/html/);
    expect(a.json).toBeUndefined();
  });

  it('refuses a type the client has not registered, in the first or a second entry', async () => {
    const loan = { type: 'loan_application', amount: '1000.00' };
    for (const details of [[loan], [DETAIL, loan]]) {
      const form = { client_id: 'shop', scope: 'openid payments', login_hint: 'alice' };
      const a = await post(endpoints.bc, { ...form, authorization_details: JSON.stringify(details) });
      expectRefusal(a, 'invalid_authorization_details');
    }
    const inObject = await bcAuthorize(await requestObject({ claims: { authorization_details: [loan] } }));
    expectRefusal(inObject, 'invalid_authorization_details');
  });

  it('crashes on a member that is a number (SimpleIdServer reads every member as a string)', async () => {
    const numeric = { ...DETAIL, instructedAmount: { currency: 'EUR', amount: '49.90' }, priority: 1 };
    expect(
      (await bcAuthorize(await requestObject({ claims: { authorization_details: [numeric] } }))).status,
    ).toBe(500);
  });
});

describe('client authentication', () => {
  it('answers an mTLS path without a client certificate 400, with no JSON content type', async () => {
    for (const [url, form] of [
      [endpoints.bc, { client_id: 'shop', request: await requestObject() }],
      [endpoints.token, { grant_type: CIBA_GRANT, client_id: 'shop', auth_req_id: 'x' }],
    ] as const) {
      const a = await post(url, form, noCertificate);
      expect(a.status).toBe(400);
      expect(a.contentType).toBeNull();
      expect(a.headers.get('content-types')).toBe('application/json');
      expect(a.json).toMatchObject({ error: 'invalid_request' });
    }
  });

  it('refuses another subject DN: 400 invalid_request at bc-authorize, 400 invalid_client at token', async () => {
    expectRefusal(await bcAuthorize(await requestObject(), 'shop', otherClient), 'invalid_request');
    const ack = await bcAuthorize(await requestObject());
    expectRefusal(await poll(ack.json?.auth_req_id as string, 'shop', otherClient), 'invalid_client');
    expectRefusal(await bcAuthorize(await requestObject(), 'nobody'), 'invalid_request');
  });
});

describe('polling', () => {
  it('answers slow_down to a poll before the next allowed time, without widening the interval', async () => {
    const ack = await bcAuthorize(await requestObject({ clientId: 'steady' }), 'steady');
    const acked = Date.now();
    const id = ack.json?.auth_req_id as string;
    expectRefusal(await poll(id, 'steady'), 'slow_down');
    expectRefusal(await poll(id, 'steady'), 'slow_down');
    // The next allowed time is still ack + 1 interval: the slow_downs did not move it.
    await sleep(acked + 2_100 - Date.now());
    expectRefusal(await poll(id, 'steady'), 'authorization_pending');
    expectRefusal(await poll(id, 'steady'), 'slow_down');
  });

  it('keeps answering authorization_pending after the request expired; an approval then is refused', async () => {
    const ack = await bcAuthorize(
      await requestObject({ clientId: 'quick', claims: { requested_expiry: 1 } }),
      'quick',
    );
    expect(ack.json?.expires_in).toBe(1);
    const id = ack.json?.auth_req_id as string;
    await sleep(2_200);
    expectRefusal(await poll(id, 'quick'), 'authorization_pending');
    expect(sids.pending('alice').map((p) => p.authReqId)).not.toContain(id);
    await expect(sids.approve(id)).rejects.toThrow(/400/);
    await sleep(1_100);
    expectRefusal(await poll(id, 'quick'), 'authorization_pending');
  });

  it('answers expired_token when the approval is redeemed after the expiry', async () => {
    const ack = await bcAuthorize(
      await requestObject({ clientId: 'quick', claims: { requested_expiry: 2 } }),
      'quick',
    );
    const id = ack.json?.auth_req_id as string;
    await sids.approve(id);
    await sleep(2_200);
    expectRefusal(await poll(id, 'quick'), 'expired_token');
  });

  it('answers access_denied when the customer denies', async () => {
    const ack = await bcAuthorize(await requestObject({ clientId: 'quick' }), 'quick');
    const id = ack.json?.auth_req_id as string;
    await sids.deny(id);
    await sleep(1_100);
    expectRefusal(await poll(id, 'quick'), 'access_denied');
  });
});

describe('tokens and the payment API', () => {
  it('issues an ID Token without auth_req_id and an access token bound to the client certificate', async () => {
    const ack = await bcAuthorize(await requestObject({ clientId: 'quick' }), 'quick');
    const id = ack.json?.auth_req_id as string;
    expect(sids.pending('alice').find((p) => p.authReqId === id)).toMatchObject({
      bindingMessage: 'PAY-K7P2X9',
      authorizationDetails: [DETAIL],
    });
    await sids.approve(id);
    await sleep(1_100);
    const tokens = await poll(id, 'quick');
    expect(tokens.status, tokens.text).toBe(200);
    expect(tokens.json).toMatchObject({ token_type: 'Bearer', expires_in: 1800, scope: 'openid payments' });
    expect(tokens.json?.refresh_token).toEqual(expect.any(String));
    const accessToken = tokens.json?.access_token as string;
    const keys = jose.createLocalJWKSet(sids.jwks);

    const idToken = await jose.jwtVerify(tokens.json?.id_token as string, keys, { algorithms: ['ES256'] });
    expect(idToken.payload).toMatchObject({
      iss: sids.issuer,
      sub: 'alice',
      aud: ['quick', sids.issuer],
      azp: 'quick',
    });
    expect(idToken.payload).not.toHaveProperty('urn:openid:params:jwt:claim:auth_req_id');
    const hash = createHash('sha256').update(accessToken).digest().subarray(0, 16).toString('base64url');
    expect(idToken.payload.at_hash).toBe(hash);

    const at = await jose.jwtVerify(accessToken, keys, { algorithms: ['RS256'] });
    const certificate = new X509Certificate(file(certificateFiles.clientCert));
    const x5t = createHash('sha256').update(certificate.raw).digest('base64url');
    expect(at.payload).toMatchObject({ client_id: 'quick', sub: 'alice', cnf: { 'x5t#S256': x5t } });
    expect(at.payload.authorization_details).toEqual([DETAIL]);

    expectRefusal(await poll(id, 'quick'), 'invalid_grant');
  });

  it('pays once per Idempotency-Key, only with the bound certificate and the approved payment', async () => {
    const ack = await bcAuthorize(await requestObject({ clientId: 'quick' }), 'quick');
    const id = ack.json?.auth_req_id as string;
    await sids.approve(id);
    await sleep(1_100);
    const accessToken = (await poll(id, 'quick')).json?.access_token as string;
    const { type: _type, ...order } = DETAIL;
    const pay = async (body: unknown, key: string, dispatcher: Agent = mtls) =>
      answer(
        await undiciFetch(`${sids.paymentsApiUrl}/payments`, {
          method: 'POST',
          headers: {
            authorization: `Bearer ${accessToken}`,
            'content-type': 'application/json',
            'idempotency-key': key,
          },
          body: JSON.stringify(body),
          dispatcher,
        }),
      );
    expect((await pay(order, 'k1', otherClient)).status).toBe(401);
    expect(
      (await pay({ ...order, instructedAmount: { currency: 'EUR', amount: '99.90' } }, 'k1')).status,
    ).toBe(403);
    const first = await pay(order, 'k1');
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ paymentId: expect.any(String), status: 'accepted' });
    const again = await pay(order, 'k1');
    expect(again).toMatchObject({ status: 201, json: first.json });
    expect(sids.payments.filter((p) => p.idempotencyKey === 'k1')).toHaveLength(1);
    const read = await get(`${sids.paymentsApiUrl}/payments/${first.json?.paymentId}`, {
      authorization: `Bearer ${accessToken}`,
    });
    expect(read.json).toEqual(first.json);
  });
});
