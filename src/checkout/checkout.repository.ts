/**
 * Checkout persistence. The one way a status changes is `transition`: an UPDATE that only matches
 * while the row is still in one of the expected statuses (compare-and-set, house convention 4),
 * with the event that explains it written in the same transaction.
 */
import type { Prisma } from '../generated/prisma/client.ts';
import type { Database, SqlPool } from '../infra/database.ts';
import { type CheckoutStatus, canTransition } from './checkout.states.ts';

export type CheckoutRow = Prisma.CheckoutGetPayload<object>;
export type CheckoutPatch = Omit<Prisma.CheckoutUpdateManyMutationInput, 'status' | 'id'>;

/** Non-secret facts only (codes, intervals, HTTP statuses): never tokens or keys. */
export type EventDetail = Record<string, string | number | boolean | null>;

export interface CheckoutEventInput {
  step: string;
  outcome: string;
  detail?: EventDetail;
}

export async function findCheckout(db: Database, id: string): Promise<CheckoutRow | null> {
  return db.checkout.findUnique({ where: { id } });
}

/**
 * Moves a checkout from one of `from` to `to`, applying `patch`. Returns the updated row, or null
 * when the checkout was no longer in `from` (someone else won the race: nothing was changed).
 */
export async function transition(
  db: Database,
  id: string,
  from: CheckoutStatus | readonly CheckoutStatus[],
  to: CheckoutStatus,
  patch: CheckoutPatch = {},
  event?: CheckoutEventInput,
): Promise<CheckoutRow | null> {
  const sources = typeof from === 'string' ? [from] : [...from];
  for (const source of sources) {
    if (!canTransition(source, to)) throw new Error(`illegal transition ${source} → ${to}`);
  }
  try {
    // One guarded update with its event as a nested write (atomic): the row comes back updated,
    // or Prisma reports that no row matched the guard (P2025).
    return await db.checkout.update({
      where: { id, status: { in: sources } },
      data: {
        ...patch,
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
    if ((error as { code?: string }).code === 'P2025') return null;
    throw error;
  }
}

/**
 * Updates fields of a checkout while it is still in `status` (no status change), with its event
 * in the same statement. False when the checkout was no longer in `status`.
 */
export async function updateWhileInStatus(
  db: Database,
  id: string,
  status: CheckoutStatus,
  patch: CheckoutPatch,
  event?: CheckoutEventInput,
): Promise<boolean> {
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
    if ((error as { code?: string }).code === 'P2025') return false;
    throw error;
  }
}

/** A token poll claimed for this worker: the checkout's CIBA state as of the claim. */
export interface DuePoll {
  id: string;
  bankId: string;
  authReqId: string;
  loginHint: string;
  pollIntervalS: number | null;
  stepErrors: number;
  expiresAt: Date;
  /** The claim: `next_poll_at` holds this value until the answer is recorded (or the claim is extended). */
  lease: Date;
}

/**
 * $1 the lease in seconds, $2 the batch size, $3 banks to leave out (text[]). Times are the
 * database's: every worker compares against one clock, whatever the skew between their hosts.
 * (`now()`, the statement's start in autocommit, not `clock_timestamp()`: a volatile function
 * cannot bound the index scan, which then reads every awaiting row at each claim.)
 * The lease is never shorter than the checkout's poll interval, so that a claim whose answer was
 * lost does not bring the next request sooner than the bank allows (CIBA Core §7.3).
 */
export const CLAIM_DUE_POLLS_SQL = `UPDATE checkouts
  SET next_poll_at = now() + make_interval(secs => GREATEST($1::float8, COALESCE(poll_interval_s, 0)))
  WHERE id = ANY(ARRAY(
    SELECT id FROM checkouts
    WHERE status = 'awaiting_approval' AND next_poll_at <= now() AND auth_req_id IS NOT NULL
      AND bank_id <> ALL($3::text[])
    ORDER BY next_poll_at LIMIT $2
    FOR UPDATE SKIP LOCKED))
  RETURNING id, bank_id, auth_req_id, login_hint, poll_interval_s, step_errors, expires_at, next_poll_at`;

/**
 * Claims up to `limit` checkouts whose next token poll is due, most overdue first, by moving their
 * `next_poll_at` to a lease `leaseSeconds` ahead: no other poller takes them until the lease
 * lapses (a crashed worker's polls are picked up again then; a live one extends its lease with
 * `extendPollLease` while a request runs long). Rows another poller is claiming right now are
 * skipped rather than waited for; checkouts of `exceptBanks` (banks with enough requests in
 * flight) are left for later. One statement for the whole batch: `checkouts_poll_due_idx` finds
 * the due rows, the primary key updates them (`= ANY(ARRAY(…))` keeps the planner from
 * hash-joining the whole table, which it prefers for a join with the subquery).
 */
export async function claimDuePolls(
  sql: SqlPool,
  leaseSeconds: number,
  limit: number,
  exceptBanks: readonly string[] = [],
): Promise<DuePoll[]> {
  const { rows } = await sql.query<{
    id: string;
    bank_id: string;
    auth_req_id: string;
    login_hint: string;
    poll_interval_s: number | null;
    step_errors: number;
    expires_at: Date;
    next_poll_at: Date;
  }>({
    name: 'claim_due_polls',
    text: CLAIM_DUE_POLLS_SQL,
    values: [leaseSeconds, limit, exceptBanks],
  });
  return rows.map((r) => ({
    id: r.id,
    bankId: r.bank_id,
    authReqId: r.auth_req_id,
    loginHint: r.login_hint,
    pollIntervalS: r.poll_interval_s,
    stepErrors: r.step_errors,
    expiresAt: r.expires_at,
    lease: r.next_poll_at,
  }));
}

/** Moves a claim's lease `leaseSeconds` ahead while it is still ours; the new lease, or null. */
export async function extendPollLease(
  sql: SqlPool,
  id: string,
  lease: Date,
  leaseSeconds: number,
): Promise<Date | null> {
  const { rows } = await sql.query<{ next_poll_at: Date }>({
    name: 'extend_poll_lease',
    text: `UPDATE checkouts SET next_poll_at = now() + make_interval(secs => $3::float8)
           WHERE id = $1 AND status = 'awaiting_approval' AND next_poll_at = $2
           RETURNING next_poll_at`,
    values: [id, lease, leaseSeconds],
  });
  return rows[0]?.next_poll_at ?? null;
}

/** A bank answer that keeps the checkout awaiting approval: when to ask next, and its event. */
export interface PollAnswer {
  id: string;
  /** The claim it answers: recorded only while `next_poll_at` still holds it. */
  lease: Date;
  /** Ask again this long after the answer is recorded (never past the expiry). */
  waitMs: number;
  /** Only when it changes (slow_down). */
  pollIntervalS?: number;
  stepErrors: number;
  outcome: string;
  detail: EventDetail;
}

/**
 * Records a batch of "ask again later" answers in one statement: each checkout gets its next poll
 * time (the database's clock plus the wait, capped at the expiry) and a `token_poll` event, but
 * only while it is still awaiting approval under the same claim (a checkout canceled, or claimed
 * again after a lapsed lease, is left alone). Neither this nor the claim touches `updated_at`: a
 * poll that changes nothing the API shows is not an update of the checkout.
 * Returns how many were recorded.
 */
export async function recordPollAnswers(sql: SqlPool, answers: readonly PollAnswer[]): Promise<number> {
  if (answers.length === 0) return 0;
  const { rowCount } = await sql.query({
    name: 'record_poll_answers',
    text: `WITH v AS (
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::text[], $7::text[])
               AS v(id, lease, wait_ms, poll_interval_s, step_errors, outcome, detail)
           ), u AS (
             UPDATE checkouts AS c
             SET next_poll_at = LEAST(now() + make_interval(secs => v.wait_ms / 1000.0), c.expires_at),
                 poll_interval_s = COALESCE(v.poll_interval_s, c.poll_interval_s),
                 step_errors = v.step_errors
             FROM v
             WHERE c.id = v.id AND c.status = 'awaiting_approval' AND c.next_poll_at = v.lease
             RETURNING c.id
           )
           INSERT INTO checkout_events (checkout_id, step, outcome, detail)
           SELECT v.id, 'token_poll', v.outcome, v.detail::jsonb FROM v JOIN u ON u.id = v.id`,
    values: [
      answers.map((a) => a.id),
      answers.map((a) => a.lease),
      answers.map((a) => Math.ceil(a.waitMs)),
      answers.map((a) => a.pollIntervalS ?? null),
      answers.map((a) => a.stepErrors),
      answers.map((a) => a.outcome),
      answers.map((a) => JSON.stringify(a.detail)),
    ],
  });
  return rowCount ?? 0;
}

/** What the idempotency record of a create holds once the checkout exists. */
export interface StoredCreateResponse {
  apiKeyId: string;
  key: string;
  requestHash: string;
  status: number;
  body: unknown;
  expiresAt: Date;
}

/**
 * Inserts a new checkout, its `created` event and the Idempotency-Key record holding its response,
 * in one statement (atomic, one round trip). `claim` says how the key is taken:
 * - 'new': the key must not exist yet. Returns false, storing nothing, when it does (a duplicate or
 *   a reused key: the caller looks at the existing record). A concurrent duplicate waits for this
 *   statement to commit and then finds the stored response.
 * - 'claimed': the caller holds the key `in_flight` (it took over an expired or abandoned
 *   record); the record is completed. Returns false when the claim was lost meanwhile.
 */
export async function insertCheckout(
  sql: SqlPool,
  row: CheckoutRow,
  response: StoredCreateResponse,
  claim: 'new' | 'claimed',
): Promise<boolean> {
  const key =
    claim === 'new'
      ? `INSERT INTO idempotency_records (api_key_id, key, request_hash, state, response_status, response_body, resource_id, created_at, expires_at)
         VALUES ($1, $2, $3, 'done', $4, $5::jsonb, $6, $7, $8)
         ON CONFLICT (api_key_id, key) DO NOTHING RETURNING 1`
      : `UPDATE idempotency_records
         SET state = 'done', response_status = $4, response_body = $5::jsonb, resource_id = $6, created_at = $7, expires_at = $8
         WHERE api_key_id = $1 AND key = $2 AND request_hash = $3 AND state = 'in_flight'
         RETURNING 1`;
  const { rowCount } = await sql.query({
    name: `insert_checkout_${claim}`,
    text: `WITH k AS (${key}),
           c AS (
             INSERT INTO checkouts (id, status, amount, currency, bank_id, login_hint, reference, description,
                                    binding_message, api_key_id, created_at, updated_at, expires_at)
             SELECT $6, $9, $10, $11, $12, $13, $14, $15, $16, $1, $7, $7, $17 WHERE EXISTS (SELECT 1 FROM k)
             RETURNING id
           )
           INSERT INTO checkout_events (checkout_id, at, step, outcome, detail)
           SELECT id, $7, 'created', $9, $18::jsonb FROM c`,
    values: [
      response.apiKeyId,
      response.key,
      response.requestHash,
      response.status,
      JSON.stringify(response.body),
      row.id,
      row.createdAt,
      response.expiresAt,
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
}

export interface TimelineEntry {
  at: string;
  step: string;
  outcome: string;
  detail: Record<string, unknown> | null;
}

/** One checkout and its timeline (oldest first, at most 500 events), in one query. */
export async function findCheckoutWithTimeline(
  sql: SqlPool,
  id: string,
): Promise<{ row: CheckoutRow; timeline: TimelineEntry[] } | null> {
  const { rows } = await sql.query<Record<string, unknown>>({
    name: 'find_checkout_with_timeline',
    text: `SELECT c.*, COALESCE((
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
  return { row: checkoutFromSql(r), timeline: r.timeline as TimelineEntry[] };
}

/** A `checkouts` row as node-postgres returns it, in the shape Prisma gives it. */
function checkoutFromSql(r: Record<string, unknown>): CheckoutRow {
  return {
    id: r.id as string,
    status: r.status as string,
    amount: BigInt(r.amount as string),
    currency: r.currency as string,
    bankId: r.bank_id as string,
    loginHint: r.login_hint as string,
    reference: r.reference as string,
    description: r.description as string | null,
    bindingMessage: r.binding_message as string,
    apiKeyId: r.api_key_id as string | null,
    createdAt: r.created_at as Date,
    updatedAt: r.updated_at as Date,
    expiresAt: r.expires_at as Date,
    authReqId: r.auth_req_id as string | null,
    pollIntervalS: r.poll_interval_s as number | null,
    nextPollAt: r.next_poll_at as Date | null,
    stepErrors: r.step_errors as number,
    tokensEncrypted: r.tokens_encrypted as string | null,
    subject: r.subject as string | null,
    bankPaymentId: r.bank_payment_id as string | null,
    paymentStatus: r.payment_status as string | null,
    failureCode: r.failure_code as string | null,
    failureMessage: r.failure_message as string | null,
  };
}
