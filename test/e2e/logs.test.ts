/**
 * House convention 7: logs carry request and job ids, never a secret. The logs of a whole checkout
 * (API and worker, at level trace, through the same logger options as production) are captured
 * and searched for every secret the flow handles: the merchant key, the clientSecret, tokens
 * (JWTs), the CIBA auth_req_id, the client TLS key, the request-object signing key, the token
 * encryption key, Authorization headers.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pino, { type DestinationStream } from 'pino';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createKeyRing } from '../../src/infra/crypto.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { loggerOptions } from '../../src/infra/logging.ts';
import { type BankClient, createBankClients } from '../../src/integrations/bank.client.ts';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/jobs/runtime.ts';
import { createRepositories } from '../../src/repositories.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import {
  createSystemDatabase,
  decideInBankApp,
  newBankCustomer,
  pendingInBankApp,
} from '../support/system.ts';

function memoryStream(): DestinationStream & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    write(line: string) {
      lines.push(line);
    },
  };
}

const apiLogs = memoryStream();
const workerLogs = memoryStream();
let api: ApiApp;
let banks: Map<string, BankClient>;
let sql: SqlPool;
let worker: WorkerRuntime;

beforeAll(async () => {
  // Its own database: the worker's token poller serves every checkout of the database it runs on.
  const env = { LOG_LEVEL: 'trace', DATABASE_URL: await createSystemDatabase() };
  api = await startApiApp({ env, logStream: apiLogs });
  expect(api.config.logLevel).toBe('trace');
  banks = createBankClients(api.config.banks);
  sql = createSqlPool(api.config.databaseUrl, { poolSize: 2 });
  const log = pino(loggerOptions(api.config.logLevel, 'bankpay-worker'), workerLogs);
  const keys = createKeyRing(api.config.tokenEncryptionKeys);
  worker = await startWorkerRuntime(
    { config: api.config, ...createRepositories(api.db, sql), queue: api.queue.queue, keys, banks, log },
    api.queue,
  );
});
afterAll(async () => {
  await worker?.close();
  await sql?.end();
  await Promise.all([...(banks?.values() ?? [])].map((b) => b.close()));
  await api?.close();
});

interface Flow {
  checkoutId: string;
  clientSecret: string;
  authReqId: string;
  requestIds: string[];
}

/** One checkout, start to end; the bank fails once at each step so every job has something to say. */
async function payOneCheckout(): Promise<Flow> {
  const login = await newBankCustomer({
    unavailable: { 'bc-authorize': { times: 1, retryAfter: 1 } },
    drop: { token: { times: 1, afterCommit: false } },
    paymentError: { times: 1 },
  });
  const requestIds: string[] = [];
  const call = async (method: 'GET' | 'POST', url: string, token: string, payload?: object) => {
    const res = await api.app.inject({
      method,
      url,
      headers: {
        authorization: `Bearer ${token}`,
        ...(payload ? { 'idempotency-key': `logs-${Date.now()}` } : {}),
      },
      ...(payload ? { payload } : {}),
    });
    requestIds.push(String(res.headers['x-request-id']));
    return res;
  };

  const created = await call('POST', '/v1/checkouts', api.apiKey, {
    amount: 4990,
    currency: 'EUR',
    bankId: 'sandbox',
    loginHint: login,
    reference: 'order-logs',
  });
  expect(created.statusCode).toBe(202);
  const { id: checkoutId, clientSecret } = created.json() as { id: string; clientSecret: string };

  const request = await pendingInBankApp(login, 20_000);
  expect((await call('GET', `/v1/checkouts/${checkoutId}`, clientSecret)).statusCode).toBe(200);
  await decideInBankApp(login, request.authReqId, 'approve');

  const deadline = Date.now() + 25_000;
  let status = '';
  while (Date.now() < deadline) {
    status = (await call('GET', `/v1/checkouts/${checkoutId}`, clientSecret)).json().status;
    if (['succeeded', 'failed', 'declined', 'expired'].includes(status)) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  expect(status).toBe('succeeded');

  // A request with a wrong credential, and one with a malformed Authorization header.
  expect((await call('GET', '/v1/checkouts', `${api.apiKey.slice(0, -4)}AAAA`)).statusCode).toBe(401);
  const garbled = await api.app.inject({
    method: 'GET',
    url: `/v1/checkouts/${checkoutId}`,
    headers: { authorization: `Basic ${Buffer.from(`${clientSecret}:x`).toString('base64')}` },
  });
  expect(garbled.statusCode).toBe(401);
  return { checkoutId, clientSecret, authReqId: request.authReqId, requestIds };
}

/** The base64 lines of a PEM file (each would give part of the key away; short tails could match by chance). */
function pemBody(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((line) => line.length >= 16 && !line.startsWith('-----'));
}

describe('logs of a whole checkout, API and worker, at level trace', () => {
  let flow: Flow;
  let all: string;

  beforeAll(async () => {
    flow = await payOneCheckout();
    await worker.close(); // every job has finished writing
    all = [...apiLogs.lines, ...workerLogs.lines].join('');
  }, 60_000);

  it('are there: JSON lines with request ids (API) and job ids (worker)', () => {
    const apiLines = apiLogs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const workerLines = workerLogs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(apiLines.length).toBeGreaterThan(flow.requestIds.length);
    const loggedRequestIds = new Set(apiLines.map((l) => l.reqId));
    for (const id of flow.requestIds) expect(loggedRequestIds, `request ${id}`).toContain(id);
    // The worker spoke about this checkout in each of its steps: the jobs with the job's id, the
    // token poller with the checkout's id.
    const jobIds = new Set(workerLines.map((l) => l.jobId));
    for (const step of ['ciba-start', 'bank-pay']) {
      expect(jobIds, `a log line of ${step}`).toContain(`${step}-${flow.checkoutId}`);
    }
    const pollerLines = workerLines.filter((l) => l.checkoutId === flow.checkoutId && !l.jobId);
    expect(pollerLines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['token poll failed; retrying', 'checkout authorized by the customer']),
    );
    expect(workerLines.every((l) => l.name === 'bankpay-worker')).toBe(true);
  });

  it('say what happened: one line per request (method, path, status, ms), the checkout and its status on the worker lines', () => {
    const apiLines = apiLogs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const access = apiLines.filter((l) => typeof l.method === 'string');
    expect(access.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^POST \/v1\/checkouts 202 [\d.]+ ms$/),
        expect.stringMatching(new RegExp(`^GET /v1/checkouts/${flow.checkoutId} 200 [\\d.]+ ms$`)),
        expect.stringMatching(/^GET \/v1\/checkouts 401 [\d.]+ ms$/),
      ]),
    );
    for (const l of access) expect(l).toMatchObject({ status: expect.any(Number), ms: expect.any(Number) });
    // Fastify's own two lines per request are gone.
    expect(apiLines.some((l) => l.msg === 'incoming request' || l.msg === 'request completed')).toBe(false);

    const workerLines = workerLogs.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const jobLines = workerLines.filter((l) => String(l.jobId ?? '').endsWith(flow.checkoutId));
    expect(jobLines.length).toBeGreaterThan(0);
    for (const l of jobLines) expect(l.checkoutId, String(l.msg)).toBe(flow.checkoutId);
    const statuses = workerLines.filter((l) => l.checkoutId === flow.checkoutId).map((l) => l.status);
    expect(statuses).toEqual(expect.arrayContaining(['awaiting_approval', 'authorized', 'succeeded']));
  });

  it('hold no API key, clientSecret, Authorization header or token', () => {
    expect(all).not.toContain(api.apiKey);
    expect(all).not.toContain(api.apiKey.slice(4)); // without its bpk_ prefix
    expect(all).not.toContain(flow.clientSecret);
    expect(all).not.toContain(flow.clientSecret.split('_secret_')[1]);
    expect(all).not.toMatch(/Bearer\s+(?!\[redacted\])[\x21-\x7e]{8,}/i);
    expect(all).not.toMatch(/Basic\s+[A-Za-z0-9+/=]{8,}/);
    expect(all).not.toMatch(/eyJ[\w-]+\.eyJ[\w-]+/); // a JWT: access token, ID token, request object
    expect(all).not.toContain(flow.authReqId);
  });

  it('hold no private key or encryption key', () => {
    const certs = inject('certsDir');
    for (const file of ['client-key.pem', 'signing-key.pem']) {
      for (const line of pemBody(join(certs, file))) expect(all, file).not.toContain(line);
    }
    for (const key of api.config.tokenEncryptionKeys) {
      expect(all).not.toContain(key.toString('base64'));
      expect(all).not.toContain(key.toString('hex'));
    }
  });
});

describe('redaction', () => {
  // Nothing above logs a header or a token object today; these are the shapes code would log one in.
  it('hides secrets wherever code is likely to put them in a log line', () => {
    const stream = memoryStream();
    const log = pino(loggerOptions('trace', 'redaction'), stream);
    const secret = (name: string) => `s3cr3t-${name}-${Math.random().toString(36).slice(2)}`;
    const shapes: Array<(s: string) => Record<string, unknown>> = [
      (s) => ({ req: { headers: { authorization: `Bearer ${s}` } } }),
      (s) => ({ headers: { authorization: `Bearer ${s}` } }),
      (s) => ({ authorization: `Bearer ${s}` }),
      (s) => ({ clientSecret: s }),
      (s) => ({ checkout: { clientSecret: s } }),
      (s) => ({ client_secret: s }),
      (s) => ({ apiKey: s }),
      (s) => ({ access_token: s }),
      (s) => ({ tokens: { access_token: s, id_token: s, refresh_token: s } }),
      (s) => ({ tokens: { accessToken: s, idToken: s } }),
      (s) => ({ auth_req_id: s }),
      (s) => ({ ack: { auth_req_id: s } }),
      (s) => ({ authReqId: s }),
      (s) => ({ checkout: { authReqId: s } }),
      (s) => ({ bank: { privateKey: s } }),
      (s) => ({ form: { client_assertion: s, request: s } }),
    ];
    const secrets = shapes.map((shape, i) => {
      const s = secret(String(i));
      log.info(shape(s), 'a line');
      return s;
    });
    const text = stream.lines.join('');
    expect(stream.lines).toHaveLength(shapes.length);
    for (const s of secrets) expect(text).not.toContain(s);
    expect(text.match(/\[redacted\]/g)?.length).toBeGreaterThanOrEqual(shapes.length);
  });
});
