/**
 * (g) The cost of one query: Prisma (as the API and the worker use it) against node-postgres
 * alone, same SQL, same pool size, 16 in flight, in this process (idle otherwise). It tells
 * whether a hot path should leave the ORM.
 */
import pg from 'pg';
import { createDatabase } from '../src/infra/database.ts';
import { type Bench, log } from './bench.context.ts';
import { QUICK } from './bench.options.ts';
import { inLanes, round } from './lib.ts';

export interface QueryCost {
  perSecond: number;
  cpuUsPerQuery: number;
}

/** Queries per second and this process's CPU per query, 16 in flight, after a warm-up. */
async function perQuery(run: () => Promise<unknown>): Promise<QueryCost> {
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
}

/** Reads and updates of checkout `id`, both ways. */
export async function measureQueryCost(bench: Bench, id: string): Promise<Record<string, QueryCost>> {
  const viaPrisma = createDatabase(bench.databaseUrl);
  const viaPg = new pg.Pool({ connectionString: bench.databaseUrl, max: 10 });
  const prismaFind = await perQuery(() => viaPrisma.checkout.findUnique({ where: { id } }));
  const pgFind = await perQuery(() => viaPg.query('SELECT * FROM checkouts WHERE id = $1', [id]));
  const prismaUpdate = await perQuery(() =>
    viaPrisma.checkout.updateMany({ where: { id, status: 'pending' }, data: { stepErrors: 0 } }),
  );
  const pgUpdate = await perQuery(() =>
    viaPg.query('UPDATE checkouts SET step_errors = 0, updated_at = now() WHERE id = $1 AND status = $2', [
      id,
      'pending',
    ]),
  );
  await viaPrisma.$disconnect();
  await viaPg.end();
  const queryCost = { prismaFind, pgFind, prismaUpdate, pgUpdate };
  log(`(g) one query, Prisma vs pg: ${JSON.stringify(queryCost)}`);
  return queryCost;
}
