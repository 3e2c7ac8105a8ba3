/**
 * (a) POST /v1/checkouts against a bare Fastify POST route at 1, 16 and 64 connections, no worker
 * running: what creating a checkout costs beyond what any Fastify app pays for a request, with
 * the CPU of each component and PostgreSQL's work per create beside it.
 */
import { type Bench, log } from './bench.context.ts';
import { plan } from './bench.options.ts';
import { type Cannon, cannon, type Load } from './cannon.ts';
import { checkoutBody } from './checkouts.ts';
import { round } from './lib.ts';
import type { HttpTargets } from './processes.ts';
import {
  type Cores,
  components,
  coresBetween,
  cpuOf,
  pgStats,
  pgStatsDelta,
  resetStatements,
  type Statements,
  statementsPer,
} from './readings.ts';

export interface CreateRun {
  api: Cannon;
  bare: Cannon;
  cores: Cores;
  pgPerRequest: Record<string, number>;
  statements: Statements;
}

/** Creates through the current API (each request a new checkout), and the bare equivalent. */
export const createLoads = (bench: Bench, targets: HttpTargets): { api: Load; bare: Load } => ({
  api: (connections, duration) =>
    cannon({
      url: `${targets.api.url}/v1/checkouts`,
      method: 'POST',
      connections,
      duration,
      headers: bench.auth,
      body: checkoutBody(1),
      uniqueKeys: true,
    }),
  bare: (connections, duration) =>
    cannon({
      url: `${targets.bareUrl}/bare`,
      method: 'POST',
      connections,
      duration,
      headers: bench.auth,
      body: checkoutBody(1),
    }),
});

export async function measureCreate(bench: Bench, targets: HttpTargets): Promise<Record<string, CreateRun>> {
  const load = createLoads(bench, targets);
  const create: Record<string, CreateRun> = {};
  await load.bare(16, plan.warmup);
  await load.api(16, plan.warmup);
  for (const c of plan.connections) {
    const bareResult = await load.bare(c, plan.duration);
    const pids = components(bench, { api: targets.api.child.pid, bench: 0 });
    const before = cpuOf(bench, pids);
    const pgBefore = await pgStats(bench);
    await resetStatements(bench);
    const apiResult = await load.api(c, plan.duration);
    const cores = coresBetween(before, cpuOf(bench, pids), plan.duration);
    const statements = await statementsPer(bench, apiResult.total);
    const pgDelta = await pgStatsDelta(bench, pgBefore);
    const pgPerRequest = Object.fromEntries(
      Object.entries(pgDelta).map(([k, v]) => [k, round(v / Math.max(1, apiResult.total), 2)]),
    );
    create[c] = { api: apiResult, bare: bareResult, cores, pgPerRequest, statements };
    if (c === 16) log(`statements per create: ${JSON.stringify(statements)}`);
    log(
      `POST c=${c}: api ${apiResult.rps} req/s p50 ${apiResult.p50} ms p99 ${apiResult.p99} ms (non2xx ${apiResult.non2xx}, errors ${apiResult.errors}) | bare ${bareResult.rps} req/s p99 ${bareResult.p99} ms | cores ${JSON.stringify(cores)} | pg per create ${JSON.stringify(pgPerRequest)}`,
    );
  }
  return create;
}
