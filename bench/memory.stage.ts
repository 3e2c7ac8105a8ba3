/**
 * (e) Memory per pending checkout: the worker's RSS, Redis's used_memory and the PostgreSQL
 * tables, read before and after K checkouts start awaiting approval in (c). It is what sizes a
 * deployment for a given number of customers deciding at once.
 */

import { type Bench, log } from './bench.context.ts';
import { round, rssBytes } from './lib.ts';
import { redisUsed, type TableBytes, tableBytes } from './readings.ts';

export interface MemorySnapshot {
  worker: number;
  redis: number;
  pg: TableBytes;
}

export async function memorySnapshot(bench: Bench, workerPid: number): Promise<MemorySnapshot> {
  return { worker: rssBytes(workerPid), redis: await redisUsed(bench), pg: await tableBytes(bench) };
}

/** The growth from `base` to `after`, per checkout of the K. */
export function memoryPerCheckout(K: number, base: MemorySnapshot, after: MemorySnapshot) {
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
  return memory;
}
