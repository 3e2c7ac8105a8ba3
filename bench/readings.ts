/**
 * Readings taken around every measured window, so that each figure can say where the work went:
 * CPU per component (the API, the worker, PostgreSQL with its backends, Redis, this process, the
 * whole machine), PostgreSQL's write transactions and tuples, the statements run per unit of
 * work (pg_stat_statements), Redis memory and table sizes.
 */
import type { Bench } from './bench.context.ts';
import { QUICK } from './bench.options.ts';
import { cpuSeconds, machineBusySeconds, round, sleep, treeCpuSeconds } from './lib.ts';

export type Cores = Record<string, number>;

/** The processes whose CPU a window reads: `extra` (name → pid; `bench` is this process). */
export const components = (bench: Bench, extra: Record<string, number>) => ({
  ...extra,
  postgres: -1,
  redis: bench.pids.redis,
});

export function cpuOf(bench: Bench, pids: Record<string, number>): Cores {
  const out: Cores = {};
  for (const [name, pid] of Object.entries(pids)) {
    out[name] =
      name === 'postgres'
        ? treeCpuSeconds(bench.pids.postmaster)
        : name === 'bench'
          ? (process.cpuUsage().user + process.cpuUsage().system) / 1e6
          : cpuSeconds(pid);
  }
  out.machine = machineBusySeconds();
  return out;
}

export const coresBetween = (a: Cores, b: Cores, seconds: number): Cores =>
  Object.fromEntries(Object.keys(b).map((k) => [k, round((b[k]! - (a[k] ?? 0)) / seconds, 2)]));

/** Transactions that wrote (each takes an xid): exact and immediate, unlike pg_stat_database. */
const nextXid = async (bench: Bench) =>
  Number(
    (
      (await bench.sql.query('SELECT pg_snapshot_xmax(pg_current_snapshot())::text AS x')).rows[0] as {
        x: string;
      }
    ).x,
  );

export async function pgStats(bench: Bench): Promise<Record<string, number>> {
  const { rows } = await bench.sql.query(
    'SELECT xact_commit::bigint AS commits, tup_inserted::bigint AS ins, tup_updated::bigint AS upd, tup_deleted::bigint AS del, tup_fetched::bigint AS fetched FROM pg_stat_database WHERE datname = current_database()',
  );
  const r = rows[0] as Record<string, string>;
  return {
    ...Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])),
    writeXacts: await nextXid(bench),
  };
}

export async function pgStatsDelta(
  bench: Bench,
  before: Record<string, number>,
): Promise<Record<string, number>> {
  const writeXacts = await nextXid(bench);
  // Backends report their statistics at most once a second, when idle.
  // (--quick skips the wait: its commits/tuples figures lag; writeXacts and statements are exact.)
  if (!QUICK) await sleep(2_000);
  const after: Record<string, number> = { ...(await pgStats(bench)), writeXacts };
  return Object.fromEntries(Object.keys(after).map((k) => [k, after[k]! - (before[k] ?? 0)]));
}

export const resetStatements = (bench: Bench) => bench.sql.query('SELECT pg_stat_statements_reset()');

/** Statements run per unit of work (a request, a poll) since the last reset, most frequent first. */
export async function statementsPer(bench: Bench, units: number, top = 8) {
  const { rows } = await bench.sql.query(
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
}

export type Statements = Awaited<ReturnType<typeof statementsPer>>;

export const redisUsed = async (bench: Bench) =>
  Number(/used_memory:(\d+)/.exec(await bench.redisClient.info('memory'))?.[1] ?? 0);

export interface TableBytes {
  checkouts: number;
  events: number;
  idempotency: number;
}

export async function tableBytes(bench: Bench): Promise<TableBytes> {
  const { rows } = await bench.sql.query(
    "SELECT pg_total_relation_size('checkouts')::bigint AS c, pg_total_relation_size('checkout_events')::bigint AS e, pg_total_relation_size('idempotency_records')::bigint AS i",
  );
  const r = rows[0] as { c: string; e: string; i: string };
  return { checkouts: Number(r.c), events: Number(r.e), idempotency: Number(r.i) };
}
