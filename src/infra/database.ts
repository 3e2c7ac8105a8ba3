/** The Prisma client over node-postgres (Prisma 7 has no native query engine: the pg adapter is it). */
import { PrismaPg } from '@prisma/adapter-pg';
import pg from 'pg';
import { PrismaClient } from '../generated/prisma/client.ts';

export type Database = PrismaClient;
/** Plain node-postgres, for the few hot statements where Prisma's per-query CPU shows (bench/RESULTS.md). */
export type SqlPool = pg.Pool;

/**
 * The Prisma client; on `options.pool` when given (one pool per process for Prisma and the hot
 * statements; the caller ends it), else on a pool of its own.
 */
export function createDatabase(
  databaseUrl: string,
  options: { poolSize?: number; pool?: SqlPool } = {},
): Database {
  const adapter = new PrismaPg(
    options.pool ?? {
      connectionString: databaseUrl,
      max: options.poolSize ?? 10,
      // Fail fast while Postgres is down, so requests answer 503 instead of hanging.
      connectionTimeoutMillis: 5_000,
    },
  );
  return new PrismaClient({ adapter });
}

export function createSqlPool(databaseUrl: string, options: { poolSize?: number } = {}): SqlPool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max: options.poolSize ?? 10,
    connectionTimeoutMillis: 5_000,
  });
  // An idle connection dropped by the server (restart, failover) is an 'error' event: without a
  // listener it would crash the process. The pool replaces it on the next query.
  pool.on('error', () => {});
  return pool;
}

export async function isDatabaseReachable(db: Database): Promise<boolean> {
  try {
    await db.$queryRawUnsafe('SELECT 1');
    return true;
  } catch {
    return false;
  }
}

const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024']);
const UNAVAILABLE_ADAPTER_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
  'TransactionAlreadyClosed',
]);
// SQLSTATE: 08 connection exceptions, 53 insufficient resources (53300 too many connections), 57P0x the
// server shutting down or not accepting connections yet (PostgreSQL Appendix A).
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0)/;
const UNAVAILABLE_NODE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EPIPE',
  'ENOTFOUND',
]);

/**
 * True when `error` means "PostgreSQL cannot be reached right now" (refused, dropped, shutting
 * down, pool exhausted) rather than a bug or a bad query: such requests answer 503 + Retry-After,
 * and the pool reconnects on its own once the database is back.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error as Record<string, unknown> | undefined, depth = 0; e && depth < 6; depth++) {
    const code = typeof e.code === 'string' ? e.code : undefined;
    if (
      code &&
      (UNAVAILABLE_PRISMA_CODES.has(code) ||
        UNAVAILABLE_NODE_CODES.has(code) ||
        UNAVAILABLE_SQLSTATE.test(code))
    ) {
      return true;
    }
    const adapter = (
      e.meta as { driverAdapterError?: { cause?: { kind?: string; originalCode?: string } } } | undefined
    )?.driverAdapterError?.cause;
    if (adapter?.kind && UNAVAILABLE_ADAPTER_KINDS.has(adapter.kind)) return true;
    if (adapter?.originalCode && UNAVAILABLE_SQLSTATE.test(adapter.originalCode)) return true;
    if (
      typeof e.message === 'string' &&
      /Connection terminated|Can't reach database server|connection timeout|timeout exceeded when trying to connect/i.test(
        e.message,
      )
    ) {
      return true;
    }
    e = e.cause as Record<string, unknown> | undefined;
  }
  return false;
}
