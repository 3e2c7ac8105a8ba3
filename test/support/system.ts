/**
 * Bankpay as a test sees it from outside: the real API listening on a port and a real worker
 * consuming the real queue, against the run's PostgreSQL, Redis and sandbox bank. Tests talk to
 * the API over HTTP and to the bank through its bank-app and control endpoints, nothing else.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, inject } from 'vitest';
import { buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { createApiKey } from '../../src/infra/api-keys.ts';
import { createKeyRing } from '../../src/infra/crypto.ts';
import { createDatabase, createSqlPool, type Database } from '../../src/infra/database.ts';
import { createQueueInfra, type QueueInfra } from '../../src/infra/queue.ts';
import { type BankClient, createBankClients } from '../../src/integrations/bank.client.ts';
import { startWorkerRuntime, type WorkerRuntime } from '../../src/jobs/runtime.ts';
import { createRepositories } from '../../src/repositories.ts';
import { testEnv } from './env.ts';

export interface System {
  url: string;
  /** The environment the API and worker run with (for worker processes). */
  env: Record<string, string>;
  apiKey: string;
  config: Config;
  db: Database;
  app: FastifyInstance;
  queue: QueueInfra;
  banks: Map<string, BankClient>;
  /**
   * Stops the API (as a shutdown does: streams end, held reads answer, connections close), runs
   * `whileDown` (default: nothing), and starts a new one on the same port, database and queue.
   */
  restartApi(whileDown?: () => Promise<void>): Promise<void>;
  /** Starts (or restarts) the worker: queue consumer and token poller, as `npm run worker`. */
  startWorker(): Promise<void>;
  stopWorker(): Promise<void>;
  close(): Promise<void>;
}

export async function startSystem(
  overrides: Record<string, string> = {},
  options: { worker?: boolean } = {},
): Promise<System> {
  // A database and a queue namespace per system keep parallel test files from taking each other's
  // jobs and token polls.
  const env = testEnv({
    QUEUE_PREFIX: `t${randomBytes(4).toString('hex')}`,
    DATABASE_URL: overrides.DATABASE_URL ?? (await createSystemDatabase()),
    ...overrides,
  });
  const config = loadConfig(env);
  const db = createDatabase(config.databaseUrl);
  const sql = createSqlPool(config.databaseUrl, { poolSize: 4 });
  const queue = createQueueInfra(config.queue, config.databaseUrl);
  // The tests poll many checkouts at once with one merchant key: lift the per-key rate limit
  // (security.test.ts tests it with its own app).
  const startApi = async (port: number) => {
    const api = await buildApp({ config, db, queue, rateLimit: { max: 1_000_000, timeWindowMs: 1_000 } });
    await api.listen({ host: '127.0.0.1', port });
    return api;
  };
  let app = await startApi(config.port);
  const address = app.server.address() as { port: number };
  const { key } = await createApiKey(db, `test-${randomUUID()}`);
  const banks = createBankClients(config.banks, { timeoutMs: config.worker.bankTimeoutMs });
  const keys = createKeyRing(config.tokenEncryptionKeys);
  const log = pino({ level: env.LOG_LEVEL ?? 'silent' });
  let runtime: WorkerRuntime | undefined;
  const system: System = {
    url: `http://127.0.0.1:${address.port}`,
    env,
    apiKey: key,
    config,
    db,
    get app() {
      return app;
    },
    queue,
    banks,
    async restartApi(whileDown) {
      // As src/server.ts shuts down: a connection still open after 5 s is cut.
      const cut = setTimeout(() => app.server.closeAllConnections(), 5_000);
      await app.close();
      clearTimeout(cut);
      try {
        await whileDown?.();
      } finally {
        app = await startApi(address.port);
      }
    },
    async startWorker() {
      // As src/worker.ts runs it (the log is silent unless a test asks for LOG_LEVEL).
      runtime = await startWorkerRuntime(
        { config, ...createRepositories(db, sql), queue: queue.queue, keys, banks, log },
        queue,
      );
    },
    async stopWorker() {
      await runtime?.close();
      runtime = undefined;
    },
    async close() {
      await system.stopWorker();
      await app.close();
      await queue.close();
      await Promise.all([...banks.values()].map((b) => b.close()));
      await Promise.all([db.$disconnect(), sql.end()]);
    },
  };
  if (options.worker !== false) await system.startWorker();
  return system;
}

/** A fresh, migrated database for one system: a copy of the run's template (global-setup.ts). */
export async function createSystemDatabase(): Promise<string> {
  const name = `bankpay_s_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${inject('templateDatabase')}`);
  } finally {
    await admin.end();
  }
  return inject('postgresAdminUrl').replace(/\/postgres$/, `/${name}`);
}

/**
 * A fresh customer at the run's sandbox bank (the bank the system under test talks to), so that
 * fault scripts never leak between tests.
 */
export async function newBankCustomer(faults?: Record<string, unknown>): Promise<string> {
  const controlUrl = inject('bank').controlUrl;
  const login = `t-${randomBytes(6).toString('hex')}`;
  const res = await fetch(`${controlUrl}/customers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login }),
  });
  if (res.status !== 201) throw new Error(`could not create customer: ${res.status} ${await res.text()}`);
  if (faults) await setFaults(login, faults);
  return login;
}

export async function setFaults(login: string, faults: Record<string, unknown>): Promise<void> {
  const res = await fetch(`${inject('bank').controlUrl}/customers/${login}/faults`, {
    method: 'PUT',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  if (!res.ok) throw new Error(`could not set faults: ${res.status} ${await res.text()}`);
}

/** A request to the control API of the run's sandbox bank: its JSON answer, or an error unless 2xx. */
export async function bankControl<T = unknown>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${inject('bank').controlUrl}${path}`, init);
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

export interface BankAppRequest {
  authReqId: string;
  bindingMessage: string;
  merchantName?: string;
  payment?: {
    amount: string;
    currency: string;
    creditorName: string;
    creditorIban: string;
    remittanceInformation: string;
  };
}

/** The customer's phone: waits until the request shows up in the bank app, as the page would. */
export async function pendingInBankApp(
  login: string,
  timeoutMs = 15_000,
  appUrl = inject('bank').appUrl,
): Promise<BankAppRequest> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const res = await fetch(`${appUrl}app/api/customers/${login}/requests`);
    const body = (await res.json()) as { requests: BankAppRequest[] };
    const first = body.requests[0];
    if (first) return first;
    if (Date.now() > deadline) throw new Error(`no pending request for ${login} in the bank app`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Taps Approve or Deny in the bank app (its own HTTP endpoint, as the page does). */
export async function decideInBankApp(
  login: string,
  authReqId: string,
  decision: 'approve' | 'deny',
  appUrl = inject('bank').appUrl,
): Promise<void> {
  const res = await fetch(`${appUrl}app/api/requests/${authReqId}/${decision}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login }),
  });
  if (!res.ok) throw new Error(`${decision} failed: ${res.status} ${await res.text()}`);
}

export interface Api {
  createCheckout(
    body: Record<string, unknown>,
    options?: { key?: string; idempotencyKey?: string | null },
  ): Promise<Response>;
  get(path: string, token?: string): Promise<Response>;
  post(path: string, body?: unknown, token?: string): Promise<Response>;
  waitForStatus(id: string, statuses: string[], timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** The API of `system()` over HTTP, as a merchant with the system's key (read at each request). */
function api(system: () => System): Api {
  const self: Api = {
    createCheckout(body, options = {}) {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        authorization: `Bearer ${options.key ?? system().apiKey}`,
      };
      if (options.idempotencyKey !== null)
        headers['idempotency-key'] = options.idempotencyKey ?? randomUUID();
      return fetch(`${system().url}/v1/checkouts`, { method: 'POST', headers, body: JSON.stringify(body) });
    },
    get(path, token = system().apiKey) {
      return fetch(`${system().url}${path}`, { headers: { authorization: `Bearer ${token}` } });
    },
    post(path, body, token = system().apiKey) {
      return fetch(`${system().url}${path}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${token}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    },
    async waitForStatus(id, statuses, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let last: Record<string, unknown> = {};
      while (Date.now() < deadline) {
        const res = await self.get(`/v1/checkouts/${id}`);
        last = (await res.json()) as Record<string, unknown>;
        if (statuses.includes(last.status as string)) return last;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`checkout ${id} did not reach ${statuses.join('/')}; last: ${JSON.stringify(last)}`);
    },
  };
  return self;
}

export interface SystemUnderTest {
  /** The running system: from its beforeAll on (throws before it started). */
  system(): System;
  /** Its API over HTTP, as the merchant of `system().apiKey`. */
  http: Api;
}

type Overrides = Record<string, string>;

/**
 * One system for the tests of a file, or of a describe block when called in one: started in a
 * beforeAll, closed in an afterAll, with `startSystem`'s overrides and options. Overrides known
 * only once earlier hooks ran (a port, a file) are given as a function, called in the beforeAll.
 * Hooks registered before this call run before the start and after the close.
 */
export function useSystem(
  overrides: Overrides | (() => Overrides | Promise<Overrides>) = {},
  options: { worker?: boolean } = {},
): SystemUnderTest {
  let started: System | undefined;
  const system = (): System => {
    if (!started) throw new Error('the system is not started yet: use it in a hook or a test');
    return started;
  };
  beforeAll(async () => {
    started = await startSystem(typeof overrides === 'function' ? await overrides() : overrides, options);
  });
  afterAll(async () => {
    await started?.close();
  });
  return { system, http: api(system) };
}

export function checkoutBody(
  loginHint: string,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    amount: 4990,
    currency: 'EUR',
    bankId: 'sandbox',
    loginHint,
    reference: `order-${randomBytes(3).toString('hex')}`,
    ...overrides,
  };
}

/** A real worker process (`npm run worker`), so that a test can SIGKILL it mid-step. */
export interface WorkerProcess {
  child: ChildProcess;
  output(): string;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export function spawnWorker(system: System, extraEnv: Record<string, string> = {}): WorkerProcess {
  return spawnScript('src/worker.ts', { ...system.env, ...extraEnv });
}

/** One of Bankpay's entry points as its own process, its output captured. */
export function spawnScript(script: string, env: Record<string, string>): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    child,
    output: () => out,
    async kill(signal = 'SIGKILL') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Waits until `check` returns a value (polling), or fails after `timeoutMs`. */
export async function eventually<T>(
  check: () => Promise<T | undefined | null | false>,
  timeoutMs: number,
  what: string,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The customer approves every request their bank app shows (after a crash there may be two). */
export async function approveAllInBankApp(login: string, timeoutMs = 30_000): Promise<number> {
  await pendingInBankApp(login, timeoutMs);
  const res = await fetch(`${inject('bank').appUrl}app/api/customers/${login}/requests`);
  const { requests } = (await res.json()) as { requests: BankAppRequest[] };
  for (const r of requests) await decideInBankApp(login, r.authReqId, 'approve');
  return requests.length;
}
