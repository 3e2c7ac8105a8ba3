/**
 * Checkouts and their timeline events: the only code that reads or writes the `checkouts` and
 * `checkout_events` tables (the token poll schedule has its own repository,
 * poll-schedule.repository.ts, and Idempotency-Key records theirs, idempotency.repository.ts).
 *
 * The one way a status changes is `transition`: an UPDATE that only matches while the row is still
 * in one of the expected statuses (compare-and-set, house convention 4), with the event that
 * explains it written in the same statement.
 *
 * Access style, per statement:
 * - node-postgres for the two statements on a storefront's hot path, create and status read (one
 *   round trip each, where Prisma's per-query CPU showed: bench/RESULTS.md (g)). Their rows are
 *   selected under Prisma's field names (`CHECKOUT_COLUMNS`, derived from the generated client),
 *   so both styles return the same `CheckoutRow`.
 * - Prisma for the rest: cold statements and the guarded updates whose nested event write it
 *   makes atomic.
 */
import { Prisma } from '../generated/prisma/client.ts';
import type { Database, SqlPool } from '../infra/database.ts';
import { newestFirst, olderThan } from '../infra/pagination.ts';
import { type CheckoutStatus, canTransition, isTerminal } from './checkout.states.ts';
import { completeRecordSql, completeRecordValues, type StoredResponse } from './idempotency.repository.ts';

export type CheckoutRow = Prisma.CheckoutGetPayload<object>;
export type CheckoutPatch = Omit<Prisma.CheckoutUpdateManyMutationInput, 'status' | 'id'>;

/**
 * What identifies the customer at the bank is kept only while the bank may still be asked about
 * it: once a checkout has ended, its auth_req_id (a bearer handle at the bank), the login hint,
 * the bank's subject and the ping token's hash are cleared in the same update (nothing looks a checkout up by them then).
 */
const FORGOTTEN_AT_THE_END: CheckoutPatch = {
  // No more polls; the access token (kept only between approval and payment) goes too.
  nextPollAt: null,
  tokensEncrypted: null,
  authReqId: null,
  loginHint: null,
  subject: null,
  tokenAnswerEncrypted: null,
  notificationTokenHash: null,
  pingPending: false,
  earliestPollAt: null,
};

/** Non-secret facts only (codes, intervals, HTTP statuses): never tokens or keys. */
export type EventDetail = Record<string, string | number | boolean | null>;

export interface CheckoutEventInput {
  step: string;
  outcome: string;
  detail?: EventDetail;
}

export interface TimelineEntry {
  at: string;
  step: string;
  outcome: string;
  detail: Record<string, unknown> | null;
}

/** Where a page of the list starts: the last checkout of the previous page. */
export interface ListCursor {
  createdAt: Date;
  id: string;
}

/** A checkout's id and status, as the reconciler scans them. */
export interface CheckoutRef {
  id: string;
  status: CheckoutStatus;
}

const snakeCase = (field: string) => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** `c.bank_id AS "bankId", …`: every column of `checkouts` under its Prisma field name. */
const CHECKOUT_COLUMNS = Object.keys(Prisma.CheckoutScalarFieldEnum)
  .map((field) => `c.${snakeCase(field)} AS "${field}"`)
  .join(', ');

/** node-postgres returns BIGINT as text; everything else already has Prisma's type. */
function checkoutFromSql(r: Record<string, unknown>): CheckoutRow {
  return { ...(r as CheckoutRow), amount: BigInt(r.amount as string) };
}

export interface CheckoutRepository {
  find(id: string): Promise<CheckoutRow | null>;
  /**
   * The checkouts of `ids` that exist, in no particular order, in one query (node-postgres, a
   * prepared statement): what the live status reads again after a change notification (one id) or
   * in its periodic and reconnection sweeps (up to a few hundred at a time).
   */
  findMany(ids: readonly string[]): Promise<CheckoutRow[]>;
  /** One checkout and its timeline (oldest first, at most 500 events), in one query. */
  findWithTimeline(id: string): Promise<{ row: CheckoutRow; timeline: TimelineEntry[] } | null>;
  /** The list position of a checkout, or null when there is no such checkout. */
  findCursor(id: string): Promise<ListCursor | null>;
  /**
   * Newest first, up to `limit`, after `cursor` when given; (created_at, id) breaks ties so a page
   * boundary never skips or repeats a row.
   */
  list(options: { limit: number; cursor?: ListCursor; status?: CheckoutStatus }): Promise<CheckoutRow[]>;
  /**
   * Inserts a new checkout, its `created` event and the Idempotency-Key record holding its
   * response, in one statement (atomic, one round trip). `claim` says how the key is taken
   * (idempotency.repository.ts `completeRecordSql`): false, storing nothing, when the key exists
   * ('new') or the claim was lost meanwhile ('claimed'). A concurrent duplicate waits for this
   * statement to commit and then finds the stored response.
   */
  insert(row: CheckoutRow, response: StoredResponse, claim: 'new' | 'claimed'): Promise<boolean>;
  /**
   * Moves a checkout from one of `from` to `to`, applying `patch`, with its event. Returns the
   * updated row, or null when the checkout was no longer in `from` (someone else won the race:
   * nothing was changed). Throws on a move the state machine does not allow.
   */
  transition(
    id: string,
    from: CheckoutStatus | readonly CheckoutStatus[],
    to: CheckoutStatus,
    patch?: CheckoutPatch,
    event?: CheckoutEventInput,
  ): Promise<CheckoutRow | null>;
  /**
   * Updates fields of a checkout while it is still in `status` (no status change), with its event
   * in the same statement. False when the checkout was no longer in `status`.
   */
  updateWhileInStatus(
    id: string,
    status: CheckoutStatus,
    patch: CheckoutPatch,
    event?: CheckoutEventInput,
  ): Promise<boolean>;
  /**
   * Checkouts in one of `statuses` whose expiry is before `before` and that hold no stored bank
   * answer still to be finished, at most `limit`.
   */
  findExpired(statuses: readonly CheckoutStatus[], before: Date, limit: number): Promise<CheckoutRef[]>;
  /** Checkouts in one of `statuses` not updated since `before`, least recently updated first. */
  findStalled(statuses: readonly CheckoutStatus[], before: Date, limit: number): Promise<CheckoutRef[]>;
}

const isNoRowMatched = (error: unknown) => (error as { code?: string }).code === 'P2025';

export function createCheckoutRepository(db: Database, sql: SqlPool): CheckoutRepository {
  return {
    find: (id) => db.checkout.findUnique({ where: { id } }),

    async findMany(ids) {
      if (ids.length === 0) return [];
      const { rows } = await sql.query<Record<string, unknown>>({
        name: 'find_checkouts_by_ids',
        text: `SELECT ${CHECKOUT_COLUMNS} FROM checkouts c WHERE c.id = ANY($1::text[])`,
        values: [ids],
      });
      return rows.map(checkoutFromSql);
    },

    async findWithTimeline(id) {
      const { rows } = await sql.query<Record<string, unknown>>({
        name: 'find_checkout_with_timeline',
        text: `SELECT ${CHECKOUT_COLUMNS}, COALESCE((
                 SELECT json_agg(json_build_object(
                          'at', to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                          'step', e.step, 'outcome', e.outcome, 'detail', e.detail) ORDER BY e.id)
                 FROM (SELECT * FROM checkout_events WHERE checkout_id = c.id ORDER BY id LIMIT 500) e
               ), '[]'::json) AS timeline
               FROM checkouts c WHERE c.id = $1`,
        values: [id],
      });
      const r = rows[0];
      if (!r) return null;
      const { timeline, ...columns } = r;
      return { row: checkoutFromSql(columns), timeline: timeline as TimelineEntry[] };
    },

    findCursor: (id) => db.checkout.findUnique({ where: { id }, select: { createdAt: true, id: true } }),

    list: ({ limit, cursor, status }) =>
      db.checkout.findMany({
        where: { ...(status ? { status } : {}), ...olderThan(cursor) },
        orderBy: newestFirst(),
        take: limit,
      }),

    async insert(row, response, claim) {
      const { rowCount } = await sql.query({
        name: `insert_checkout_${claim}`,
        text: `WITH k AS (${completeRecordSql(claim)}),
               c AS (
                 INSERT INTO checkouts (id, status, amount, currency, bank_id, login_hint, reference, description,
                                        binding_message, api_key_id, created_at, updated_at, expires_at)
                 SELECT $6, $9, $10, $11, $12, $13, $14, $15, $16, $1, $7, $7, $17 WHERE EXISTS (SELECT 1 FROM k)
                 RETURNING id
               )
               INSERT INTO checkout_events (checkout_id, at, step, outcome, detail)
               SELECT id, $7, 'created', $9, $18::jsonb FROM c`,
        values: [
          ...completeRecordValues(response, row.id, row.createdAt),
          row.status,
          row.amount.toString(),
          row.currency,
          row.bankId,
          row.loginHint,
          row.reference,
          row.description,
          row.bindingMessage,
          row.expiresAt,
          JSON.stringify({ bankId: row.bankId }),
        ],
      });
      return rowCount === 1;
    },

    async transition(id, from, to, patch = {}, event) {
      const sources = typeof from === 'string' ? [from] : [...from];
      for (const source of sources) {
        if (!canTransition(source, to)) throw new Error(`illegal transition ${source} → ${to}`);
      }
      try {
        // One guarded update with its event as a nested write (atomic): the row comes back
        // updated, or Prisma reports that no row matched the guard (P2025).
        return await db.checkout.update({
          where: { id, status: { in: sources } },
          data: {
            ...patch,
            ...(isTerminal(to) ? FORGOTTEN_AT_THE_END : {}),
            status: to,
            events: {
              create: {
                step: event?.step ?? 'status',
                outcome: event?.outcome ?? to,
                detail: { ...event?.detail, status: to },
              },
            },
          },
        });
      } catch (error) {
        if (isNoRowMatched(error)) return null;
        throw error;
      }
    },

    async updateWhileInStatus(id, status, patch, event) {
      try {
        await db.checkout.update({
          where: { id, status },
          data: {
            ...patch,
            ...(event
              ? {
                  events: {
                    create: {
                      step: event.step,
                      outcome: event.outcome,
                      ...(event.detail !== undefined ? { detail: event.detail } : {}),
                    },
                  },
                }
              : {}),
          },
          select: { id: true },
        });
        return true;
      } catch (error) {
        if (isNoRowMatched(error)) return false;
        throw error;
      }
    },

    async findExpired(statuses, before, limit) {
      const rows = await db.checkout.findMany({
        // A checkout holding a stored bank answer got it in time: it is finished, not expired.
        where: { status: { in: [...statuses] }, expiresAt: { lt: before }, tokenAnswerEncrypted: null },
        select: { id: true, status: true },
        take: limit,
      });
      return rows as CheckoutRef[];
    },

    async findStalled(statuses, before, limit) {
      const rows = await db.checkout.findMany({
        where: { status: { in: [...statuses] }, updatedAt: { lt: before } },
        select: { id: true, status: true },
        orderBy: { updatedAt: 'asc' },
        take: limit,
      });
      return rows as CheckoutRef[];
    },
  };
}
