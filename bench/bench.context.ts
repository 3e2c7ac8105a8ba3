/**
 * What every stage of `npm run bench` works with: the local stack (devstack/, as `npm run dev`
 * and the tests run it, with durable PostgreSQL and pg_stat_statements), a SQL connection and a
 * Redis client to read from, the environment the API and worker are started with, and the
 * merchant key. Built once, so the stages measure against the same services.
 */
import { join, resolve } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startDevStack } from '../devstack/devstack.ts';
import { freePort } from '../devstack/ports.ts';
import { writeSandboxBanksFile } from '../devstack/sandbox.service.ts';
import type { SandboxBank } from '../sandbox/bank.ts';
import { flags, INTERVAL_MS } from './bench.options.ts';
import { type Processes, trackProcesses } from './processes.ts';

export type Cleanup = () => Promise<void> | void;

export interface Bench {
  /** The run's temporary folder (profiles and the naive child's files go there too). */
  dir: string;
  databaseUrl: string;
  /** What the API and the worker run with. */
  env: Record<string, string>;
  sql: pg.Client;
  redisUrl: string;
  redisClient: Redis;
  /** PostgreSQL's postmaster and the Redis server, whose CPU is read in every window. */
  pids: { postmaster: number; redis: number };
  bank: SandboxBank;
  control: string;
  /** Headers of the merchant's API requests. */
  auth: Record<string, string>;
  processes: Processes;
  /**
   * CIBA ping mode (ping.stage.ts): the API started on this port with this environment is the
   * sandbox bank's notification endpoint, and the banks file there puts the bank in ping mode.
   */
  ping: { port: number; env: Record<string, string> };
}

const root = resolve(new URL('..', import.meta.url).pathname);
const started = Date.now();
export const log = (msg: string) =>
  console.log(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);

/** Starts the services; what it started is stopped by `cleanups` (run first to last). */
export async function startBench(mode: string, cleanups: Cleanup[]): Promise<Bench> {
  // Durable PostgreSQL (the production defaults), with pg_stat_statements (shipped with the
  // embedded binaries) to count the statements per operation; Redis without persistence.
  const pingPort = await freePort();
  const publicUrl = `http://127.0.0.1:${pingPort}`;
  const stack = await startDevStack({
    name: 'bench',
    database: 'bench',
    postgresSettings: { shared_preload_libraries: 'pg_stat_statements' },
    queue: 'redis',
    sandbox: {
      testMode: true,
      defaultInterval: INTERVAL_MS / 1000,
      notificationEndpoint: `${publicUrl}/ciba/notify/sandbox`,
    },
    bankEntry: { requestedExpiry: 600 },
    apiKeyName: 'bench',
  });
  cleanups.unshift(() => stack.stop());
  const pingBanksFile = join(stack.dataDir, 'banks-ping.json');
  writeSandboxBanksFile(
    pingBanksFile,
    { bank: stack.bank, certificates: stack.certificates },
    { requestedExpiry: 600, deliveryMode: 'ping' },
  );
  log(`${mode} run in ${stack.dataDir}`);
  const redis = stack.redis!;
  const redisClient = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  cleanups.unshift(() => void redisClient.disconnect());
  const env: Record<string, string> = {
    ...stack.env,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    RATE_LIMIT_MAX: '10000000',
    RATE_LIMIT_WINDOW_MS: '1000',
    ...(flags['worker-concurrency'] ? { WORKER_CONCURRENCY: flags['worker-concurrency'] } : {}),
  };
  const sql = new pg.Client({ connectionString: stack.postgres.url });
  await sql.connect();
  cleanups.unshift(() => sql.end());
  await sql.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const processes = trackProcesses(root, env);
  // Children are tracked so that every exit path stops them.
  cleanups.unshift(() => processes.stopAll());
  return {
    dir: stack.dataDir,
    databaseUrl: stack.postgres.url,
    env,
    sql,
    redisUrl: redis.url,
    redisClient,
    pids: { postmaster: stack.postgres.pid, redis: redis.process.pid ?? -1 },
    bank: stack.bank,
    control: stack.bank.controlUrl!,
    auth: { authorization: `Bearer ${stack.apiKey}`, 'content-type': 'application/json' },
    processes,
    ping: {
      port: pingPort,
      env: { PORT: String(pingPort), PUBLIC_URL: publicUrl, BANKS_FILE: pingBanksFile },
    },
  };
}
