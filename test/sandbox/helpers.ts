/**
 * Client-side helpers for the sandbox bank tests: an in-process bank, mTLS transport (undici
 * Agent with the dev CA: the bank's certificate is always verified), signed CIBA request objects
 * and the oauth4webapi calls Bankpay itself makes.
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { importPKCS8, type JWK, type JWTPayload, SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import { Agent, fetch as undiciFetch } from 'undici';
import { ensureDevCertificates } from '../../devstack/certificates.ts';
import { type SandboxBank, startSandboxBank } from '../../sandbox/bank.ts';

export type Certs = ReturnType<typeof ensureDevCertificates>;
export type Fetch = (url: string, options: oauth.CustomFetchOptions<string, unknown>) => Promise<Response>;

export const DETAILS = {
  type: 'payment_initiation',
  instructedAmount: { currency: 'EUR', amount: '49.90' },
  creditorName: 'Acme Shop',
  creditorAccount: { iban: 'DE89370400440532013000' },
  remittanceInformationUnstructured: 'order-1234',
} as const;

export const ORDER = {
  instructedAmount: DETAILS.instructedAmount,
  creditorName: DETAILS.creditorName,
  creditorAccount: DETAILS.creditorAccount,
  remittanceInformationUnstructured: DETAILS.remittanceInformationUnstructured,
};

export interface Transport {
  fetch: Fetch;
  agent: Agent;
}

/** An undici transport presenting `identity`'s certificate (or none), trusting only the dev CA. */
export function transport(certs: Certs, identity: 'client' | 'other-client' | 'none'): Transport {
  const ca = readFileSync(certs.caCert);
  const connect =
    identity === 'none'
      ? { ca }
      : identity === 'client'
        ? { ca, cert: readFileSync(certs.clientCert), key: readFileSync(certs.clientKey) }
        : { ca, cert: readFileSync(certs.otherClientCert), key: readFileSync(certs.otherClientKey) };
  const agent = new Agent({ connect });
  const fetch: Fetch = (url, options) =>
    undiciFetch(url, { ...(options as object), dispatcher: agent }) as unknown as Promise<Response>;
  return { fetch, agent };
}

export interface TestBank {
  bank: SandboxBank;
  certs: Certs;
  dir: string;
  mtls: Transport;
  other: Transport;
  as: oauth.AuthorizationServer;
  /** Stops the bank and starts it again on the same ports (and store, when it has one). */
  restart(): Promise<void>;
  close(): Promise<void>;
}

export async function startTestBank(
  options: { testMode?: boolean; defaultInterval?: number; database?: { url: string; schema: string } } = {},
): Promise<TestBank> {
  const dir = mkdtempSync(join(tmpdir(), 'sandbox-bank-test-'));
  const certs = ensureDevCertificates(dir);
  const start = (ports: { port: number; appPort: number }) =>
    startSandboxBank({
      certificates: certs,
      ...ports,
      testMode: options.testMode ?? true,
      merchantName: 'Acme Shop',
      ...(options.defaultInterval ? { defaultInterval: options.defaultInterval } : {}),
      ...(options.database ? { database: options.database } : {}),
    });
  const bank = await start({ port: 0, appPort: 0 });
  const mtls = transport(certs, 'client');
  const other = transport(certs, 'other-client');
  const issuer = new URL(bank.issuer);
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { algorithm: 'oidc', [oauth.customFetch]: mtls.fetch }),
  );
  const tb: TestBank = {
    bank,
    certs,
    dir,
    mtls,
    other,
    as,
    async restart() {
      const { port, appPort } = tb.bank;
      await tb.bank.close();
      tb.bank = await start({ port, appPort });
    },
    async close() {
      await Promise.all([mtls.agent.destroy(), other.agent.destroy()]);
      await tb.bank.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return tb;
}

export const shopClient = (tb: TestBank): oauth.Client => ({
  client_id: tb.bank.clients.tlsClientAuth,
  use_mtls_endpoint_aliases: true,
  id_token_signed_response_alg: 'PS256',
});

export const shopJwtClient = (tb: TestBank): oauth.Client => ({
  client_id: tb.bank.clients.privateKeyJwt,
  use_mtls_endpoint_aliases: true,
  id_token_signed_response_alg: 'PS256',
});

export async function signingKey(tb: TestBank, alg: 'PS256' | 'ES256' = 'PS256') {
  const path = alg === 'PS256' ? tb.certs.signingKey : tb.certs.es256Key;
  return importPKCS8(readFileSync(path, 'utf8'), alg);
}

export interface CibaParams {
  loginHint: string;
  bindingMessage?: string;
  details?: unknown[] | null;
  requestedExpiry?: number;
  scope?: string;
}

/** A signed CIBA authentication request (CIBA Core §7.1.1) with FAPI-CIBA's ≤ 60 min lifetime. */
export async function requestObject(
  tb: TestBank,
  clientId: string,
  params: CibaParams,
  alg: 'PS256' | 'ES256' = 'PS256',
  extra: JWTPayload = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    scope: params.scope ?? 'openid payments',
    login_hint: params.loginHint,
    binding_message: params.bindingMessage ?? 'PAY-K7P2X9',
    requested_expiry: params.requestedExpiry ?? 300,
    ...(params.details === null ? {} : { authorization_details: params.details ?? [DETAILS] }),
    ...extra,
  })
    .setProtectedHeader({ alg, typ: 'JWT' })
    .setIssuer(clientId)
    .setAudience(tb.bank.issuer)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 300)
    .setJti(randomUUID())
    .sign(await signingKey(tb, alg));
}

/** bc-authorize as `shop` (tls_client_auth) with a signed request object; returns the raw Response. */
export async function startCiba(
  tb: TestBank,
  params: CibaParams,
  fetch: Fetch = tb.mtls.fetch,
): Promise<Response> {
  const jwt = await requestObject(tb, tb.bank.clients.tlsClientAuth, params);
  return oauth.backchannelAuthenticationRequest(
    tb.as,
    shopClient(tb),
    oauth.TlsClientAuth(),
    { request: jwt },
    {
      [oauth.customFetch]: fetch,
    },
  );
}

export async function startCibaOk(tb: TestBank, params: CibaParams) {
  return oauth.processBackchannelAuthenticationResponse(tb.as, shopClient(tb), await startCiba(tb, params));
}

/** One token poll as `shop` (one request: what Bankpay's ciba-poll job does). */
export function poll(tb: TestBank, authReqId: string, fetch: Fetch = tb.mtls.fetch): Promise<Response> {
  return oauth.backchannelAuthenticationGrantRequest(
    tb.as,
    shopClient(tb),
    oauth.TlsClientAuth(),
    authReqId,
    {
      [oauth.customFetch]: fetch,
    },
  );
}

export async function pollResult(tb: TestBank, authReqId: string) {
  return oauth.processBackchannelAuthenticationGrantResponse(
    tb.as,
    shopClient(tb),
    await poll(tb, authReqId),
  );
}

/** The OAuth error code of a failed poll / bc-authorize (ResponseBodyError), or 'ok'. */
export async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'ok';
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) return error.error;
    throw error;
  }
}

/** JSON answers are asserted field by field with expect(); a precise type would add nothing. */
// biome-ignore lint/suspicious/noExplicitAny: see above
type Json = any;

/** A request to the control API of the test's own bank (startTestBank): status and JSON body. */
export async function testBankControl(tb: TestBank, method: string, path: string, body?: unknown) {
  const res = await fetch(`${tb.bank.controlUrl}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

export async function app(tb: TestBank, method: string, path: string, body?: unknown) {
  const res = await fetch(new URL(path, tb.bank.appUrl), {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

/** bc-authorize, approve through the control API, poll: a certificate-bound access token. */
export async function obtainTokens(tb: TestBank, params: CibaParams) {
  const ack = await startCibaOk(tb, params);
  const approved = await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
  if (approved.status !== 200) throw new Error(`approve failed: ${JSON.stringify(approved.body)}`);
  return { ack, tokens: await pollResult(tb, ack.auth_req_id) };
}

export function pay(
  tb: TestBank,
  accessToken: string,
  options: { idempotencyKey?: string; body?: unknown; fetch?: Fetch } = {},
): Promise<Response> {
  const headers: Record<string, string> = {
    authorization: `Bearer ${accessToken}`,
    'content-type': 'application/json',
  };
  if (options.idempotencyKey !== undefined) headers['idempotency-key'] = options.idempotencyKey;
  return (options.fetch ?? tb.mtls.fetch)(`${tb.bank.paymentsApiUrl}/payments`, {
    method: 'POST',
    headers,
    body: JSON.stringify(options.body ?? ORDER),
    redirect: 'manual',
  });
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A fresh customer of the test's own bank (POST /control/customers): a fault script of its own. */
export async function newTestBankCustomer(tb: TestBank, prefix = 't'): Promise<string> {
  const login = `${prefix}-${randomUUID().slice(0, 8)}`;
  const created = await testBankControl(tb, 'POST', '/customers', { login });
  if (created.status !== 201) throw new Error(`create customer failed: ${JSON.stringify(created.body)}`);
  return login;
}

/** The bank's published JWKS (what a client verifies ID Tokens with). */
export async function bankJwks(tb: TestBank): Promise<{ keys: JWK[] }> {
  const res = await tb.mtls.fetch(tb.as.jwks_uri!, {
    method: 'GET',
    headers: {},
    body: undefined,
    redirect: 'manual',
  });
  return (await res.json()) as { keys: JWK[] };
}

/** bc-authorize, approve, one raw token request: the token response as JSON, unvalidated. */
export async function approvedTokenResponse(tb: TestBank, params: CibaParams) {
  const ack = await startCibaOk(tb, params);
  const approved = await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
  if (approved.status !== 200) throw new Error(`approve failed: ${JSON.stringify(approved.body)}`);
  const res = await poll(tb, ack.auth_req_id);
  return { ack, res, body: (await res.clone().json()) as { access_token: string; id_token: string } & Json };
}
