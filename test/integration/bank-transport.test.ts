/**
 * Transport and protocol edges of the outbound bank layer: TLS trust, mTLS endpoint aliases,
 * connection reuse (against the real sandbox bank), and the answers the sandbox cannot give
 * (against a scripted HTTPS stub bank with the test PKI's server certificate — a test double
 * only where the real peer cannot produce the case).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CryptoKey, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from 'jose';
import type { Dispatcher } from 'undici';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ensureDevCertificates } from '../../devstack/certificates.ts';
import { type BankConfig, loadBanks } from '../../src/config.ts';
import { BankError, createBankClient, createBankClients } from '../../src/integrations/bank.client.ts';
import { accessTokenHash } from '../../src/integrations/id-token.validator.ts';
import { createMtlsAgent } from '../../src/integrations/mtls.agent.ts';
import { sandboxBanksFile } from '../support/env.ts';

const certsDir = inject('certsDir');
let bank: BankConfig;

beforeAll(() => {
  const [fromFile] = loadBanks(sandboxBanksFile());
  if (!fromFile) throw new Error('no sandbox bank in the banks file');
  bank = fromFile;
});

async function rejection(promise: Promise<unknown>): Promise<BankError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(BankError);
    return error as BankError;
  }
  throw new Error('expected a BankError');
}

const start = (c: ReturnType<typeof createBankClient>, loginHint = 'alice') =>
  c.startBackchannelAuthentication({ loginHint, bindingMessage: 'PAY-TLS', requestedExpiry: 60 });

describe('mTLS transport to the sandbox bank', () => {
  it('refuses a bank whose certificate is signed by a CA we do not trust (never falls back)', async () => {
    const otherPki = mkdtempSync(join(tmpdir(), 'bankpay-other-ca-'));
    try {
      const other = ensureDevCertificates(otherPki);
      const wrongCa = createBankClient({
        ...bank,
        tls: { ...bank.tls, ca: readFileSync(other.caCert, 'utf8') },
      });
      const { ca: _, ...withoutCa } = bank.tls;
      const systemStore = createBankClient({ ...bank, tls: withoutCa });
      try {
        for (const c of [wrongCa, systemStore]) {
          const e = await rejection(start(c));
          expect(e).toMatchObject({ code: 'configuration_error', retryable: false });
          expect(e.message).toMatch(/TLS certificate is not trusted/);
        }
      } finally {
        await Promise.all([wrongCa.close(), systemStore.close()]);
      }
    } finally {
      rmSync(otherPki, { recursive: true, force: true });
    }
  });

  it('uses the mTLS endpoint aliases and one kept-alive connection for many requests', async () => {
    const agent = createMtlsAgent(bank.tls);
    let connections = 0;
    agent.on('connect', () => {
      connections++;
    });
    const requests: string[] = [];
    const recording = agent.compose(
      (dispatch: Dispatcher['dispatch']) =>
        (opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler) => {
          requests.push(`${opts.method} ${new URL(opts.path, String(opts.origin)).href}`);
          return dispatch(opts, handler);
        },
    );
    const c = createBankClient(bank, { agent: recording });
    try {
      const ack = await start(c);
      for (let i = 0; i < 20; i++) {
        expect(await c.pollToken(ack.authReqId, { loginHint: 'alice' })).toEqual({ kind: 'pending' });
      }
      // discovery + JWKS + bc-authorize + 20 polls: 23 requests over one or two TLS connections
      // (the JWKS request can leave before the discovery connection is back in the pool)
      expect(requests).toHaveLength(23);
      expect(connections).toBeGreaterThanOrEqual(1);
      expect(connections).toBeLessThanOrEqual(2);
      const settled = connections;
      expect(requests).toEqual(
        expect.arrayContaining([
          `GET ${bank.issuer}/.well-known/openid-configuration`,
          `POST ${bank.issuer}/mtls/backchannel`,
          `POST ${bank.issuer}/mtls/token`,
        ]),
      );
      expect(requests.filter((r) => r === `POST ${bank.issuer}/mtls/token`)).toHaveLength(20);
      expect(requests.some((r) => r.endsWith('/master/token') || r.endsWith('/master/backchannel'))).toBe(
        false,
      );
      for (let i = 0; i < 20; i++) await c.pollToken(ack.authReqId, { loginHint: 'alice' });
      expect(connections).toBe(settled); // 20 more requests, no new connection

      // 8 polls at once open at most 8 connections, and the next 8 reuse them (on a loaded
      // machine a socket may not be back in the pool in time: some may open, never all 8)
      await Promise.all(Array.from({ length: 8 }, () => c.pollToken(ack.authReqId, { loginHint: 'alice' })));
      const afterBurst = connections;
      expect(afterBurst).toBeLessThanOrEqual(settled + 8);
      await Promise.all(Array.from({ length: 8 }, () => c.pollToken(ack.authReqId, { loginHint: 'alice' })));
      expect(connections - afterBurst).toBeLessThan(8);
      // 59 requests in all, over a handful of connections
      expect(connections).toBeLessThanOrEqual(settled + 16);
    } finally {
      await c.close();
      await agent.close();
    }
  });

  it('builds one client per configured bank', async () => {
    const clients = createBankClients([bank, { ...bank, id: 'sandbox-2' }]);
    try {
      expect([...clients.keys()]).toEqual(['sandbox', 'sandbox-2']);
      expect(clients.get('sandbox-2')?.bankId).toBe('sandbox-2');
    } finally {
      await Promise.all([...clients.values()].map((c) => c.close()));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// A scripted bank for the answers the sandbox cannot give.

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

interface StubBank {
  issuer: string;
  hits: Map<string, number>;
  routes: Map<string, Handler>;
  signIdToken(claims: JWTPayload, key?: CryptoKey): Promise<string>;
  close(): Promise<void>;
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

async function startStubBank(): Promise<StubBank> {
  const keyPair = await generateKeyPair('PS256', { extractable: true });
  const jwk: JWK = { ...(await exportJWK(keyPair.publicKey)), kid: 'stub-1', use: 'sig', alg: 'PS256' };
  const routes = new Map<string, Handler>();
  const hits = new Map<string, number>();
  const sockets = new Set<Socket>();
  const server: Server = createServer({
    cert: readFileSync(join(certsDir, 'server.pem')),
    key: readFileSync(join(certsDir, 'server-key.pem')),
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `https://localhost:${(server.address() as AddressInfo).port}/stub`;
  routes.set('GET /stub/.well-known/openid-configuration', (_req, res) =>
    json(res, 200, {
      issuer,
      token_endpoint: `${issuer}/token`,
      backchannel_authentication_endpoint: `${issuer}/bc`,
      jwks_uri: `${issuer}/jwks`,
      backchannel_token_delivery_modes_supported: ['poll'],
      mtls_endpoint_aliases: {
        token_endpoint: `${issuer}/mtls/token`,
        backchannel_authentication_endpoint: `${issuer}/mtls/bc`,
      },
    }),
  );
  routes.set('GET /stub/jwks', (_req, res) => json(res, 200, { keys: [jwk] }));
  routes.set('POST /stub/mtls/bc', (_req, res) => json(res, 200, { auth_req_id: 'req-1', expires_in: 60 }));
  server.on('request', (req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const key = `${req.method} ${(req.url ?? '').split('?')[0]}`;
      hits.set(key, (hits.get(key) ?? 0) + 1);
      const handler = routes.get(key);
      if (handler) handler(req, res, Buffer.concat(chunks).toString('utf8'));
      else json(res, 404, { error: 'not_found' });
    });
  });
  return {
    issuer,
    hits,
    routes,
    signIdToken: (claims, key) =>
      new SignJWT(claims).setProtectedHeader({ alg: 'PS256', kid: 'stub-1' }).sign(key ?? keyPair.privateKey),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      }),
  };
}

describe('BankClient against a scripted bank', () => {
  let stub: StubBank;
  let stubBank: BankConfig;
  const clients: Array<ReturnType<typeof createBankClient>> = [];

  beforeAll(async () => {
    stub = await startStubBank();
    stubBank = {
      ...bank,
      id: 'stub',
      issuer: stub.issuer,
      paymentsApiUrl: `${stub.issuer}/api`,
      loginHintIsSubject: true,
    };
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await stub?.close();
  });

  function fresh(options: Parameters<typeof createBankClient>[1] = {}) {
    const c = createBankClient(stubBank, options);
    clients.push(c);
    return c;
  }

  const idClaims = (overrides: JWTPayload = {}): JWTPayload => {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: stub.issuer,
      aud: stubBank.clientId,
      sub: 'alice',
      iat: now,
      exp: now + 300,
      'urn:openid:params:jwt:claim:auth_req_id': 'req-1',
      ...overrides,
    };
  };

  const tokenAnswer = (status: number, body: unknown, headers: Record<string, string> = {}): Handler => {
    return (_req, res) => json(res, status, body, headers);
  };

  it('maps expired_token to expired, invalid_grant and others to failed with the code', async () => {
    const c = fresh();
    stub.routes.set('POST /stub/mtls/token', tokenAnswer(400, { error: 'expired_token' }));
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({ kind: 'expired' });
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(400, { error: 'transaction_failed', error_description: 'the core banking system said no' }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'failed',
      code: 'transaction_failed',
      description: 'the core banking system said no',
    });
    stub.routes.set('POST /stub/mtls/token', tokenAnswer(401, { error: 'invalid_client' }));
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toMatchObject({
      kind: 'failed',
      code: 'invalid_client',
    });
  });

  it('maps 429 with an HTTP-date Retry-After to unavailable, and throws bank_unavailable on a 500', async () => {
    const now = Date.UTC(2026, 10, 26, 12, 0, 0);
    const c = fresh({ now: () => now });
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(429, { error: 'slow' }, { 'retry-after': new Date(now + 120_000).toUTCString() }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'unavailable',
      retryAfterSeconds: 120,
    });
    stub.routes.set('POST /stub/mtls/token', tokenAnswer(500, { error: 'server_error' }));
    const e = await rejection(c.pollToken('req-1', { loginHint: 'alice' }));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true, status: 500 });
  });

  it('throws bank_unavailable when the token endpoint drops the connection', async () => {
    const c = fresh();
    stub.routes.set('POST /stub/mtls/token', (req) => req.socket.destroy());
    const e = await rejection(c.pollToken('req-1', { loginHint: 'alice' }));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true });
  });

  it('returns tokens with a valid ID Token, at_hash included', async () => {
    const c = fresh();
    const accessToken = `at-${randomBytes(16).toString('hex')}`;
    const idToken = await stub.signIdToken(idClaims({ at_hash: accessTokenHash(accessToken, 'PS256') }));
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(200, {
        access_token: accessToken,
        token_type: 'Bearer',
        expires_in: 600,
        id_token: idToken,
      }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'tokens',
      tokens: { accessToken, idToken, expiresIn: 600 },
      subject: 'alice',
    });
  });

  it('throws invalid_id_token, never returning the access token, for a bad or missing ID Token', async () => {
    const c = fresh();
    const accessToken = `at-${randomBytes(16).toString('hex')}`;
    const foreign = (await generateKeyPair('PS256')).privateKey;
    const cases: Array<[string, Promise<string> | undefined]> = [
      ['signature', stub.signIdToken(idClaims(), foreign)],
      ['auth_req_id', stub.signIdToken(idClaims({ 'urn:openid:params:jwt:claim:auth_req_id': 'req-2' }))],
      ['at_hash', stub.signIdToken(idClaims({ at_hash: accessTokenHash('another', 'PS256') }))],
      ['aud', stub.signIdToken(idClaims({ aud: [stubBank.clientId, 'other'] }))],
      ['missing', undefined],
    ];
    for (const [check, token] of cases) {
      const idToken = token ? await token : undefined;
      stub.routes.set(
        'POST /stub/mtls/token',
        tokenAnswer(200, {
          access_token: accessToken,
          token_type: 'Bearer',
          ...(idToken ? { id_token: idToken } : {}),
        }),
      );
      const e = await rejection(c.pollToken('req-1', { loginHint: 'alice' }));
      expect(e.code, check).toBe('invalid_id_token');
      expect(e.message).not.toContain(accessToken);
      if (idToken) expect(e.message).not.toContain(idToken.split('.')[1]);
      expect(JSON.stringify(e)).not.toContain(accessToken);
    }
  });

  const raw =
    (status: number, contentType: string, body: string, headers: Record<string, string> = {}): Handler =>
    (_req, res) => {
      res.writeHead(status, { 'content-type': contentType, ...headers });
      res.end(body);
    };
  const PAGE = '<html><body><h1>502 Bad Gateway</h1></body></html>';

  it('treats a token answer nobody can read as no answer: bank_unavailable, retryable (bank.answers.ts)', async () => {
    const c = fresh();
    const cases: Array<[string, Handler]> = [
      ['200 HTML', raw(200, 'text/html', PAGE)],
      ['200 HTML labelled JSON', raw(200, 'application/json', PAGE)],
      ['200 empty', raw(200, 'application/json', '')],
      ['200 an array', tokenAnswer(200, [{ access_token: 'at' }])],
      ['200 without access_token', tokenAnswer(200, { token_type: 'Bearer' })],
      ['200 without token_type', tokenAnswer(200, { access_token: 'at' })],
      ['400 HTML', raw(400, 'text/html', PAGE)],
      ['400 JSON without error', tokenAnswer(400, { message: 'bad request' })],
      ['400 an error that is not an error code', tokenAnswer(400, { error: 'Authorization Pending' })],
      ['403 (not an RFC 6749 §5.2 status)', tokenAnswer(403, { error: 'access_denied' })],
      ['404 JSON', tokenAnswer(404, { error: 'not_found' })],
      ['302', raw(302, 'text/html', '', { location: 'https://example.com/' })],
      ['204', (_req, res) => res.writeHead(204).end()],
    ];
    for (const [name, handler] of cases) {
      stub.routes.set('POST /stub/mtls/token', handler);
      const e = await rejection(c.pollToken('req-1', { loginHint: 'alice' }));
      expect(e, name).toMatchObject({ code: 'bank_unavailable', retryable: true });
    }
    // a Retry-After comes along with it (RFC 9110 §10.2.3)
    stub.routes.set('POST /stub/mtls/token', raw(404, 'text/html', PAGE, { 'retry-after': '7' }));
    expect(await rejection(c.pollToken('req-1', { loginHint: 'alice' }))).toMatchObject({
      code: 'bank_unavailable',
      status: 404,
      retryAfterSeconds: 7,
    });
  });

  it('reads a JSON token answer whatever its label, and a Retry-After with pending and slow_down', async () => {
    const c = fresh();
    stub.routes.set('POST /stub/mtls/token', raw(400, 'text/plain', '{"error":"authorization_pending"}'));
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({ kind: 'pending' });
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(400, { error: 'authorization_pending' }, { 'retry-after': '9' }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'pending',
      retryAfterSeconds: 9,
    });
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(400, { error: 'slow_down' }, { 'retry-after': '12' }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'slow_down',
      retryAfterSeconds: 12,
    });
    stub.routes.set(
      'POST /stub/mtls/token',
      raw(401, 'text/html', PAGE, { 'www-authenticate': 'Basic realm="bank"' }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'failed',
      code: 'invalid_client',
    });
  });

  it('refuses readable tokens it cannot use (token_type not Bearer) for good, and ignores unreadable optional members', async () => {
    const c = fresh();
    const accessToken = `at-${randomBytes(16).toString('hex')}`;
    const idToken = await stub.signIdToken(idClaims({ at_hash: accessTokenHash(accessToken, 'PS256') }));
    for (const tokenType of ['mac', 'DPoP']) {
      stub.routes.set(
        'POST /stub/mtls/token',
        tokenAnswer(200, { access_token: accessToken, token_type: tokenType, id_token: idToken }),
      );
      const e = await rejection(c.pollToken('req-1', { loginHint: 'alice' }));
      expect(e, tokenType).toMatchObject({ code: 'invalid_bank_response', retryable: false });
      expect(e.message).not.toContain(accessToken);
    }
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(200, {
        access_token: accessToken,
        token_type: 'bearer',
        id_token: idToken,
        expires_in: 'soon',
        scope: 7,
        refresh_token: {},
      }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toEqual({
      kind: 'tokens',
      tokens: { accessToken, idToken },
      subject: 'alice',
    });
    stub.routes.set(
      'POST /stub/mtls/token',
      tokenAnswer(200, {
        access_token: accessToken,
        token_type: 'Bearer',
        id_token: idToken,
        expires_in: '600',
      }),
    );
    expect(await c.pollToken('req-1', { loginHint: 'alice' })).toMatchObject({ tokens: { expiresIn: 600 } });
  });

  it('reads the acknowledgement by the table: no auth_req_id is final, odd expires_in and interval take defaults (CIBA §7.3)', async () => {
    const c = fresh();
    for (const body of [
      { expires_in: 60 },
      { auth_req_id: 7, expires_in: 60 },
      { auth_req_id: '', expires_in: 60 },
    ]) {
      stub.routes.set('POST /stub/mtls/bc', tokenAnswer(200, body));
      const e = await rejection(start(c));
      // The bank took the request: sending it again would only add prompts on the phone.
      expect(e, JSON.stringify(body)).toMatchObject({ code: 'invalid_bank_response', retryable: false });
    }
    const acks: Array<[object, object]> = [
      [
        { auth_req_id: 'x', expires_in: 90, interval: 3 },
        { expiresIn: 90, interval: 3 },
      ],
      [{ auth_req_id: 'x' }, { expiresIn: 60, interval: undefined }], // requestedExpiry 60
      [
        { auth_req_id: 'x', expires_in: 0, interval: 0 },
        { expiresIn: 60, interval: undefined },
      ],
      [
        { auth_req_id: 'x', expires_in: '45', interval: '5' },
        { expiresIn: 45, interval: 5 },
      ],
      [
        { auth_req_id: 'x', expires_in: -1, interval: '2' },
        { expiresIn: 60, interval: 5 },
      ],
      [
        { auth_req_id: 'x', expires_in: 30.7, interval: 0.2 },
        { expiresIn: 30, interval: 1 },
      ],
    ];
    for (const [body, expected] of acks) {
      stub.routes.set('POST /stub/mtls/bc', tokenAnswer(200, body));
      expect(await start(c), JSON.stringify(body)).toEqual({ authReqId: 'x', ...expected });
    }
  });

  it('reads bc-authorize errors by the table: CIBA §13 statuses are final, anything unreadable transient', async () => {
    const c = fresh();
    const final: Array<[Handler, string]> = [
      [tokenAnswer(403, { error: 'access_denied' }), 'access_denied'],
      [tokenAnswer(400, { error: 'unknown_user_id' }), 'unknown_user_id'],
      [raw(401, 'text/html', PAGE, { 'www-authenticate': 'Basic realm="bank"' }), 'invalid_client'],
    ];
    for (const [handler, code] of final) {
      stub.routes.set('POST /stub/mtls/bc', handler);
      expect(await rejection(start(c))).toMatchObject({ code, retryable: false });
    }
    const transient: Array<[string, Handler, number | undefined]> = [
      ['200 HTML labelled JSON', raw(200, 'application/json', PAGE), undefined],
      ['400 HTML', raw(400, 'text/html', PAGE), undefined],
      ['404 JSON', tokenAnswer(404, { error: 'not_found' }), undefined],
      [
        '400 temporarily_unavailable with Retry-After',
        tokenAnswer(400, { error: 'temporarily_unavailable' }, { 'retry-after': '6' }),
        6,
      ],
    ];
    for (const [name, handler, retryAfterSeconds] of transient) {
      stub.routes.set('POST /stub/mtls/bc', handler);
      const e = await rejection(start(c));
      expect(e, name).toMatchObject({ code: 'bank_unavailable', retryable: true });
      expect(e.retryAfterSeconds, name).toBe(retryAfterSeconds);
    }
    stub.routes.set('POST /stub/mtls/bc', tokenAnswer(200, { auth_req_id: 'req-1', expires_in: 60 }));
  });

  it('throws configuration_error when discovery lacks the backchannel endpoint', async () => {
    const original = stub.routes.get('GET /stub/.well-known/openid-configuration');
    stub.routes.set('GET /stub/.well-known/openid-configuration', (_req, res) =>
      json(res, 200, {
        issuer: stub.issuer,
        token_endpoint: `${stub.issuer}/token`,
        jwks_uri: `${stub.issuer}/jwks`,
      }),
    );
    try {
      const e = await rejection(start(fresh()));
      expect(e).toMatchObject({ code: 'configuration_error', retryable: false });
      expect(e.message).toMatch(/backchannel_authentication_endpoint/);
    } finally {
      if (original) stub.routes.set('GET /stub/.well-known/openid-configuration', original);
    }
  });

  it('does not cache a failed discovery: the next call tries again; a good one is cached', async () => {
    const path = 'GET /stub/.well-known/openid-configuration';
    const original = stub.routes.get(path);
    if (!original) throw new Error('no discovery route');
    stub.routes.set('POST /stub/mtls/bc', tokenAnswer(200, { auth_req_id: 'req-1', expires_in: 60 }));
    let calls = 0;
    stub.routes.set(path, (req, res, body) => {
      calls++;
      if (calls === 1) json(res, 503, { error: 'temporarily_unavailable' }, { 'retry-after': '2' });
      else original(req, res, body);
    });
    try {
      const c = fresh();
      expect(await rejection(start(c))).toMatchObject({
        code: 'bank_unavailable',
        retryable: true,
        retryAfterSeconds: 2,
      });
      expect((await start(c)).authReqId).toBe('req-1');
      expect((await start(c)).authReqId).toBe('req-1');
      expect(calls).toBe(2);
    } finally {
      stub.routes.set(path, original);
    }
  });

  it('times out a bank that never answers with bank_unavailable', async () => {
    const c = fresh({ timeoutMs: 300 });
    await start(c); // discovery done
    stub.routes.set('POST /stub/mtls/token', () => {}); // never answers
    const started = Date.now();
    const e = await rejection(c.pollToken('req-1', { loginHint: 'alice' }));
    expect(e).toMatchObject({ code: 'bank_unavailable', retryable: true });
    expect(e.message).toMatch(/timed out/);
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('reads payment answers by the table: only a readable refusal is final, nothing unreadable is a rejection', async () => {
    const c = fresh();
    const ORDER = {
      instructedAmount: { currency: 'EUR', amount: '1.00' },
      creditorName: 'Acme',
      creditorAccount: { iban: 'DE89370400440532013000' },
      remittanceInformationUnstructured: 'x',
    };
    stub.routes.set('GET /stub/api/payments/p-1', tokenAnswer(404, { error: 'not_found' }));
    expect(await rejection(c.getPayment('at', 'p-1'))).toMatchObject({
      code: 'payment_api_error',
      status: 404,
      retryable: false,
    });
    const refusals: Array<[string, Handler]> = [
      ['403 JSON error', tokenAnswer(403, { error: 'payment_mismatch' })],
      ['422 JSON error', tokenAnswer(422, { error: 'idempotency_key_reused' })],
      [
        '401 Bearer challenge, no body',
        raw(401, 'text/plain', '', { 'www-authenticate': 'Bearer error="invalid_token"' }),
      ],
    ];
    for (const [name, handler] of refusals) {
      stub.routes.set('POST /stub/api/payments', handler);
      expect(await rejection(c.initiatePayment('at', 'k', ORDER)), name).toMatchObject({
        code: 'payment_api_error',
        retryable: false,
      });
    }
    const unreadable: Array<[string, Handler]> = [
      ['201 status pending', tokenAnswer(201, { paymentId: 'p-1', status: 'pending' })],
      ['201 without paymentId', tokenAnswer(201, { status: 'accepted' })],
      ['201 HTML labelled JSON', raw(201, 'application/json', PAGE)],
      ['202', tokenAnswer(202, { paymentId: 'p-1', status: 'accepted' })],
      ['204', (_req, res) => res.writeHead(204).end()],
      ['302', raw(302, 'text/html', '', { location: 'https://example.com/' })],
      ["403 a proxy's page", raw(403, 'text/html', PAGE)],
      ['400 JSON without error', tokenAnswer(400, { message: 'no' })],
      ['408', raw(408, 'text/html', PAGE)],
      ['425', tokenAnswer(425, { error: 'too_early' })],
    ];
    for (const [name, handler] of unreadable) {
      stub.routes.set('POST /stub/api/payments', handler);
      expect(await rejection(c.initiatePayment('at', 'k', ORDER)), name).toMatchObject({
        code: 'bank_unavailable',
        retryable: true,
      });
    }
    stub.routes.set(
      'POST /stub/api/payments',
      tokenAnswer(201, { paymentId: 'p-1', status: 'accepted', reason: 7 }),
    );
    expect(await c.initiatePayment('at', 'k', ORDER)).toEqual({ paymentId: 'p-1', status: 'accepted' });
  });

  it('retries a 409 from the payment API (a request with the same Idempotency-Key still in progress)', async () => {
    const c = fresh();
    stub.routes.set('POST /stub/api/payments', tokenAnswer(409, { error: 'idempotency_key_in_use' }));
    expect(
      await rejection(
        c.initiatePayment('at', 'k', {
          instructedAmount: { currency: 'EUR', amount: '1.00' },
          creditorName: 'Acme',
          creditorAccount: { iban: 'DE89370400440532013000' },
          remittanceInformationUnstructured: 'x',
        }),
      ),
    ).toMatchObject({ code: 'bank_unavailable', status: 409, retryable: true });
  });
});
