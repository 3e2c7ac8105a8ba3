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

/** Updates fields of a checkout while it is still in `status` (no status change). */
export async function updateWhileInStatus(
  db: Database,
  id: string,
  status: CheckoutStatus,
  patch: CheckoutPatch,
  event?: CheckoutEventInput,
): Promise<boolean> {
  const { count } = await db.checkout.updateMany({ where: { id, status }, data: patch });
  if (count === 1 && event) await recordEvent(db, id, event);
  return count === 1;
}

export async function recordEvent(
  db: Database,
  checkoutId: string,
  event: CheckoutEventInput,
): Promise<void> {
  await db.checkoutEvent.create({
    data: {
      checkoutId,
      step: event.step,
      outcome: event.outcome,
      ...(event.detail !== undefined ? { detail: event.detail } : {}),
    },
  });
}

export async function listEvents(db: Database, checkoutId: string) {
  return db.checkoutEvent.findMany({ where: { checkoutId }, orderBy: { id: 'asc' }, take: 500 });
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
  /** The claim: `next_poll_at` now holds this value until the answer is recorded. */
  lease: Date;
}

/** $1 now, $2 the lease, $3 the batch size. */
export const CLAIM_DUE_POLLS_SQL = `UPDATE checkouts AS c SET next_poll_at = $2, updated_at = $1
  FROM (SELECT id FROM checkouts
        WHERE status = 'awaiting_approval' AND next_poll_at <= $1 AND auth_req_id IS NOT NULL
        ORDER BY next_poll_at LIMIT $3
        FOR UPDATE SKIP LOCKED) AS due
  WHERE c.id = due.id
  RETURNING c.id, c.bank_id, c.auth_req_id, c.login_hint, c.poll_interval_s, c.step_errors, c.expires_at`;

/**
 * Claims up to `limit` checkouts whose next token poll is due, oldest first, by moving their
 * `next_poll_at` to `lease`: no other poller takes them until the lease lapses (a crashed
 * worker's polls are picked up again then). Rows another poller is claiming right now are skipped
 * rather than waited for. One statement for the whole batch, served by `checkouts_poll_due_idx`.
 */
export async function claimDuePolls(sql: SqlPool, now: Date, lease: Date, limit: number): Promise<DuePoll[]> {
  const { rows } = await sql.query<{
    id: string;
    bank_id: string;
    auth_req_id: string;
    login_hint: string;
    poll_interval_s: number | null;
    step_errors: number;
    expires_at: Date;
  }>({
    name: 'claim_due_polls',
    text: CLAIM_DUE_POLLS_SQL,
    values: [now, lease, limit],
  });
  return rows.map((r) => ({
    id: r.id,
    bankId: r.bank_id,
    authReqId: r.auth_req_id,
    loginHint: r.login_hint,
    pollIntervalS: r.poll_interval_s,
    stepErrors: r.step_errors,
    expiresAt: r.expires_at,
    lease,
  }));
}

/** A bank answer that keeps the checkout awaiting approval: when to ask next, and its event. */
export interface PollAnswer {
  id: string;
  lease: Date;
  nextPollAt: Date;
  /** Only when it changes (slow_down). */
  pollIntervalS?: number;
  stepErrors: number;
  outcome: string;
  detail: EventDetail;
}

/**
 * Records a batch of "ask again later" answers in one statement: each checkout gets its next poll
 * time and a `token_poll` event, but only while it is still awaiting approval under the same
 * claim (a checkout canceled, or claimed again after a lapsed lease, is left alone).
 * Returns how many were recorded.
 */
export async function recordPollAnswers(
  sql: SqlPool,
  answers: readonly PollAnswer[],
  now: Date,
): Promise<number> {
  if (answers.length === 0) return 0;
  const { rowCount } = await sql.query({
    name: 'record_poll_answers',
    text: `WITH v AS (
             SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int[], $5::int[], $6::text[], $7::text[])
               AS v(id, lease, next_poll_at, poll_interval_s, step_errors, outcome, detail)
           ), u AS (
             UPDATE checkouts AS c
             SET next_poll_at = v.next_poll_at, poll_interval_s = COALESCE(v.poll_interval_s, c.poll_interval_s),
                 step_errors = v.step_errors, updated_at = $8
             FROM v
             WHERE c.id = v.id AND c.status = 'awaiting_approval' AND c.next_poll_at = v.lease
             RETURNING c.id
           )
           INSERT INTO checkout_events (checkout_id, step, outcome, detail)
           SELECT v.id, 'token_poll', v.outcome, v.detail::jsonb FROM v JOIN u ON u.id = v.id`,
    values: [
      answers.map((a) => a.id),
      answers.map((a) => a.lease),
      answers.map((a) => a.nextPollAt),
      answers.map((a) => a.pollIntervalS ?? null),
      answers.map((a) => a.stepErrors),
      answers.map((a) => a.outcome),
      answers.map((a) => JSON.stringify(a.detail)),
      now,
    ],
  });
  return rowCount ?? 0;
}
