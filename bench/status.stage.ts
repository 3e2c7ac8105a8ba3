/**
 * (b) GET /v1/checkouts/{id} with the clientSecret (what a storefront polls) against a bare GET
 * route: what a status read costs beyond any Fastify request, with the CPU of each component and
 * the statements per read.
 */
import { randomUUID } from 'node:crypto';
import { type Bench, log } from './bench.context.ts';
import { plan, QUICK, SKIP_HTTP } from './bench.options.ts';
import { type Cannon, cannon, type Load } from './cannon.ts';
import { type Created, checkoutBody } from './checkouts.ts';
import type { HttpTargets } from './processes.ts';
import {
  type Cores,
  components,
  coresBetween,
  cpuOf,
  resetStatements,
  type Statements,
  statementsPer,
} from './readings.ts';

export interface StatusRun {
  api: Cannon;
  bare: Cannon;
  cores: Cores;
  statements: Statements;
}

/** The checkout whose status is read (and, in (g), queried). */
export async function createReadTarget(bench: Bench, targets: HttpTargets): Promise<Created> {
  const one = await fetch(`${targets.api.url}/v1/checkouts`, {
    method: 'POST',
    headers: { ...bench.auth, 'idempotency-key': randomUUID() },
    body: checkoutBody(0),
  });
  if (one.status !== 202) throw new Error(`create: ${one.status} ${await one.text()}`);
  return (await one.json()) as Created;
}

/** Reads of `one` through the current API, and the bare equivalent. */
export const statusLoads = (targets: HttpTargets, one: Created): { api: Load; bare: Load } => ({
  api: (connections, duration) =>
    cannon({
      url: `${targets.api.url}/v1/checkouts/${one.id}`,
      method: 'GET',
      connections,
      duration,
      headers: { authorization: `Bearer ${one.clientSecret}` },
    }),
  bare: (connections, duration) =>
    cannon({
      url: `${targets.bareUrl}/bare/${one.id}`,
      method: 'GET',
      connections,
      duration,
      headers: { authorization: `Bearer ${one.clientSecret}` },
    }),
});

export async function measureStatus(
  bench: Bench,
  targets: HttpTargets,
  one: Created,
): Promise<Record<string, StatusRun>> {
  const load = statusLoads(targets, one);
  const status: Record<string, StatusRun> = {};
  await load.bare(16, plan.warmup);
  await load.api(16, plan.warmup);
  for (const c of QUICK && !SKIP_HTTP ? [16] : plan.connections) {
    const bareResult = await load.bare(c, plan.duration);
    const pids = components(bench, { api: targets.api.child.pid, bench: 0 });
    const before = cpuOf(bench, pids);
    await resetStatements(bench);
    const apiResult = await load.api(c, plan.duration);
    const cores = coresBetween(before, cpuOf(bench, pids), plan.duration);
    const statements = await statementsPer(bench, apiResult.total);
    status[c] = { api: apiResult, bare: bareResult, cores, statements };
    if (c === 16) log(`statements per status read: ${JSON.stringify(statements)}`);
    log(
      `GET c=${c}: api ${apiResult.rps} req/s p50 ${apiResult.p50} ms p99 ${apiResult.p99} ms (non2xx ${apiResult.non2xx}) | bare ${bareResult.rps} req/s p99 ${bareResult.p99} ms | cores ${JSON.stringify(cores)}`,
    );
  }
  return status;
}
