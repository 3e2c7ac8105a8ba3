/**
 * The outbound bank layer against the real sandbox bank (started by the global setup, over mTLS):
 * the CIBA flow end to end, every poll outcome the bank can produce, and the payment API's
 * failures. Each test uses its own customer (created through the control API when the sandbox
 * offers it, else a seeded one) and clears only that customer's faults.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { connect, createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { calculateJwkThumbprint, decodeJwt, exportJWK, importSPKI, jwtVerify } from 'jose';
import { Agent, request } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { DEV_CLIENT_PFX_PASSPHRASE, ensureDevCertificates } from '../../devstack/certificates.ts';
import { type SandboxBank, startSandboxBank } from '../../sandbox/bank.ts';
import { type BankConfig, loadBanks } from '../../src/config.ts';
import {
  type BankClient,
  BankError,
  createBankClient,
  type PaymentInitiation,
  type TokenPollOutcome,
} from '../../src/integrations/bank.client.ts';
import { signBackchannelRequestObject } from '../../src/integrations/ciba.client.ts';
import { createMtlsAgent } from '../../src/integrations/mtls.agent.ts';
import { importSigningKey } from '../../src/integrations/signing-key.loader.ts';
import { sandboxBanksFile } from '../support/env.ts';

const PAYMENT: PaymentInitiation = {
  instructedAmount: { currency: 'EUR', amount: '49.90' },
  creditorName: 'Acme Shop',
  creditorAccount: { iban: 'DE89370400440532013000' },
  remittanceInformationUnstructured: 'order-1234',
};

const sandbox = inject('bank');
let bank: BankConfig;
let client: BankClient;
const created: string[] = [];
const faulted = new Set<string>();

// biome-ignore lint/suspicious/noExplicitAny: control API answers are asserted field by field
type Json = any;

async function control(
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${sandbox.controlUrl}${path}`, {
    method,
    ...(body === undefined
      ? {}
      : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

/** A customer of our own when the sandbox can create one; else the seeded fallback. */
async function customer(fallback: 'alice' | 'bob' | 'carol'): Promise<string> {
  const login = `bankpay-it-${randomBytes(4).toString('hex')}`;
  const res = await control('POST', '/customers', { login });
  if (res.status === 201) {
    created.push(login);
    return login;
  }
  return fallback;
}

async function setFaults(login: string, script: unknown): Promise<void> {
  faulted.add(login);
  const res = await control('PUT', `/customers/${login}/faults`, script);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

async function approveInBankApp(authReqId: string, login: string): Promise<void> {
  const res = await fetch(new URL(`app/api/requests/${authReqId}/approve`, sandbox.appUrl), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login }),
  });
  expect(res.status).toBe(200);
}

function start(
  c: BankClient,
  loginHint: string,
  extra: { requestedExpiry?: number; bindingMessage?: string } = {},
) {
  return c.startBackchannelAuthentication({
    loginHint,
    bindingMessage: extra.bindingMessage ?? 'PAY-IT1',
    requestedExpiry: extra.requestedExpiry ?? 120,
    payment: PAYMENT,
  });
}

async function tokensFor(c: BankClient, login: string) {
  const ack = await start(c, login);
  await control('POST', `/requests/${ack.authReqId}/approve`);
  const outcome = await c.pollToken(ack.authReqId, { loginHint: login });
  if (outcome.kind !== 'tokens') throw new Error(`expected tokens, got ${JSON.stringify(outcome)}`);
  return { ack, ...outcome };
}

async function rejection(promise: Promise<unknown>): Promise<BankError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(BankError);
    return error as BankError;
  }
  throw new Error('expected a BankError');
}

beforeAll(() => {
  const [fromFile] = loadBanks(sandboxBanksFile());
  if (!fromFile) throw new Error('no sandbox bank in the banks file');
  // The sandbox's subjects are its logins: pin sub to the login hint.
  bank = { ...fromFile, loginHintIsSubject: true };
  client = createBankClient(bank);
});

afterEach(async () => {
  for (const login of faulted) await control('DELETE', `/customers/${login}/faults`);
  faulted.clear();
});

afterAll(async () => {
  await client?.close();
  for (const login of created) await control('DELETE', `/customers/${login}`);
});

describe('BankClient against the sandbox bank (CIBA poll over mTLS)', () => {
  it('runs the whole flow: start → pending → approve → validated tokens → pay once → read back', async () => {
    const login = await customer('alice');
    const ack = await start(client, login);
    expect(ack.authReqId).toEqual(expect.any(String));
    expect(ack.expiresIn).toBeGreaterThan(0);
    expect(ack.expiresIn).toBeLessThanOrEqual(120); // requested_expiry honoured

    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'pending' });
    await approveInBankApp(ack.authReqId, login);

    const outcome = await client.pollToken(ack.authReqId, { loginHint: login });
    expect(outcome.kind).toBe('tokens');
    const { tokens, subject } = outcome as Extract<TokenPollOutcome, { kind: 'tokens' }>;
    expect(subject).toBe(login);
    expect(tokens.accessToken).toEqual(expect.any(String));
    expect(tokens.expiresIn).toBeGreaterThan(0);
    const idToken = decodeJwt(tokens.idToken);
    expect(idToken.sub).toBe(login);
    expect(idToken.aud).toBe(bank.clientId);
    // the approval covered exactly our payment (RFC 9396, from the signed request object)
    expect(decodeJwt(tokens.accessToken).authorization_details).toEqual([
      { type: 'payment_initiation', ...PAYMENT },
    ]);

    const key = `checkout-${randomBytes(6).toString('hex')}`;
    const first = await client.initiatePayment(tokens.accessToken, key, PAYMENT);
    expect(first).toEqual({ paymentId: expect.any(String), status: 'accepted' });
    const again = await client.initiatePayment(tokens.accessToken, key, PAYMENT);
    expect(again).toEqual(first);
    expect(await client.getPayment(tokens.accessToken, first.paymentId)).toEqual(first);

    const ledger = await control('GET', `/payments?login=${login}`);
    expect(ledger.body.payments.filter((p: Json) => p.idempotencyKey === key)).toHaveLength(1);
  });

  it('takes the client certificate as a PKCS#12 bundle: the same mTLS client, tokens bound to it, paid', async () => {
    const certsDir = inject('certsDir');
    const { tls: _pem, ...rest } = bank;
    const pfxClient = createBankClient({
      ...rest,
      tls: {
        pfx: readFileSync(join(certsDir, 'client.pfx')),
        passphrase: DEV_CLIENT_PFX_PASSPHRASE,
        ca: readFileSync(join(certsDir, 'ca.pem'), 'utf8'),
      },
    });
    try {
      const login = await customer('bob');
      const ack = await start(pfxClient, login);
      await approveInBankApp(ack.authReqId, login);
      const outcome = await pfxClient.pollToken(ack.authReqId, { loginHint: login });
      expect(outcome.kind).toBe('tokens');
      const { tokens } = outcome as Extract<TokenPollOutcome, { kind: 'tokens' }>;
      // The payment API accepts the token only with the certificate it is bound to (RFC 8705 §3).
      const paid = await pfxClient.initiatePayment(
        tokens.accessToken,
        `pfx-${randomBytes(6).toString('hex')}`,
        PAYMENT,
      );
      expect(paid.status).toBe('accepted');
    } finally {
      await pfxClient.close();
    }
  });

  it('signs the request object as CIBA §7.1.1 / FAPI-CIBA ask, with the kid the bank registered', async () => {
    const key = await importSigningKey(bank.requestObjectKey ?? '', 'PS256', 'requestObjectKeyFile');
    const registered = await importSPKI(
      readFileSync(join(inject('certsDir'), 'signing-key.pub.pem'), 'utf8'),
      'PS256',
      { extractable: true },
    );
    expect(key.kid).toBe(await calculateJwkThumbprint(await exportJWK(registered)));
    const now = Date.now();
    const jwt = await signBackchannelRequestObject(
      {
        scope: bank.scope,
        loginHint: 'alice',
        bindingMessage: 'PAY-SIGNED',
        requestedExpiry: 120,
        payment: PAYMENT,
      },
      { clientId: bank.clientId, audience: bank.issuer, key, now },
    );
    const { payload, protectedHeader } = await jwtVerify(jwt, registered, {
      issuer: bank.clientId,
      audience: bank.issuer,
      algorithms: ['PS256'],
    });
    expect(protectedHeader.kid).toBe(key.kid);
    const iat = Math.floor(now / 1000);
    expect(payload).toEqual({
      iss: bank.clientId,
      aud: bank.issuer,
      iat,
      // Backdated for a bank whose clock is behind; the lifetime stays 300 s (exp − nbf).
      nbf: iat - 30,
      exp: iat - 30 + 300,
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      scope: 'openid payments',
      login_hint: 'alice',
      binding_message: 'PAY-SIGNED',
      requested_expiry: 120,
      authorization_details: [{ type: 'payment_initiation', ...PAYMENT }],
    });
  });

  it('passes the acknowledgement interval through', async () => {
    const login = await customer('bob');
    await setFaults(login, { interval: 7 });
    const ack = await start(client, login);
    expect(ack.interval).toBe(7);
  });

  it('maps slow_down, then authorization_pending', async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    await setFaults(login, { slowDown: 1 });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'slow_down' });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'pending' });
  });

  it('maps a 503 with Retry-After on the token endpoint to unavailable', async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    await setFaults(login, { unavailable: { token: { times: 1, retryAfter: 3 } } });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({
      kind: 'unavailable',
      retryAfterSeconds: 3,
    });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'pending' });
  });

  it('throws bank_unavailable (retryable, Retry-After kept) for a 503 on bc-authorize', async () => {
    const login = await customer('bob');
    await setFaults(login, { unavailable: { 'bc-authorize': { times: 1, retryAfter: 4 } } });
    const e = await rejection(start(client, login));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true, retryAfterSeconds: 4, status: 503 });
  });

  it('maps a denial in the bank app to denied', async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    expect((await control('POST', `/requests/${ack.authReqId}/deny`)).status).toBe(200);
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'denied' });
  });

  it('maps an expired request to expired', async () => {
    const login = await customer('bob');
    const ack = await start(client, login, { requestedExpiry: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'expired' });
  });

  it('maps a second redemption of the auth_req_id to failed invalid_grant', async () => {
    const login = await customer('bob');
    const { ack } = await tokensFor(client, login);
    const again = await client.pollToken(ack.authReqId, { loginHint: login });
    expect(again).toMatchObject({ kind: 'failed', code: 'invalid_grant' });
  });

  it('throws the bank error code, not retryable, for an unknown customer and a bad binding message', async () => {
    const unknown = await rejection(start(client, `nobody-${randomBytes(4).toString('hex')}`));
    expect(unknown).toMatchObject({ code: 'unknown_user_id', retryable: false, status: 400 });
    const login = await customer('bob');
    const binding = await rejection(start(client, login, { bindingMessage: 'not allowed: spaces' }));
    expect(binding).toMatchObject({ code: 'invalid_binding_message', retryable: false });
  });

  it('refuses the tokens when the subject is not the login hint (loginHintIsSubject)', async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    await control('POST', `/requests/${ack.authReqId}/approve`);
    const e = await rejection(client.pollToken(ack.authReqId, { loginHint: 'somebody-else' }));
    expect(e).toMatchObject({ code: 'invalid_id_token', retryable: false });
    expect(e.message).toMatch(/sub/);
  });

  it('refuses an ID Token the bank falsified and never returns its access token', async (ctx) => {
    const login = await customer('bob');
    const ack = await start(client, login);
    faulted.add(login);
    const scripted = await control('PUT', `/customers/${login}/faults`, {
      idToken: { claims: { iss: 'https://evil.example' }, times: 1 },
    });
    if (scripted.status !== 200) ctx.skip(); // sandbox without ID Token faults yet
    await control('POST', `/requests/${ack.authReqId}/approve`);
    const e = await rejection(client.pollToken(ack.authReqId, { loginHint: login }));
    expect(e.code).toBe('invalid_id_token');
    expect(e.message).not.toMatch(/eyJ/); // no JWT in the message
  });

  it('refuses an ID Token without auth_req_id or at_hash when the bank entry requires them', async () => {
    const strict = createBankClient({ ...bank, requireAuthReqIdClaim: true, requireAtHash: true });
    try {
      const cases: Array<[string, RegExp]> = [
        [
          'urn:openid:params:jwt:claim:auth_req_id',
          /^ID Token auth_req_id \(urn:openid:params:jwt:claim:auth_req_id\): missing/,
        ],
        ['at_hash', /^ID Token at_hash: missing/],
      ];
      for (const [claim, message] of cases) {
        const login = await customer('bob');
        await setFaults(login, { idToken: { claims: { [claim]: null }, times: 1 } });
        const ack = await start(strict, login);
        await control('POST', `/requests/${ack.authReqId}/approve`);
        const e = await rejection(strict.pollToken(ack.authReqId, { loginHint: login }));
        expect(e, claim).toMatchObject({ code: 'invalid_id_token', retryable: false });
        expect(e.message).toMatch(message);
      }
      // The sandbox sends both claims: the same client takes its tokens.
      expect((await tokensFor(strict, await customer('bob'))).subject).toEqual(expect.any(String));
      // A bank entry that does not require them takes the token without them (CIBA Core, OIDC Core).
      const login = await customer('bob');
      await setFaults(login, {
        idToken: { claims: { 'urn:openid:params:jwt:claim:auth_req_id': null, at_hash: null }, times: 1 },
      });
      expect((await tokensFor(client, login)).subject).toBe(login);
    } finally {
      await strict.close();
    }
  });

  it('throws bank_unavailable (retryable) when the payment API drops the connection; the retry pays once', async () => {
    const login = await customer('carol');
    const { tokens } = await tokensFor(client, login);
    const key = `checkout-${randomBytes(6).toString('hex')}`;
    await setFaults(login, { drop: { payments: { times: 1, afterCommit: true } } });
    const e = await rejection(client.initiatePayment(tokens.accessToken, key, PAYMENT));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true });
    expect(e.message).not.toContain(tokens.accessToken);

    const retried = await client.initiatePayment(tokens.accessToken, key, PAYMENT);
    expect(retried.status).toBe('accepted');
    const ledger = await control('GET', `/payments?login=${login}`);
    expect(ledger.body.payments.filter((p: Json) => p.idempotencyKey === key)).toHaveLength(1);
  });

  it('throws bank_unavailable (retryable, status 500) for a 500 from the payment API', async () => {
    const login = await customer('carol');
    const { tokens } = await tokensFor(client, login);
    await setFaults(login, { paymentError: { times: 1 } });
    const key = `checkout-${randomBytes(6).toString('hex')}`;
    const e = await rejection(client.initiatePayment(tokens.accessToken, key, PAYMENT));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true, status: 500 });
    expect((await client.initiatePayment(tokens.accessToken, key, PAYMENT)).status).toBe('accepted');
  });

  it('throws payment_api_error with the status for a bad token (401) and a body unlike the approval (403)', async () => {
    const bad = await rejection(client.initiatePayment('not-a-token', 'k-401', PAYMENT));
    expect(bad).toMatchObject({ code: 'payment_api_error', retryable: false, status: 401 });

    const login = await customer('carol');
    const { tokens } = await tokensFor(client, login);
    const other = { ...PAYMENT, instructedAmount: { currency: 'EUR', amount: '1000.00' } };
    const mismatch = await rejection(client.initiatePayment(tokens.accessToken, 'k-403', other));
    expect(mismatch).toMatchObject({ code: 'payment_api_error', retryable: false, status: 403 });
    expect(mismatch.message).not.toContain(tokens.accessToken);
  });

  it('gives up after the timeout with bank_unavailable', async () => {
    const login = await customer('carol');
    const quick = createBankClient(bank, { timeoutMs: 400 });
    try {
      const ack = await start(quick, login);
      await setFaults(login, { delayMs: { token: 1_500 } });
      const started = Date.now();
      const e = await rejection(quick.pollToken(ack.authReqId, { loginHint: login }));
      expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true });
      expect(e.message).toMatch(/timed out/);
      expect(Date.now() - started).toBeLessThan(1_400);
    } finally {
      await quick.close();
    }
  });

  it('works with private_key_jwt and plain (unsigned) parameters, and with an ES256 request object', async () => {
    const login = await customer('carol');
    const jwtBank: BankConfig = {
      ...bank,
      clientId: 'shop-jwt',
      tokenEndpointAuthMethod: 'private_key_jwt',
      clientAssertionSigningAlg: 'PS256',
      clientAssertionKey: bank.requestObjectKey,
      requestObjectSigningAlg: undefined,
    };
    const es256Bank: BankConfig = {
      ...jwtBank,
      requestObjectSigningAlg: 'ES256',
      requestObjectKey: readFileSync(join(inject('certsDir'), 'es256-signing-key.pem'), 'utf8'),
    };
    for (const config of [jwtBank, es256Bank]) {
      const other = createBankClient(config);
      try {
        const { subject } = await tokensFor(other, login);
        expect(subject).toBe(login);
      } finally {
        await other.close();
      }
    }
  });

  // How Bankpay reads a bank's answers (src/integrations/bank.answers.ts), against the real bank
  // with scripted faults.

  it('reads an odd acknowledgement interval as the CIBA default, never faster (CIBA §7.3)', async () => {
    const login = await customer('bob');
    const cases: Array<[unknown, number | undefined]> = [
      ['5', 5],
      ['1', 5],
      [0, undefined],
      [-2, undefined],
      [null, undefined],
      [0.2, 1],
      ['10', 10],
    ];
    for (const [interval, expected] of cases) {
      await setFaults(login, { ack: { members: { interval } } });
      const ack = await start(client, login);
      expect(ack.interval, JSON.stringify(interval)).toBe(expected);
      expect(ack.authReqId).toEqual(expect.any(String));
    }
  });

  it('takes the requested_expiry when expires_in is not a positive number, and keeps polling', async () => {
    const login = await customer('bob');
    for (const expiresIn of [0, -5, 'soon', null]) {
      await setFaults(login, { ack: { members: { expires_in: expiresIn } } });
      const ack = await start(client, login, { requestedExpiry: 90 });
      expect(ack.expiresIn, JSON.stringify(expiresIn)).toBe(90);
      expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'pending' });
    }
  });

  it('bc-authorize: a readable acknowledgement without auth_req_id is final: not sent again to the phone', async () => {
    const login = await customer('bob');
    await setFaults(login, { ack: { members: { auth_req_id: null }, times: 1 } });
    expect(await rejection(start(client, login))).toMatchObject({
      code: 'invalid_bank_response',
      retryable: false,
    });
  });

  it('bc-authorize: a page nobody can read is transient', async () => {
    const login = await customer('bob');
    const scripts: unknown[] = [
      { answer: { 'bc-authorize': { times: 1 } } }, // a 200 labelled JSON, HTML inside
      { answer: { 'bc-authorize': { status: 404, body: { error: 'not_found' } } } },
      {
        answer: {
          'bc-authorize': { status: 400, body: { error: 'temporarily_unavailable' }, retryAfter: 5 },
        },
      },
      { unavailable: { 'bc-authorize': { times: 1, retryAfter: 3, status: 500 } } },
    ];
    const retryAfter = [undefined, undefined, 5, 3];
    for (const [i, script] of scripts.entries()) {
      await setFaults(login, script);
      const e = await rejection(start(client, login));
      expect(e, JSON.stringify(script)).toMatchObject({ code: 'bank_unavailable', retryable: true });
      expect(e.retryAfterSeconds, JSON.stringify(script)).toBe(retryAfter[i]);
      expect((await start(client, login)).authReqId).toEqual(expect.any(String));
    }
    await setFaults(login, { answer: { 'bc-authorize': { status: 403, body: { error: 'access_denied' } } } });
    expect(await rejection(start(client, login))).toMatchObject({ code: 'access_denied', retryable: false });
  });

  it("token: a 200 'application/json' HTML page is transient; the request is polled again and approved", async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    await setFaults(login, { answer: { token: { times: 1 } } });
    const e = await rejection(client.pollToken(ack.authReqId, { loginHint: login }));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true, status: 200 });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({ kind: 'pending' });
    await approveInBankApp(ack.authReqId, login);
    expect((await client.pollToken(ack.authReqId, { loginHint: login })).kind).toBe('tokens');
  });

  it('token: a garbled answer after the tokens were issued is transient; the next poll is invalid_grant, never tokens twice', async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    await approveInBankApp(ack.authReqId, login);
    await setFaults(login, { answer: { token: { afterCommit: true } } });
    expect(await rejection(client.pollToken(ack.authReqId, { loginHint: login }))).toMatchObject({
      code: 'bank_unavailable',
      retryable: true,
    });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toMatchObject({
      kind: 'failed',
      code: 'invalid_grant',
    });
  });

  it('token: honours a Retry-After that comes with authorization_pending or slow_down', async () => {
    const login = await customer('bob');
    const ack = await start(client, login);
    await setFaults(login, {
      answer: { token: { status: 400, body: { error: 'authorization_pending' }, retryAfter: 4 } },
    });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({
      kind: 'pending',
      retryAfterSeconds: 4,
    });
    await setFaults(login, {
      answer: { token: { status: 400, body: { error: 'slow_down' }, retryAfter: 11 } },
    });
    expect(await client.pollToken(ack.authReqId, { loginHint: login })).toEqual({
      kind: 'slow_down',
      retryAfterSeconds: 11,
    });
  });

  it('payments: a garbled answer after the bank paid is transient, never a rejection; the re-send pays once', async () => {
    const login = await customer('carol');
    const { tokens } = await tokensFor(client, login);
    const key = `checkout-${randomBytes(6).toString('hex')}`;
    await setFaults(login, { answer: { payments: { status: 201, afterCommit: true } } });
    const e = await rejection(client.initiatePayment(tokens.accessToken, key, PAYMENT));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true, status: 201 });
    expect((await client.initiatePayment(tokens.accessToken, key, PAYMENT)).status).toBe('accepted');
    const ledger = await control('GET', `/payments?login=${login}`);
    expect(ledger.body.payments.filter((p: Json) => p.idempotencyKey === key)).toHaveLength(1);
  });

  it("payments: a proxy's 403 page is transient (no payment_api_error); the re-send pays", async () => {
    const login = await customer('carol');
    const { tokens } = await tokensFor(client, login);
    const key = `checkout-${randomBytes(6).toString('hex')}`;
    await setFaults(login, { answer: { payments: { status: 403, contentType: 'text/html' } } });
    const e = await rejection(client.initiatePayment(tokens.accessToken, key, PAYMENT));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true, status: 403 });
    expect((await control('GET', `/payments?login=${login}`)).body.count).toBe(0);
    expect((await client.initiatePayment(tokens.accessToken, key, PAYMENT)).status).toBe('accepted');
  });
});

/**
 * Discovery and the JWKS belong to no customer, so their scripted faults are bank-wide: these
 * tests run a sandbox bank of their own (on the run's certificates), so that no other test
 * file's client meets them.
 */
describe("BankClient: the bank's documents read by the same rule (a sandbox bank of its own)", () => {
  let own: SandboxBank;
  let ownBank: BankConfig;
  const bankControl = (method: string, path: string, body?: unknown) =>
    fetch(`${own.controlUrl}${path}`, {
      method,
      ...(body === undefined
        ? {}
        : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
    });

  beforeAll(async () => {
    own = await startSandboxBank({
      certificates: ensureDevCertificates(inject('certsDir')),
      port: 0,
      appPort: 0,
      testMode: true,
      defaultInterval: 1,
    });
    ownBank = { ...bank, issuer: own.issuer, paymentsApiUrl: own.paymentsApiUrl };
  });
  afterEach(async () => {
    await bankControl('DELETE', '/faults');
  });
  afterAll(async () => {
    await own?.close();
  });

  async function scriptBank(answer: Record<string, unknown>) {
    expect((await bankControl('PUT', '/faults', { answer })).status).toBe(200);
  }

  it('discovery: a page, a status or a document nobody can read is transient; the next call reads it', async () => {
    const cases: Array<Record<string, unknown>> = [
      { times: 1 }, // 200 labelled JSON, HTML inside
      { times: 1, status: 404, contentType: 'text/html' },
      { times: 1, status: 302, body: '' },
      { times: 1, body: { jwks_uri: 'https://elsewhere.example/jwks' } }, // no issuer
      { times: 1, status: 500, retryAfter: 4 },
    ];
    for (const discovery of cases) {
      await scriptBank({ discovery });
      const c = createBankClient(ownBank);
      try {
        const e = await rejection(start(c, 'alice'));
        expect(e, JSON.stringify(discovery)).toMatchObject({ code: 'bank_unavailable', retryable: true });
        if (discovery.retryAfter) expect(e.retryAfterSeconds).toBe(4);
        expect((await start(c, 'alice')).authReqId).toEqual(expect.any(String));
      } finally {
        await c.close();
      }
    }
  });

  it('discovery: readable metadata that cannot work is final (configuration_error)', async () => {
    await scriptBank({ discovery: { body: { issuer: 'https://evil.example/master' } } });
    const c = createBankClient(ownBank);
    try {
      expect(await rejection(start(c, 'alice'))).toMatchObject({
        code: 'configuration_error',
        retryable: false,
      });
    } finally {
      await c.close();
    }
  });

  it('JWKS: a page or a document without keys is transient; the next call reads the keys and the flow goes on', async () => {
    for (const jwks of [{ times: 1 }, { times: 1, body: { keys: 'none' } }, { times: 1, status: 404 }]) {
      await scriptBank({ jwks });
      const c = createBankClient(ownBank);
      try {
        expect(await rejection(start(c, 'alice')), JSON.stringify(jwks)).toMatchObject({
          code: 'bank_unavailable',
          retryable: true,
        });
        const ack = await start(c, 'alice');
        expect(await c.pollToken(ack.authReqId, { loginHint: 'alice' })).toEqual({ kind: 'pending' });
      } finally {
        await c.close();
      }
    }
  });
  // Where our certificate, request objects and client assertions may go (bank-endpoints.policy.ts):
  // discovery names the endpoints, and only the issuer's origin, or one the bank entry allows, is
  // called. "Another origin" is a TCP relay to this very bank on another port: TLS passes through
  // it untouched, so when it is allowed the flow works through it, and it counts every connection.

  /** A relay on 127.0.0.1 to the bank: https://localhost:{its port} is another origin, same bank. */
  async function startRelay(): Promise<{
    origin: string;
    connections: () => number;
    close(): Promise<void>;
  }> {
    const target = Number(new URL(own.issuer).port);
    let connections = 0;
    const sockets = new Set<Socket>();
    const track = (socket: Socket) => {
      sockets.add(socket);
      socket.on('error', () => socket.destroy());
      socket.once('close', () => sockets.delete(socket));
    };
    const server = createTcpServer((client) => {
      connections++;
      const upstream = connect(target, '127.0.0.1');
      track(client);
      track(upstream);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return {
      origin: `https://localhost:${(server.address() as AddressInfo).port}`,
      connections: () => connections,
      close: () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          for (const socket of sockets) socket.destroy();
        }),
    };
  }

  /** The bank's own discovery document, as it serves it. */
  async function discoveryDocument(): Promise<Json> {
    const agent = new Agent({ connect: { ca: readFileSync(join(inject('certsDir'), 'ca.pem')) } });
    try {
      const res = await request(`${own.issuer}/.well-known/openid-configuration`, { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      return await res.body.json();
    } finally {
      await agent.close();
    }
  }

  /** Moves one endpoint of the document to `origin` (same path), as a tampered document would. */
  function moved(doc: Json, endpoint: string, origin: string): Json {
    const copy = structuredClone(doc);
    const [first, second] = endpoint.split('.') as [string, string | undefined];
    const holder = second === undefined ? copy : copy[first];
    const name = second ?? first;
    const url = new URL(holder[name]);
    holder[name] = `${origin}${url.pathname}`;
    return copy;
  }

  /** start, then one poll: every endpoint a checkout's first steps call. */
  async function startAndPoll(c: BankClient): Promise<void> {
    const ack = await start(c, 'alice');
    await c.pollToken(ack.authReqId, { loginHint: 'alice' });
  }

  const ENDPOINTS = [
    'mtls_endpoint_aliases.token_endpoint',
    'mtls_endpoint_aliases.backchannel_authentication_endpoint',
    'jwks_uri',
    'token_endpoint',
    'backchannel_authentication_endpoint',
  ];

  it('discovery placing an endpoint (or its mTLS alias, or jwks_uri) on another origin: configuration_error, nothing sent there', async () => {
    const relay = await startRelay();
    try {
      const doc = await discoveryDocument();
      for (const endpoint of ENDPOINTS) {
        // The endpoint itself (not its alias) is what a bank without aliases has Bankpay call.
        const base = endpoint.includes('.') ? doc : { ...doc, mtls_endpoint_aliases: undefined };
        await scriptBank({ discovery: { body: moved(base, endpoint, relay.origin) } });
        const c = createBankClient(ownBank);
        try {
          const e = await rejection(startAndPoll(c));
          expect(e, endpoint).toMatchObject({ code: 'configuration_error', retryable: false });
          expect(e.message).toContain(`${endpoint} is on ${relay.origin}`);
        } finally {
          await c.close();
        }
        expect(relay.connections(), endpoint).toBe(0);
      }
    } finally {
      await relay.close();
    }
  });

  it('the same origins listed in allowedEndpointOrigins: the flow goes through them to tokens', async () => {
    const relay = await startRelay();
    try {
      let doc = await discoveryDocument();
      for (const endpoint of ENDPOINTS.slice(0, 3)) doc = moved(doc, endpoint, relay.origin);
      await scriptBank({ discovery: { body: doc } });
      const c = createBankClient({ ...ownBank, allowedEndpointOrigins: [relay.origin] });
      try {
        const ack = await start(c, 'alice');
        expect(relay.connections()).toBeGreaterThan(0);
        expect((await bankControl('POST', `/requests/${ack.authReqId}/approve`)).status).toBe(200);
        const outcome = await c.pollToken(ack.authReqId, { loginHint: 'alice' });
        expect(outcome.kind).toBe('tokens');
      } finally {
        await c.close();
      }
    } finally {
      await relay.close();
    }
  });

  it('discovery naming a link-local or metadata address: configuration_error even when the bank entry allows it', async () => {
    const doc = await discoveryDocument();
    const refused = [
      'https://169.254.169.254',
      'https://169.254.10.20:8443',
      'https://[fe80::1]',
      'https://[fd00:ec2::254]',
      'https://[::ffff:169.254.169.254]',
      'https://100.100.100.200',
      'https://metadata.google.internal',
    ];
    for (const origin of refused) {
      for (const endpoint of ['jwks_uri', 'mtls_endpoint_aliases.token_endpoint']) {
        await scriptBank({ discovery: { body: moved(doc, endpoint, origin) } });
        // Built by hand: the banks file itself refuses these origins at start (config.test.ts).
        const c = createBankClient(
          { ...ownBank, allowedEndpointOrigins: [new URL(origin).origin] },
          { timeoutMs: 2_000 },
        );
        try {
          const e = await rejection(startAndPoll(c));
          expect(e, `${endpoint} ${origin}`).toMatchObject({ code: 'configuration_error', retryable: false });
          expect(e.message).toMatch(new RegExp(`${endpoint} is a (link-local|cloud metadata)`));
        } finally {
          await c.close();
        }
      }
    }
  });

  it('a bank host name that resolves to a metadata address is refused as the connection is made', async () => {
    // DNS stood in for: the bank's own name (localhost) answered with the metadata address.
    const toMetadata = createMtlsAgent(ownBank.tls, {
      resolve: (_host, _options, callback) => callback(null, [{ address: '169.254.169.254', family: 4 }]),
    });
    // The same stand-in answering the real address: the flow works, so the stand-in is in use.
    const toLoopback = createMtlsAgent(ownBank.tls, {
      resolve: (_host, _options, callback) => callback(null, [{ address: '127.0.0.1', family: 4 }]),
    });
    const refused = createBankClient(ownBank, { agent: toMetadata, timeoutMs: 2_000 });
    const allowed = createBankClient(ownBank, { agent: toLoopback });
    try {
      const e = await rejection(start(refused, 'alice'));
      expect(e).toMatchObject({ code: 'configuration_error', retryable: false });
      expect(e.message).toMatch(/localhost resolves to a cloud metadata address \(169\.254\.169\.254\)/);
      expect((await start(allowed, 'alice')).authReqId).toEqual(expect.any(String));
    } finally {
      await Promise.all([refused.close(), allowed.close()]);
      await Promise.all([toMetadata.close(), toLoopback.close()]);
    }
  });
});
