/**
 * The sandbox bank's durable state, so a restarted bank still knows what it promised, as a real
 * bank does: its signing keys, oidc-provider's entries (pending CIBA requests, grants, access
 * tokens), the bank app's inbox of requests, created customers and accepted payments.
 *
 * One table in a schema of its own (default `sandbox_bank`) on a PostgreSQL the bank is given,
 * in development the embedded one Bankpay also uses. Reads stay in memory (the bank answers tens
 * of thousands of polls a minute in the benchmarks): every change is written here before the
 * bank answers, and everything still alive is read back at start.
 *
 * Not kept (memory only, by design): the poll and bc-authorize timelines of the control API, the
 * payment-attempt log, fault scripts, and the request-object `jti` replay cache (a request object
 * seen before a restart could be replayed within its 5 minutes).
 */
import pg from 'pg';

/** The kinds of record kept; `id` is unique within a kind. */
export type JournalKind = 'keys' | 'oidc' | 'request' | 'customer' | 'payment';

export interface JournalRecord<T = unknown> {
  id: string;
  data: T;
}

/** Where the in-memory stores write their changes (see each store for what it writes). */
export interface Journal {
  /** Inserts or replaces a record; `keepUntil` (epoch ms) lets sweep() drop it later. */
  put(kind: JournalKind, id: string, data: unknown, keepUntil?: number): Promise<void>;
  delete(kind: JournalKind, ids: string | readonly string[]): Promise<void>;
  /** Removes every record of a kind (the control API's reset). */
  clear(kind: JournalKind): Promise<void>;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** A Journal on PostgreSQL. */
export class PostgresJournal implements Journal {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly table: string,
  ) {}

  /**
   * Connects and creates the schema and table when missing.
   * @param databaseUrl a postgres:// URL
   * @param schema lower-case SQL identifier, default `sandbox_bank`
   * @throws when the database cannot be reached or the schema name is not a plain identifier
   */
  static async open(databaseUrl: string, schema = 'sandbox_bank'): Promise<PostgresJournal> {
    if (!SCHEMA_NAME.test(schema)) throw new Error(`invalid schema name ${JSON.stringify(schema)}`);
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 4 });
    // An idle connection the server drops (a restart) is replaced at the next query; unheard, its
    // error would end the process.
    pool.on('error', () => {});
    const table = `${schema}.records`;
    try {
      await pool.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
      await pool.query(
        `CREATE TABLE IF NOT EXISTS ${table} (
           kind text NOT NULL,
           id text NOT NULL,
           data jsonb NOT NULL,
           keep_until timestamptz,
           created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
           PRIMARY KEY (kind, id)
         )`,
      );
    } catch (error) {
      await pool.end();
      throw error;
    }
    return new PostgresJournal(pool, table);
  }

  /** Records of a kind that are still to be kept, oldest first (first put, not last change). */
  async load<T>(kind: JournalKind): Promise<Array<JournalRecord<T>>> {
    const { rows } = await this.pool.query<{ id: string; data: T }>(
      `SELECT id, data FROM ${this.table}
        WHERE kind = $1 AND (keep_until IS NULL OR keep_until > now())
        ORDER BY created_at, id`,
      [kind],
    );
    return rows;
  }

  async put(kind: JournalKind, id: string, data: unknown, keepUntil?: number): Promise<void> {
    const until = keepUntil === undefined || !Number.isFinite(keepUntil) ? null : new Date(keepUntil);
    await this.pool.query(
      `INSERT INTO ${this.table} (kind, id, data, keep_until) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kind, id) DO UPDATE SET data = EXCLUDED.data, keep_until = EXCLUDED.keep_until`,
      [kind, id, JSON.stringify(data), until],
    );
  }

  async delete(kind: JournalKind, ids: string | readonly string[]): Promise<void> {
    const list = typeof ids === 'string' ? [ids] : [...ids];
    if (list.length === 0) return;
    await this.pool.query(`DELETE FROM ${this.table} WHERE kind = $1 AND id = ANY($2)`, [kind, list]);
  }

  async clear(kind: JournalKind): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.table} WHERE kind = $1`, [kind]);
  }

  /** Drops records past their keepUntil; returns how many. */
  async sweep(): Promise<number> {
    const { rowCount } = await this.pool.query(`DELETE FROM ${this.table} WHERE keep_until <= now()`);
    return rowCount ?? 0;
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
