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
 *   (g) the cost of one query, Prisma vs node-postgres
 *   (i) CIBA ping mode against poll mode at K pending (`--ping-k`, default 1000): approval →
 *       succeeded, token requests per approval, worker CPU per pending checkout
 *   (h) live status: N open streams, then N held reads, on one API process: memory per
 *       connection and the fan-out of one change to all of them (`-- --live N`, `-- --live-only`)
 *   (j) webhooks: commit → first delivery attempt at ~100 status changes/s, deliveries per second
 *       of one worker next to a bare undici POST loop, and a 50,000-event backlog drained after a
 *       receiver outage while live changes go on (`-- --webhooks-only`, `-- --webhook-backlog N`)
 *
 * Each stage is a file of its own (`<name>.stage.ts`); this one only runs them in order, keeps
 * what they found and stops everything on every way out. The last three lines printed are
 * `ratio create_vs_bare=…`, `ratio status_vs_bare=…` and `pending_<K>_lateness_p99_ms=…` for the
 * largest K (10k in a full run, 1k with --quick).
 */
import { writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { type Cleanup, log, startBench } from './bench.context.ts';
import { flags, LIVE_ONLY, plan, QUICK, SKIP_HTTP, WEBHOOKS_ONLY } from './bench.options.ts';
import { createLoads, measureCreate } from './create.stage.ts';
import { round } from './lib.ts';
import { liveLines, measureLive } from './live.stage.ts';
import { measureNaive } from './naive.stage.ts';
import { measurePending } from './pending.stage.ts';
import { measurePingVsPoll } from './ping.stage.ts';
import { startHttpTargets } from './processes.ts';
import { profileApi } from './profile.ts';
import { measureQueryCost } from './query-cost.stage.ts';
import { createReadTarget, measureStatus, statusLoads } from './status.stage.ts';
import { printSummary, type Results } from './summary.ts';
import { measureWebhooks, webhookLines } from './webhooks.stage.ts';

const cleanups: Cleanup[] = [];
const results: Results = {
  date: new Date().toISOString(),
  command: `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
  machine: {
    nproc: cpus().length,
    cpu: cpus()[0]?.model,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
  },
};

async function main(): Promise<void> {
  const bench = await startBench(QUICK ? 'quick' : 'full', cleanups);
  if (LIVE_ONLY) {
    results.live = await measureLive(bench, plan.live);
    console.log('');
    for (const line of liveLines(results.live)) console.log(line);
    return;
  }
  if (WEBHOOKS_ONLY) {
    results.webhooks = await measureWebhooks(bench);
    if (flags.json) writeFileSync(flags.json, `${JSON.stringify(results, null, 2)}\n`);
    console.log('');
    for (const line of webhookLines(results.webhooks)) console.log(line);
    return;
  }

  log('(a)/(b): API and bare Fastify side by side, no worker running');
  const targets = await startHttpTargets(bench.processes);
  results.create = await measureCreate(bench, targets);
  const one = await createReadTarget(bench, targets);
  results.status = await measureStatus(bench, targets, one);
  await bench.processes.stopChild(targets.api.child);
  results.queryCost = await measureQueryCost(bench, one.id);
  if (plan.profile) {
    results.createProfile = await profileApi(bench, targets, 'create', createLoads(bench, targets).api);
    log(`profile of POST /v1/checkouts (self time): ${JSON.stringify(results.createProfile)}`);
    results.statusProfile = await profileApi(bench, targets, 'status', statusLoads(targets, one).api);
    log(`profile of GET /v1/checkouts/{id} (self time): ${JSON.stringify(results.statusProfile)}`);
  }
  await bench.processes.stopChild(targets.bare);
  if (!SKIP_HTTP) results.live = await measureLive(bench, plan.live);

  results.pending = await measurePending(bench);
  results.naive = await measureNaive(bench);
  if (plan.pingKs.length > 0) results.deliveryModes = await measurePingVsPoll(bench, plan.pingKs);
  results.webhooks = await measureWebhooks(bench);
  printSummary(results, plan.ks, flags.json);
}

const hardStop = setTimeout(() => {
  console.error(`bench: over the ${plan.deadlineMs / 1000} s deadline, stopping`);
  void shutdown(1);
}, plan.deadlineMs);
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
