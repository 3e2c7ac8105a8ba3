/**
 * `npm run bench [-- --quick] [-- --k 1000,10000] [-- --naive-k 1000] [-- --no-profile] [-- --json FILE]`
 *
 * Bankpay's speed and scale, each figure next to its reference in the same run (issue 5), on
 * private services in a temporary folder: embedded PostgreSQL (durable settings), Redis (no
 * persistence), the sandbox bank in this process (interval 5 s, test mode), the API
 * (`src/server.ts`) and the worker (`src/worker.ts`) as child processes, and a bare Fastify app
 * (`bench/bare-server.ts`) as the ceiling. Load comes from autocannon in this process.
 *
 *   (a) POST /v1/checkouts vs a bare POST route at 1, 16, 64 connections (no worker running)
 *   (b) GET /v1/checkouts/{id} with the clientSecret vs a bare GET route
 *   (c) K checkouts awaiting approval at once: polls/s, CPU per component, Redis memory,
 *       Postgres writes per poll, poll lateness (gap between polls at the bank minus 5 s)
 *   (d) approval → succeeded latency, measured during (c)
 *   (e) memory per pending checkout: worker RSS, Redis used_memory, Postgres table sizes
 *   (f) the naive alternative to (c): one openid-client poll loop per checkout, in one process
 *
 * The last three lines printed are `ratio create_vs_bare=…`, `ratio status_vs_bare=…` and
 * `pending_<K>_lateness_p99_ms=…` for the largest K (10k in a full run, 1k with --quick).
 */

import { randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';
import { cpus, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import pg from 'pg';
import { startDevStack } from '../devstack/devstack.ts';
import { freePort } from '../devstack/ports.ts';
import { JOB_NAMES, jobId } from '../src/checkout/checkout.jobs.ts';
import { CLAIM_DUE_POLLS_SQL } from '../src/checkout/checkout.repository.ts';
import { newBindingMessage, newCheckoutId } from '../src/checkout/checkout.service.ts';
import { issueClientSecret } from '../src/checkout/client-secret.ts';
import { createKeyRing } from '../src/infra/crypto.ts';
import { createDatabase } from '../src/infra/database.ts';
import { QUEUE_NAME } from '../src/infra/queue.ts';
import {
  type Child,
  cpuSeconds,
  inLanes,
  machineBusySeconds,
  round,
  rssBytes,
  sleep,
  spawnTsx,
  summarize,
  treeCpuSeconds,
  waitForHttp,
} from './lib.ts';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    /** A tiny run that only checks the script works end to end (a few checkouts, 1 s runs). */
    smoke: { type: 'boolean', default: false },
    k: { type: 'string' },
    'naive-k': { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    json: { type: 'string' },
    'worker-concurrency': { type: 'string' },
    'direct-from': { type: 'string' },
    'no-analyze': { type: 'boolean', default: false },
    /** Only the pending-checkout stages (c)–(f): no autocannon runs, no create profile. */
    'skip-http': { type: 'boolean', default: false },
    /** Run the worker of each (c) stage under --cpu-prof and summarize its window (skews (c)). */
    'profile-worker': { type: 'boolean', default: false },
    /** Profile this process (the sandbox bank, and the bench's sampling) during each (c) window. */
    'profile-bank': { type: 'boolean', default: false },
  },
});
const SMOKE = values.smoke ?? false;
const SKIP_HTTP = values['skip-http'] ?? false;
const QUICK = (values.quick ?? false) || SMOKE;
const list = (s: string | undefined, d: number[]) =>
  s === undefined ? d : s === '' ? [] : s.split(',').map((x) => Number(x.trim()));
const P = {
  /** autocannon seconds per measured run, and per warm-up. */
  duration: SMOKE ? 1 : QUICK ? 2 : 6,
  warmup: 1,
  connections: SKIP_HTTP ? [] : SMOKE ? [1, 16] : [1, 16, 64],
  ks: list(values.k, SMOKE ? [20] : QUICK ? [1_000] : [1_000, 10_000]),
  naiveKs: list(values['naive-k'], SMOKE ? [20] : QUICK ? [] : [1_000, 10_000]),
  /** Seconds of steady state measured per K. */
  window: (k: number) => (SMOKE ? 11 : QUICK ? 9 : k >= 10_000 ? 30 : 20),
  /** Seconds between "all awaiting approval" and the window: the polls bunched by the ramp (the
   * worker was starting the last checkouts while the first were due) spread out first. */
  settle: (k: number) => (QUICK ? 0 : k >= 10_000 ? 15 : 5),
  approvals: (k: number) => Math.min(QUICK ? 20 : 100, Math.floor(k / 10)),
  latenessSample: 300,
  profile: (!QUICK || SMOKE) && !values['no-profile'] && !SKIP_HTTP,
  deadlineMs: QUICK ? 110_000 : 15 * 60_000,
  /** From this K on, checkouts are inserted straight into PostgreSQL and their ciba-start jobs
   * enqueued (what the API does, without its cost); below it they go through POST /v1/checkouts. */
  directFrom: Number(values['direct-from'] ?? (QUICK ? 1_000 : 5_000)),
  /** Longest wait for every checkout to be awaiting approval (the worker's ciba-start rate). */
  rampCapMs: QUICK ? 30_000 : 150_000,
};
const INTERVAL_MS = 5_000;
const LOGIN = 'alice';

const root = resolve(new URL('..', import.meta.url).pathname);
const started = Date.now();
const log = (msg: string) =>
  console.log(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
const cleanups: Array<() => Promise<void> | void> = [];
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  machine: {
    nproc: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
  },
};

type Cannon = { rps: number; p50: number; p99: number; total: number; non2xx: number; errors: number };
type Cores = Record<string, number>;

async function main(): Promise<void> {
  // Durable PostgreSQL (the production defaults), with pg_stat_statements (shipped with the
  // embedded binaries) to count the statements per operation; Redis without persistence.
  const stack = await startDevStack({
    name: 'bench',
    database: 'bench',
    postgresSettings: { shared_preload_libraries: 'pg_stat_statements' },
    queue: 'redis',
    sandbox: { testMode: true, defaultInterval: INTERVAL_MS / 1000 },
    bankEntry: { requestedExpiry: 600 },
    apiKeyName: 'bench',
  });
  cleanups.unshift(() => stack.stop());
  const { dataDir: dir, postgres: db, bank } = stack;
  const redis = stack.redis!;
  log(`${QUICK ? 'quick' : 'full'} run in ${dir}`);
  const postmaster = db.pid;
  const redisClient = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  cleanups.unshift(() => void redisClient.disconnect());
  const control = bank.controlUrl!;
  const env: Record<string, string> = {
    ...stack.env,
    LOG_LEVEL: 'warn',
    HOST: '127.0.0.1',
    RATE_LIMIT_MAX: '10000000',
    RATE_LIMIT_WINDOW_MS: '1000',
    ...(values['worker-concurrency'] ? { WORKER_CONCURRENCY: values['worker-concurrency'] } : {}),
  };
  const sql = new pg.Client({ connectionString: db.url });
  await sql.connect();
  cleanups.unshift(() => sql.end());
  await sql.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
  const resetStatements = () => sql.query('SELECT pg_stat_statements_reset()');
  /** Statements run per unit of work (a request, a poll) since the last reset, most frequent first. */
  const statementsPer = async (units: number, top = 8) => {
    const { rows } = await sql.query(
      "SELECT calls::bigint AS calls, total_exec_time AS ms, regexp_replace(query, '\\s+', ' ', 'g') AS query FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND query NOT LIKE '%pg_stat%' AND query NOT LIKE '%pg_current_snapshot%' AND query NOT LIKE '%bench:%' ORDER BY calls DESC",
    );
    const n = Math.max(1, units);
    const list = (rows as Array<{ calls: string; ms: number; query: string }>).map((r) => ({
      perUnit: round(Number(r.calls) / n, 2),
      msPerUnit: round(Number(r.ms) / n, 3),
      query: r.query.slice(0, 110),
    }));
    return {
      total: round(
        list.reduce((a, r) => a + r.perUnit, 0),
        2,
      ),
      serverMsPerUnit: round(
        list.reduce((a, r) => a + r.msPerUnit, 0),
        3,
      ),
      top: list.slice(0, top),
      slowest: [...list].sort((a, b) => b.msPerUnit - a.msPerUnit).slice(0, 4),
    };
  };
  const key = stack.apiKey!;
  const auth = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const checkoutBody = (i: number) =>
    JSON.stringify({
      amount: 4990,
      currency: 'EUR',
      bankId: 'sandbox',
      loginHint: LOGIN,
      reference: `order-${i}`,
    });

  // Children are tracked so that every exit path stops them.
  const children = new Set<Child>();
  cleanups.unshift(async () => {
    await Promise.all([...children].map((c) => c.stop('SIGKILL', 2_000)));
  });
  const startChild = (file: string, extra: Record<string, string>, nodeArgs: string[] = []) => {
    const child = spawnTsx(join(root, file), { ...env, ...extra }, nodeArgs);
    children.add(child);
    return child;
  };
  const stopChild = async (child: Child) => {
    await child.stop();
    children.delete(child);
  };
  const startApi = async (extra: Record<string, string> = {}, nodeArgs: string[] = []) => {
    const port = await freePort();
    const child = startChild('src/server.ts', { PORT: String(port), ...extra }, nodeArgs);
    const url = `http://127.0.0.1:${port}`;
    await waitForHttp(`${url}/health/live`, child);
    return { child, url };
  };

  // Readings of every component, to say where CPU goes during a measurement.
  const components = (extra: Record<string, number>) => ({
    ...extra,
    postgres: -1,
    redis: redis.process.pid ?? -1,
  });
  const cpuOf = (pids: Record<string, number>): Cores => {
    const out: Cores = {};
    for (const [name, pid] of Object.entries(pids)) {
      out[name] =
        name === 'postgres'
          ? treeCpuSeconds(postmaster)
          : name === 'bench'
            ? (process.cpuUsage().user + process.cpuUsage().system) / 1e6
            : cpuSeconds(pid);
    }
    out.machine = machineBusySeconds();
    return out;
  };
  const coresBetween = (a: Cores, b: Cores, seconds: number): Cores =>
    Object.fromEntries(Object.keys(b).map((k) => [k, round((b[k]! - (a[k] ?? 0)) / seconds, 2)]));
  /** Transactions that wrote (each takes an xid): exact and immediate, unlike pg_stat_database. */
  const nextXid = async () =>
    Number(
      (
        (await sql.query('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x')).rows[0] as {
          x: string;
        }
      ).x,
    );
  const pgStats = async () => {
    const { rows } = await sql.query(
      'SELECT xact_commit::bigint AS commits, tup_inserted::bigint AS ins, tup_updated::bigint AS upd, tup_deleted::bigint AS del, tup_fetched::bigint AS fetched FROM pg_stat_database WHERE datname = current_database()',
    );
    const r = rows[0] as Record<string, string>;
    return {
      ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])),
      writeXacts: await nextXid(),
    };
  };
  const pgStatsDelta = async (before: Record<string, number>) => {
    const writeXacts = await nextXid();
    // Backends report their statistics at most once a second, when idle.
    // (--quick skips the wait: its commits/tuples figures lag; writeXacts and statements are exact.)
    if (!QUICK) await sleep(2_000);
    const after = { ...(await pgStats()), writeXacts };
    return Object.fromEntries(
      Object.keys(after).map((k) => [k, after[k as keyof typeof after]! - (before[k] ?? 0)]),
    );
  };

  async function cannon(o: {
    url: string;
    method: 'GET' | 'POST';
    connections: number;
    duration: number;
    headers?: Record<string, string>;
    body?: string;
    uniqueKeys?: boolean;
  }): Promise<Cannon> {
    let n = 0;
    const prefix = randomUUID();
    const result = await autocannon({
      url: o.url,
      method: o.method,
      connections: o.connections,
      duration: o.duration,
      ...(o.headers ? { headers: o.headers } : {}),
      ...(o.body !== undefined ? { body: o.body } : {}),
      ...(o.uniqueKeys
        ? {
            requests: [
              {
                setupRequest: (req) => ({
                  ...req,
                  headers: { ...req.headers, 'idempotency-key': `${prefix}-${n++}` },
                }),
              },
            ],
          }
        : {}),
    });
    const ok = result['2xx'];
    return {
      rps: round(ok / o.duration),
      p50: result.latency.p50,
      p99: result.latency.p99,
      total: result.requests.total,
      non2xx: result.non2xx,
      errors: result.errors + result.timeouts,
    };
  }

  // ---------------------------------------------------------------- (a), (b)
  log('(a)/(b): API and bare Fastify side by side, no worker running');
  const barePort = await freePort();
  const bare = startChild('bench/bare-server.ts', { PORT: String(barePort) });
  const bareUrl = `http://127.0.0.1:${barePort}`;
  await waitForHttp(`${bareUrl}/bare/x`, bare);
  let api = await startApi({ QUEUE_PREFIX: 'ab' });
  type Statements = Awaited<ReturnType<typeof statementsPer>>;
  const create: Record<
    string,
    { api: Cannon; bare: Cannon; cores: Cores; pgPerRequest: Record<string, number>; statements: Statements }
  > = {};
  const postApi = (connections: number, duration: number) =>
    cannon({
      url: `${api.url}/v1/checkouts`,
      method: 'POST',
      connections,
      duration,
      headers: auth,
      body: checkoutBody(1),
      uniqueKeys: true,
    });
  const postBare = (connections: number, duration: number) =>
    cannon({
      url: `${bareUrl}/bare`,
      method: 'POST',
      connections,
      duration,
      headers: auth,
      body: checkoutBody(1),
    });
  await postBare(16, P.warmup);
  await postApi(16, P.warmup);
  for (const c of P.connections) {
    const bareResult = await postBare(c, P.duration);
    const pids = components({ api: api.child.pid, bench: 0 });
    const before = cpuOf(pids);
    const pgBefore = await pgStats();
    await resetStatements();
    const apiResult = await postApi(c, P.duration);
    const cores = coresBetween(before, cpuOf(pids), P.duration);
    const statements = await statementsPer(apiResult.total);
    const pgDelta = await pgStatsDelta(pgBefore);
    const pgPerRequest = Object.fromEntries(
      Object.entries(pgDelta).map(([k, v]) => [k, round(v / Math.max(1, apiResult.total), 2)]),
    );
    create[c] = { api: apiResult, bare: bareResult, cores, pgPerRequest, statements };
    if (c === 16) log(`statements per create: ${JSON.stringify(statements)}`);
    log(
      `POST c=${c}: api ${apiResult.rps} req/s p50 ${apiResult.p50} ms p99 ${apiResult.p99} ms (non2xx ${apiResult.non2xx}, errors ${apiResult.errors}) | bare ${bareResult.rps} req/s p99 ${bareResult.p99} ms | cores ${JSON.stringify(cores)} | pg per create ${JSON.stringify(pgPerRequest)}`,
    );
  }
  results.create = create;

  const one = await fetch(`${api.url}/v1/checkouts`, {
    method: 'POST',
    headers: { ...auth, 'idempotency-key': randomUUID() },
    body: checkoutBody(0),
  });
  if (one.status !== 202) throw new Error(`create: ${one.status} ${await one.text()}`);
  const { id: oneId, clientSecret: oneSecret } = (await one.json()) as { id: string; clientSecret: string };
  const status: Record<string, { api: Cannon; bare: Cannon; cores: Cores; statements: Statements }> = {};
  const getApi = (connections: number, duration: number) =>
    cannon({
      url: `${api.url}/v1/checkouts/${oneId}`,
      method: 'GET',
      connections,
      duration,
      headers: { authorization: `Bearer ${oneSecret}` },
    });
  const getBare = (connections: number, duration: number) =>
    cannon({
      url: `${bareUrl}/bare/${oneId}`,
      method: 'GET',
      connections,
      duration,
      headers: { authorization: `Bearer ${oneSecret}` },
    });
  await getBare(16, P.warmup);
  await getApi(16, P.warmup);
  for (const c of QUICK && !SKIP_HTTP ? [16] : P.connections) {
    const bareResult = await getBare(c, P.duration);
    const pids = components({ api: api.child.pid, bench: 0 });
    const before = cpuOf(pids);
    await resetStatements();
    const apiResult = await getApi(c, P.duration);
    const cores = coresBetween(before, cpuOf(pids), P.duration);
    const statements = await statementsPer(apiResult.total);
    status[c] = { api: apiResult, bare: bareResult, cores, statements };
    if (c === 16) log(`statements per status read: ${JSON.stringify(statements)}`);
    log(
      `GET c=${c}: api ${apiResult.rps} req/s p50 ${apiResult.p50} ms p99 ${apiResult.p99} ms (non2xx ${apiResult.non2xx}) | bare ${bareResult.rps} req/s p99 ${bareResult.p99} ms | cores ${JSON.stringify(cores)}`,
    );
  }
  results.status = status;
  await stopChild(api.child);

  // (g) The cost of one query: Prisma (as the API and the worker use it) vs node-postgres alone,
  // same SQL, same pool size, 16 in flight, in this process (idle otherwise).
  {
    const viaPrisma = createDatabase(db.url);
    const viaPg = new pg.Pool({ connectionString: db.url, max: 10 });
    const perQuery = async (run: () => Promise<unknown>) => {
      await inLanes(200, 16, async () => void (await run()));
      const seconds = QUICK ? 0.5 : 3;
      const cpu0 = process.cpuUsage();
      const t0 = Date.now();
      let n = 0;
      await Promise.all(
        Array.from({ length: 16 }, async () => {
          while (Date.now() - t0 < seconds * 1000) {
            await run();
            n++;
          }
        }),
      );
      const cpu = process.cpuUsage(cpu0);
      return {
        perSecond: round(n / ((Date.now() - t0) / 1000)),
        cpuUsPerQuery: round((cpu.user + cpu.system) / n),
      };
    };
    const prismaFind = await perQuery(() => viaPrisma.checkout.findUnique({ where: { id: oneId } }));
    const pgFind = await perQuery(() => viaPg.query('SELECT * FROM checkouts WHERE id = $1', [oneId]));
    const prismaUpdate = await perQuery(() =>
      viaPrisma.checkout.updateMany({ where: { id: oneId, status: 'pending' }, data: { stepErrors: 0 } }),
    );
    const pgUpdate = await perQuery(() =>
      viaPg.query('UPDATE checkouts SET step_errors = 0, updated_at = now() WHERE id = $1 AND status = $2', [
        oneId,
        'pending',
      ]),
    );
    await viaPrisma.$disconnect();
    await viaPg.end();
    results.queryCost = { prismaFind, pgFind, prismaUpdate, pgUpdate };
    log(`(g) one query, Prisma vs pg: ${JSON.stringify(results.queryCost)}`);
  }

  if (P.profile) {
    // Where the time of a create and of a status read goes: one more 16-connection run each
    // against a profiled API, summarized from after its warm-up.
    const profileApi = async (
      name: string,
      load: (connections: number, duration: number) => Promise<Cannon>,
    ) => {
      const profDir = join(dir, `prof-${name}`);
      mkdirSync(profDir);
      const spawnedAt = Date.now();
      api = await startApi({ QUEUE_PREFIX: 'ab' }, ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
      await load(16, P.warmup);
      const skipMs = Date.now() - spawnedAt;
      await load(16, P.duration);
      await stopChild(api.child);
      const file = readdirSync(profDir).find((f) => f.endsWith('.cpuprofile'));
      if (!file) {
        log(`no CPU profile was written for ${name}`);
        return undefined;
      }
      return summarizeProfile(join(profDir, file), skipMs);
    };
    results.createProfile = await profileApi('create', postApi);
    log(`profile of POST /v1/checkouts (self time): ${JSON.stringify(results.createProfile)}`);
    results.statusProfile = await profileApi('status', getApi);
    log(`profile of GET /v1/checkouts/{id} (self time): ${JSON.stringify(results.statusProfile)}`);
  }
  await stopChild(bare);

  // ---------------------------------------------------------------- (c), (d), (e)
  const resetState = async () => {
    await sql.query('TRUNCATE checkout_events, checkouts, idempotency_records');
    await redisClient.flushall();
    await fetch(`${control}/reset`, { method: 'POST' }).then((r) => r.arrayBuffer());
  };
  const tableBytes = async () => {
    const { rows } = await sql.query(
      "SELECT pg_total_relation_size('checkouts')::bigint AS c, pg_total_relation_size('checkout_events')::bigint AS e, pg_total_relation_size('idempotency_records')::bigint AS i",
    );
    const r = rows[0] as { c: string; e: string; i: string };
    return { checkouts: Number(r.c), events: Number(r.e), idempotency: Number(r.i) };
  };
  const redisUsed = async () => Number(/used_memory:(\d+)/.exec(await redisClient.info('memory'))?.[1] ?? 0);
  const statusCounts = async () => {
    const { rows } = await sql.query('SELECT status, count(*)::int AS n FROM checkouts GROUP BY status');
    return Object.fromEntries((rows as Array<{ status: string; n: number }>).map((r) => [r.status, r.n]));
  };
  const waitAwaiting = async (n: number, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const counts = await statusCounts();
      if ((counts.awaiting_approval ?? 0) >= n) return counts;
      if (Date.now() > deadline) throw new Error(`not all awaiting approval: ${JSON.stringify(counts)}`);
      await sleep(250);
    }
  };
  /**
   * Lateness at the bank, for a sample of requests: every gap between consecutive token polls that
   * ends inside [from, to], minus the interval; plus, for a request whose next poll is overdue at
   * `to` (counting from its last poll, or from its bc-authorize when it has none), the open gap so
   * far (a lower bound: counted in `censored`), so that a saturated worker shows as late rather
   * than as no data.
   */
  const timelineLateness = async (authReqIds: string[], from: number, to: number) => {
    const lateness: number[] = [];
    let polls = 0;
    let censored = 0;
    await inLanes(authReqIds.length, 8, async (i) => {
      const res = await fetch(`${control}/requests/${authReqIds[i]}/timeline`);
      if (!res.ok) return void (await res.arrayBuffer());
      const t = (await res.json()) as { bcAuthorize: { at: number }; polls: Array<{ at: number }> };
      const at = [t.bcAuthorize.at, ...t.polls.map((p) => p.at)].filter((x) => x <= to);
      polls += at.filter((x, j) => j > 0 && x >= from).length;
      for (let j = 2; j < at.length; j++) {
        if (at[j]! >= from) lateness.push(at[j]! - at[j - 1]! - INTERVAL_MS);
      }
      const open = to - at[at.length - 1]! - INTERVAL_MS;
      if (open > 0) {
        lateness.push(open);
        censored++;
      }
    });
    return {
      lateness: { ...summarize(lateness), censored },
      pollsPerSecondEstimate: (polls / authReqIds.length) * (1000 / (to - from)),
    };
  };
  const sample = <T>(xs: T[], n: number) => {
    const copy = [...xs];
    for (let i = copy.length - 1; i > 0; i--) {
      const j = Math.floor(Math.random() * (i + 1));
      [copy[i], copy[j]] = [copy[j]!, copy[i]!];
    }
    return copy.slice(0, n);
  };

  const keyRing = createKeyRing([Buffer.from(env.TOKEN_ENCRYPTION_KEYS!, 'base64')]);
  const { id: apiKeyId } = (await sql.query('SELECT id FROM api_keys LIMIT 1')).rows[0] as { id: string };
  /** What POST /v1/checkouts writes and enqueues, in batches (no idempotency record). */
  const createDirect = async (n: number, out: Array<{ id: string; clientSecret: string }>) => {
    const connection = new Redis(redis.url, { maxRetriesPerRequest: null });
    const queue = new Queue(QUEUE_NAME, { connection });
    try {
      for (let from = 0; from < n; from += 1_000) {
        const ids = Array.from({ length: Math.min(1_000, n - from) }, () => newCheckoutId());
        const now = new Date();
        await sql.query(
          `INSERT INTO checkouts (id, status, amount, currency, bank_id, login_hint, reference, binding_message, api_key_id, created_at, updated_at, expires_at)
           SELECT id, 'pending', 4990, 'EUR', 'sandbox', $2, 'order-' || id, bm, $3, $4, $4, $5
           FROM unnest($1::text[], $6::text[]) AS t(id, bm)`,
          [ids, LOGIN, apiKeyId, now, new Date(now.getTime() + 660_000), ids.map(() => newBindingMessage())],
        );
        await sql.query(
          `INSERT INTO checkout_events (checkout_id, step, outcome, detail)
           SELECT id, 'created', 'pending', '{"bankId":"sandbox"}'::jsonb FROM unnest($1::text[]) AS t(id)`,
          [ids],
        );
        await queue.addBulk(
          ids.map((id) => ({
            name: JOB_NAMES.cibaStart,
            data: { checkoutId: id },
            opts: {
              jobId: jobId(JOB_NAMES.cibaStart, id),
              removeOnComplete: true,
              removeOnFail: { age: 7 * 24 * 3600 },
              attempts: 20,
              backoff: { type: 'exponential', delay: 1_000 },
            },
          })),
        );
        for (const id of ids) out.push({ id, clientSecret: issueClientSecret(keyRing, id) });
      }
    } finally {
      await queue.close();
      connection.disconnect();
    }
  };

  const pending: Record<string, unknown> = {};
  for (const K of P.ks) {
    log(`(c) K=${K}: starting API and worker`);
    await resetState();
    api = await startApi();
    const workerProfDir = join(dir, `worker-prof-${K}`);
    if (values['profile-worker']) mkdirSync(workerProfDir);
    const workerSpawnedAt = Date.now();
    const worker = startChild(
      'src/worker.ts',
      {},
      values['profile-worker'] ? ['--cpu-prof', `--cpu-prof-dir=${workerProfDir}`] : [],
    );
    // Warm-up: a few checkouts through the whole start path, so the baseline includes the bank
    // client's discovery, keys and connections.
    const created: Array<{ id: string; clientSecret: string }> = [];
    let failedCreates = 0;
    const createOne = async (i: number) => {
      const res = await fetch(`${api.url}/v1/checkouts`, {
        method: 'POST',
        headers: { ...auth, 'idempotency-key': randomUUID() },
        body: checkoutBody(i),
      });
      if (res.status !== 202) {
        failedCreates++;
        await res.arrayBuffer();
        return;
      }
      created.push((await res.json()) as { id: string; clientSecret: string });
    };
    await inLanes(5, 5, createOne);
    await waitAwaiting(5, 30_000);
    await sleep(500);
    const warm = new Set(created.map((c) => c.id));
    const base = { worker: rssBytes(worker.pid), redis: await redisUsed(), pg: await tableBytes() };

    const t0 = Date.now();
    const direct = K >= P.directFrom;
    if (direct) await createDirect(K, created);
    else await inLanes(K, 32, createOne);
    const createSeconds = (Date.now() - t0) / 1000;
    let counts: Record<string, number>;
    try {
      counts = await waitAwaiting(K + 5 - failedCreates, P.rampCapMs);
    } catch {
      // The worker could not start them all in time: measure what is pending.
      counts = await statusCounts();
      log(`K=${K}: not all awaiting approval after ${P.rampCapMs / 1000} s: ${JSON.stringify(counts)}`);
    }
    const allAwaitingSeconds = (Date.now() - t0) / 1000;
    log(
      `K=${K}: created in ${round(createSeconds, 1)} s (${round(K / createSeconds)}/s ${direct ? 'inserted directly + enqueued' : 'through the API'}, ${failedCreates} failed), all awaiting approval after ${round(allAwaitingSeconds, 1)} s ${JSON.stringify(counts)}`,
    );
    const after = { worker: rssBytes(worker.pid), redis: await redisUsed(), pg: await tableBytes() };
    // The token poller's claim, planned on the statistics the table has now (a table that just
    // filled up may not have been analyzed yet), then after ANALYZE (what autovacuum does within
    // about a minute). --no-analyze measures without it.
    const claimPlan = async () =>
      (
        (await sql.query(`EXPLAIN /* bench: */ ${CLAIM_DUE_POLLS_SQL}`, [15, 100, []])).rows as Array<{
          'QUERY PLAN': string;
        }>
      )
        .map((r) => r['QUERY PLAN'].trim())
        .join(' / ');
    const plans: Record<string, string> = { beforeAnalyze: await claimPlan() };
    if (!values['no-analyze']) {
      await sql.query('ANALYZE checkouts, checkout_events');
      plans.afterAnalyze = await claimPlan();
    }
    log(`K=${K}: claim UPDATE plan ${JSON.stringify(plans)}`);
    const pgDeltaBytes =
      after.pg.checkouts +
      after.pg.events +
      after.pg.idempotency -
      (base.pg.checkouts + base.pg.events + base.pg.idempotency);
    const memory = {
      workerRssPerCheckout: round((after.worker - base.worker) / K),
      redisPerCheckout: round((after.redis - base.redis) / K),
      postgresPerCheckout: round(pgDeltaBytes / K),
      postgresTables: { before: base.pg, after: after.pg },
      workerRssMiB: round(after.worker / 2 ** 20, 1),
      redisUsedMiB: round(after.redis / 2 ** 20, 1),
    };
    log(`(e) K=${K} memory per pending checkout: ${JSON.stringify(memory)}`);

    // Steady state: K checkouts polling, nothing else.
    if (P.settle(K) > 0) {
      log(`K=${K}: ${P.settle(K)} s to settle before the window`);
      await sleep(P.settle(K) * 1000);
    }
    const ids = (await sql.query("SELECT id, auth_req_id FROM checkouts WHERE status = 'awaiting_approval'"))
      .rows as Array<{ id: string; auth_req_id: string }>;
    const authReqOf = new Map(ids.map((r) => [r.id, r.auth_req_id]));
    const secretOf = new Map(created.map((c) => [c.id, c.clientSecret]));
    const candidates = ids.map((r) => r.id).filter((id) => !warm.has(id));
    const A = P.approvals(K);
    const approved = sample(candidates, A);
    const approvedSet = new Set(approved);
    const W = P.window(K);
    const pids = components({ worker: worker.pid, api: api.child.pid, bench: 0 });
    const bankProfiler = values['profile-bank'] ? await startProfiler() : undefined;
    const windowStart = Date.now();
    const cpu0 = cpuOf(pids);
    const pg0 = await pgStats();
    await resetStatements();
    let rssMax = after.worker;
    const approvalLatencies: number[] = [];
    const approvalOutcomes: Record<string, number> = {};
    // (d) runs after the window, while the other K - A checkouts keep polling, so that its status
    // reads do not count in the figures of (c).
    const approve = () =>
      Promise.all(
        approved.map(async (id, i) => {
          await sleep((i * (QUICK ? 1_000 : 5_000)) / A);
          const t = Date.now();
          const res = await fetch(`${bank.appUrl}app/api/requests/${authReqOf.get(id)}/approve`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ login: LOGIN }),
          });
          await res.arrayBuffer();
          if (!res.ok) {
            approvalOutcomes[`approve_${res.status}`] = (approvalOutcomes[`approve_${res.status}`] ?? 0) + 1;
            return;
          }
          const deadline = t + (K >= 10_000 ? 60_000 : 20_000);
          while (Date.now() < deadline) {
            const r = await fetch(`${api.url}/v1/checkouts/${id}`, {
              headers: { authorization: `Bearer ${secretOf.get(id)}` },
            });
            const view = r.ok ? ((await r.json()) as { status: string; updatedAt: string }) : undefined;
            const s = view ? view.status : `http_${r.status}`;
            if (!['awaiting_approval', 'authorized', 'pending'].includes(s)) {
              approvalOutcomes[s] = (approvalOutcomes[s] ?? 0) + 1;
              // When it became succeeded, by the checkout's own clock (same machine), so that the
              // watchers can look only now and then instead of loading the API they measure.
              if (s === 'succeeded' && view) approvalLatencies.push(Date.parse(view.updatedAt) - t);
              return;
            }
            await sleep(500);
          }
          approvalOutcomes.timeout = (approvalOutcomes.timeout ?? 0) + 1;
        }),
      );
    while (Date.now() < windowStart + W * 1000) {
      await sleep(1_000);
      rssMax = Math.max(rssMax, rssBytes(worker.pid));
      if (worker.process.exitCode !== null) throw new Error(`the worker exited:\n${worker.tail()}`);
    }
    const windowEnd = Date.now();
    const cores = coresBetween(cpu0, cpuOf(pids), (windowEnd - windowStart) / 1000);
    const bankProfile = bankProfiler ? summarizeProfile(await bankProfiler.stop(), 0) : undefined;
    if (bankProfile) log(`bank profile K=${K} (self time, window): ${JSON.stringify(bankProfile)}`);
    const pgDelta = await pgStatsDelta(pg0);
    const redisAfter = await redisUsed();
    const { rows: pollRows } = await sql.query(
      "SELECT outcome, count(*)::int AS n FROM checkout_events WHERE step = 'token_poll' AND at >= $1 AND at < $2 GROUP BY outcome",
      [new Date(windowStart), new Date(windowEnd)],
    );
    const pollStatements = await statementsPer(
      (
        (
          await sql.query(
            "SELECT /* bench: */ count(*)::int AS n FROM checkout_events WHERE step = 'token_poll' AND at >= $1",
            [new Date(windowStart)],
          )
        ).rows[0] as { n: number }
      ).n,
      10,
    );
    const pollOutcomes = Object.fromEntries(
      (pollRows as Array<{ outcome: string; n: number }>).map((r) => [r.outcome, r.n]),
    );
    const polls = Object.values(pollOutcomes).reduce((a, b) => a + b, 0);
    const seconds = (windowEnd - windowStart) / 1000;
    const sampled = sample(
      candidates.filter((id) => !approvedSet.has(id)),
      P.latenessSample,
    ).map((id) => authReqOf.get(id)!);
    const [, late] = await Promise.all([
      Promise.race([approve(), sleep(K >= 10_000 ? 70_000 : 30_000)]),
      timelineLateness(sampled, windowStart, windowEnd),
    ]);
    const approval = { n: A, outcomes: approvalOutcomes, latencyMs: summarize(approvalLatencies) };
    const stage = {
      K,
      pendingInWindow: counts.awaiting_approval ?? 0,
      claimPlans: plans,
      ...(bankProfile ? { bankProfile } : {}),
      creation: direct ? 'direct insert + enqueue' : 'POST /v1/checkouts',
      windowSeconds: round(seconds, 1),
      createPerSecond: round(K / createSeconds),
      allAwaitingSeconds: round(allAwaitingSeconds, 1),
      pollsPerSecond: round(polls / seconds),
      expectedPollsPerSecond: round(K / (INTERVAL_MS / 1000)),
      pollsPerSecondFromBankSample: round(late.pollsPerSecondEstimate * K),
      pollOutcomes,
      cores,
      workerRssMaxMiB: round(rssMax / 2 ** 20, 1),
      redisUsedMiB: round(redisAfter / 2 ** 20, 1),
      statementsPerPoll: pollStatements,
      pgPerPoll: Object.fromEntries(
        Object.entries(pgDelta).map(([k, v]) => [k, round(v / Math.max(1, polls), 2)]),
      ),
      latenessMs: late.lateness,
      approval,
      memory,
    };
    pending[K] = stage;
    log(
      `(c) K=${K}: ${stage.pollsPerSecond} polls/s (expected ${stage.expectedPollsPerSecond}), lateness p50 ${late.lateness.p50} ms p99 ${late.lateness.p99} ms max ${late.lateness.max} ms (n=${late.lateness.n}), cores ${JSON.stringify(cores)}, pg per poll ${JSON.stringify(stage.pgPerPoll)}, outcomes ${JSON.stringify(pollOutcomes)}`,
    );
    log(`(c) K=${K}: statements per poll: ${JSON.stringify(pollStatements)}`);
    log(
      `(d) K=${K}: approval → succeeded p50 ${approval.latencyMs.p50} ms p99 ${approval.latencyMs.p99} ms (n=${approval.latencyMs.n}) ${JSON.stringify(approvalOutcomes)}`,
    );
    await stopChild(worker);
    if (values['profile-worker']) {
      const file = readdirSync(workerProfDir).find((f) => f.endsWith('.cpuprofile'));
      if (file) {
        const summary = summarizeProfile(join(workerProfDir, file), windowStart - workerSpawnedAt);
        (stage as Record<string, unknown>).workerProfile = summary;
        log(`worker profile K=${K} (self time, from the window on): ${JSON.stringify(summary)}`);
      }
    }
    await stopChild(api.child);
  }
  results.pending = pending;

  // ---------------------------------------------------------------- (f)
  const naive: Record<string, unknown> = {};
  for (const K of P.naiveKs) {
    log(`(f) K=${K}: naive openid-client loops`);
    await resetState();
    const idsFile = join(dir, `naive-${K}.json`);
    const child = startChild('bench/naive-child.ts', {
      NAIVE_K: String(K),
      NAIVE_IDS_FILE: idsFile,
      NAIVE_LOGIN: LOGIN,
    });
    const events: Array<Record<string, number | string>> = [];
    child.onLine((line) => {
      if (line.startsWith('{"event"')) events.push(JSON.parse(line) as Record<string, number | string>);
    });
    const waitEvent = async (name: string, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const e = events.find((x) => x.event === name);
        if (e) return e;
        if (child.process.exitCode !== null) throw new Error(`naive child exited:\n${child.tail()}`);
        if (Date.now() > deadline) throw new Error(`naive child: no ${name} in time:\n${child.tail()}`);
        await sleep(100);
      }
    };
    const setup = await waitEvent('setup', 30_000);
    const start = await waitEvent('started', 60_000 + K * 20);
    const W = P.window(K);
    const pids = { naive: child.pid, bench: 0 };
    const windowStart = Date.now();
    const cpu0 = cpuOf(pids);
    let rssMax = rssBytes(child.pid);
    while (Date.now() < windowStart + W * 1000) {
      await sleep(1_000);
      rssMax = Math.max(rssMax, rssBytes(child.pid));
    }
    const windowEnd = Date.now();
    const cores = coresBetween(cpu0, cpuOf(pids), (windowEnd - windowStart) / 1000);
    await stopChild(child);
    const authReqIds = JSON.parse(readFileSync(idsFile, 'utf8')) as string[];
    const late = await timelineLateness(sample(authReqIds, P.latenessSample), windowStart, windowEnd);
    const stage = {
      K,
      windowSeconds: round((windowEnd - windowStart) / 1000, 1),
      startSeconds: round(Number(start.ms) / 1000, 1),
      pollsPerSecondFromBankSample: round(late.pollsPerSecondEstimate * K),
      expectedPollsPerSecond: round(K / (INTERVAL_MS / 1000)),
      cores,
      rssMiB: round(rssMax / 2 ** 20, 1),
      rssPerLoop: round((Number(start.rss) - Number(setup.rss)) / K),
      latenessMs: late.lateness,
    };
    naive[K] = stage;
    log(
      `(f) K=${K} naive: ~${stage.pollsPerSecondFromBankSample} polls/s, lateness p50 ${late.lateness.p50} ms p99 ${late.lateness.p99} ms (n=${late.lateness.n}), cores ${JSON.stringify(cores)}, RSS ${stage.rssMiB} MiB (${stage.rssPerLoop} B per loop)`,
    );
  }
  results.naive = naive;

  // ---------------------------------------------------------------- summary
  if (values.json) writeFileSync(values.json, `${JSON.stringify(results, null, 2)}\n`);
  const at16 = create[16];
  const st16 = status[16];
  const createRatio = at16 ? at16.api.rps / at16.bare.rps : Number.NaN;
  const statusRatio = st16 ? st16.api.rps / st16.bare.rps : Number.NaN;
  console.log('');
  console.log('summary');
  for (const [c, r] of Object.entries(create)) {
    console.log(
      `  POST c=${c.padEnd(3)} api ${String(r.api.rps).padStart(6)} req/s p50 ${r.api.p50} ms p99 ${r.api.p99} ms | bare ${String(r.bare.rps).padStart(6)} req/s p99 ${r.bare.p99} ms | ratio ${round(r.api.rps / r.bare.rps, 3)}`,
    );
  }
  for (const [c, r] of Object.entries(status)) {
    console.log(
      `  GET  c=${c.padEnd(3)} api ${String(r.api.rps).padStart(6)} req/s p50 ${r.api.p50} ms p99 ${r.api.p99} ms | bare ${String(r.bare.rps).padStart(6)} req/s p99 ${r.bare.p99} ms | ratio ${round(r.api.rps / r.bare.rps, 3)}`,
    );
  }
  const label = (k: number) => (k % 1000 === 0 ? `${k / 1000}k` : String(k));
  for (const [k, s] of Object.entries(pending) as Array<[string, Record<string, never>]>) {
    const st = s as unknown as {
      pollsPerSecond: number;
      latenessMs: { p50: number; p99: number };
      cores: Cores;
      approval: { latencyMs: { p50: number; p99: number } };
      memory: { workerRssPerCheckout: number; redisPerCheckout: number; postgresPerCheckout: number };
      pgPerPoll: Record<string, number>;
    };
    console.log(
      `  pending K=${k}: ${st.pollsPerSecond} polls/s, lateness p50 ${st.latenessMs.p50} ms p99 ${st.latenessMs.p99} ms, worker ${st.cores.worker} cores, postgres ${st.cores.postgres}, redis ${st.cores.redis}, bank+bench ${st.cores.bench}; pg per poll ${JSON.stringify(st.pgPerPoll)}; approval→succeeded p50 ${st.approval.latencyMs.p50} ms p99 ${st.approval.latencyMs.p99} ms; per checkout worker ${st.memory.workerRssPerCheckout} B, redis ${st.memory.redisPerCheckout} B, postgres ${st.memory.postgresPerCheckout} B`,
    );
  }
  for (const [k, s] of Object.entries(naive)) {
    const st = s as {
      pollsPerSecondFromBankSample: number;
      latenessMs: { p50: number; p99: number };
      cores: Cores;
      rssPerLoop: number;
      rssMiB: number;
    };
    console.log(
      `  naive   K=${k}: ~${st.pollsPerSecondFromBankSample} polls/s, lateness p50 ${st.latenessMs.p50} ms p99 ${st.latenessMs.p99} ms, ${st.cores.naive} cores, RSS ${st.rssMiB} MiB (${st.rssPerLoop} B per loop)`,
    );
  }
  const largest = Math.max(...P.ks);
  const lastStage = pending[largest] as { latenessMs: { p99: number } } | undefined;
  for (const k of P.ks.filter((x) => x !== largest)) {
    console.log(
      `pending_${label(k)}_lateness_p99_ms=${round((pending[k] as { latenessMs: { p99: number } }).latenessMs.p99)}`,
    );
  }
  console.log(`ratio create_vs_bare=${round(createRatio, 2)}`);
  console.log(`ratio status_vs_bare=${round(statusRatio, 2)}`);
  if (lastStage) console.log(`pending_${label(largest)}_lateness_p99_ms=${round(lastStage.latenessMs.p99)}`);
}

/** The V8 profiler of this process (node:inspector), for a window of a run. */
async function startProfiler(): Promise<{ stop(): Promise<CpuProfile> }> {
  const session = new Session();
  session.connect();
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params, (err, result) => (err ? reject(err) : resolve(result))),
    );
  await post('Profiler.enable');
  await post('Profiler.start');
  return {
    async stop() {
      const { profile } = (await post('Profiler.stop')) as { profile: CpuProfile };
      session.disconnect();
      return profile;
    },
  };
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

/**
 * Self time of a V8 .cpuprofile (a file, or a profile taken in this process), by package / source
 * file, and the top functions, in % of the busy (non-idle) samples taken after the first `skipMs`
 * (start-up and warm-up).
 */
function summarizeProfile(file: string | CpuProfile, skipMs: number) {
  const profile: CpuProfile = typeof file === 'string' ? JSON.parse(readFileSync(file, 'utf8')) : file;
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<number, number>();
  let t = 0;
  for (const [i, id] of profile.samples.entries()) {
    const dt = profile.timeDeltas[i] ?? 0;
    t += dt;
    if (t < skipMs * 1000 || byId.get(id)?.functionName === '(idle)') continue;
    self.set(id, (self.get(id) ?? 0) + dt);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const where = (url: string, fn: string) => {
    if (!url)
      return fn === '(garbage collector)' ? 'gc' : fn === '(idle)' || fn === '(program)' ? fn : 'native';
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
    if (m) return m[1]!;
    if (url.startsWith('node:')) return 'node:internals';
    const src = /\/(src|sandbox|bench)\/(.+)$/.exec(url);
    return src ? `${src[1]}/${src[2]}` : url;
  };
  const byPlace = new Map<string, number>();
  const byFn = new Map<string, number>();
  for (const [id, t] of self) {
    const cf = byId.get(id);
    if (!cf) continue;
    const place = where(cf.url, cf.functionName);
    byPlace.set(place, (byPlace.get(place) ?? 0) + t);
    const fn = `${cf.functionName || '(anonymous)'} ${place}:${cf.lineNumber + 1}`;
    byFn.set(fn, (byFn.get(fn) ?? 0) + t);
  }
  const top = (m: Map<string, number>, n: number) =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `${k} ${round((100 * v) / total, 1)}%`);
  return { byPlace: top(byPlace, 15), byFunction: top(byFn, 15) };
}

const hardStop = setTimeout(() => {
  console.error(`bench: over the ${P.deadlineMs / 1000} s deadline, stopping`);
  void shutdown(1);
}, P.deadlineMs);
hardStop.unref();
let shuttingDown = false;
async function shutdown(code: number): Promise<never> {
  if (!shuttingDown) {
    shuttingDown = true;
    for (const cleanup of cleanups) await Promise.resolve(cleanup()).catch(() => {});
  }
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(130));
process.on('SIGTERM', () => void shutdown(143));

let code = 1;
try {
  await main();
  code = 0;
} catch (error) {
  console.error(`bench: ${(error as Error).stack ?? error}`);
}
await shutdown(code);
