/**
 * The token poll schedule: which checkouts awaiting approval are due for their next token request
 * (CIBA Core §7.3), who holds each one, and the "ask again later" answers. The only code that
 * touches the `next_poll_at`, `poll_interval_s` and `step_errors` columns of an awaiting checkout
 * (settling answers go through `transition` in checkout.repository.ts).
 *
 * Access style: node-postgres, prepared statements. These run for every poll of every pending
 * checkout (2,000 a second at 10,000 pending, bench/RESULTS.md), batched, where Prisma cannot
 * express `FOR UPDATE SKIP LOCKED` or an `unnest` batch update. Times are the database's: every
 * worker compares against one clock, whatever the skew between their hosts.
 */
import type { SqlPool } from '../infra/database.ts';
import type { EventDetail } from './checkout.repository.ts';

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
  /** Claims since an answer was last recorded, this one included: above 1, an answer was lost. */
  unansweredClaims: number;
  /** A settling answer stored by a worker that did not get to finish with it (sealed), or null. */
  storedAnswer: string | null;
  /** Claimed because the bank pinged (CIBA ping mode), not on its schedule. */
  pinged?: boolean;
}

/** A bank answer that keeps the checkout awaiting approval: when to ask next, and its event. */
export interface PollAnswer {
  id: string;
  /** The claim it answers: recorded only while `next_poll_at` still holds it. */
  lease: Date;
  /** Ask again this long after the answer is recorded (never past the expiry). */
  waitMs: number;
  /**
   * The least wait before the next request when a ping calls for it (token-poll.policy.ts): what
   * the next request waits instead when a ping arrived meanwhile, and the earliest a later ping
   * may bring it to (`earliest_poll_at`). At most waitMs.
   */
  minWaitMs: number;
  /** Only when it changes (slow_down). */
  pollIntervalS?: number;
  stepErrors: number;
  outcome: string;
  detail: EventDetail;
}

/**
 * $1 the lease in seconds, $2 the batch size, $3 banks to leave out (text[]).
 * (`now()`, the statement's start in autocommit, not `clock_timestamp()`: a volatile function
 * cannot bound the index scan, which then reads every awaiting row at each claim.)
 * The lease is never shorter than the checkout's poll interval, so that a claim whose answer was
 * lost does not bring the next request sooner than the bank allows (CIBA Core §7.3).
 */
function claimSql(pinged: boolean): string {
  return `UPDATE checkouts
  SET next_poll_at = now() + make_interval(secs => GREATEST($1::float8, COALESCE(poll_interval_s, 0))),
      unanswered_claims = unanswered_claims + 1,
      ping_pending = false
  WHERE id = ANY(ARRAY(
    SELECT id FROM checkouts
    WHERE status = 'awaiting_approval' AND next_poll_at <= now() AND auth_req_id IS NOT NULL
      AND bank_id <> ALL($3::text[])${pinged ? ' AND ping_pending' : ''}
    ORDER BY next_poll_at LIMIT $2
    FOR UPDATE SKIP LOCKED))
  RETURNING id, bank_id, auth_req_id, login_hint, poll_interval_s, step_errors, expires_at, next_poll_at,
            unanswered_claims, token_answer_encrypted`;
}
export const CLAIM_DUE_POLLS_SQL = claimSql(false);
/**
 * The same for pinged checkouts only (`checkouts_ping_due_idx`), claimed first: the bank said the
 * result is ready, so under load their requests do not queue behind safety polls that are late.
 */
export const CLAIM_PINGED_POLLS_SQL = claimSql(true);

export interface PollScheduleRepository {
  /**
   * Claims up to `limit` checkouts whose next token poll is due, most overdue first, by moving
   * their `next_poll_at` to a lease `leaseSeconds` ahead: no other poller takes them until the
   * lease lapses (a crashed worker's polls are picked up again then; a live one extends its lease
   * with `extendLease` while a request runs long). Rows another poller is claiming right now are
   * skipped rather than waited for; checkouts of `exceptBanks` (banks with enough requests in
   * flight) are left for later. One statement for the whole batch: `checkouts_poll_due_idx` finds
   * the due rows, the primary key updates them (`= ANY(ARRAY(…))` keeps the planner from
   * hash-joining the whole table, which it prefers for a join with the subquery). With
   * `pingedFirst` (some bank is in ping mode), a first statement claims pinged checkouts
   * (`pinged: true`) before the rest; without, no ping can be pending and it is not run.
   */
  claimDue(
    leaseSeconds: number,
    limit: number,
    exceptBanks?: readonly string[],
    pingedFirst?: boolean,
  ): Promise<DuePoll[]>;
  /**
   * Stores a settling token answer (sealed) the moment it is read, in one short statement: the
   * bank answers an auth_req_id once, so what a dying worker read must survive it. Not guarded by
   * the claim: whoever holds it, this is the one answer there is. False when the checkout is no
   * longer awaiting approval. It stays until the checkout leaves awaiting_approval (an "ask
   * again" answer, such as a failed key fetch while validating it, keeps it for the next claim).
   */
  storeAnswer(id: string, sealed: string): Promise<boolean>;
  /** Moves a claim's lease `leaseSeconds` ahead while it is still ours; the new lease, or null. */
  extendLease(id: string, lease: Date, leaseSeconds: number): Promise<Date | null>;
  /**
   * Records a batch of "ask again later" answers in one statement: each checkout gets its next
   * poll time (the database's clock plus the wait, capped at the expiry) and a `token_poll` event,
   * but only while it is still awaiting approval under the same claim (a checkout canceled, or
   * claimed again after a lapsed lease, is left alone). Neither this nor the claim touches
   * `updated_at`: a poll that changes nothing the API shows is not an update of the checkout.
   * Returns how many were recorded. A ping that arrived meanwhile (`ping_pending`) makes the next
   * poll due at once instead.
   */
  recordAnswers(answers: readonly PollAnswer[]): Promise<number>;
  /**
   * The checkout awaiting approval under this auth_req_id at this bank, with the hash of the
   * client_notification_token sent with it; null when there is none (unknown, another bank's,
   * or no longer awaiting approval: the auth_req_id is cleared when a checkout ends).
   */
  findPingTarget(
    bankId: string,
    authReqId: string,
  ): Promise<{ id: string; notificationTokenHash: string | null } | null>;
  /**
   * CIBA Core §10.2: the bank pinged, the decision is there. Marks the checkout pinged (claimed
   * before other due polls) and brings its next token request forward to the earliest time the
   * bank allows (`earliest_poll_at`: the interval and slow_down still hold, CIBA Core §7.3, §11,
   * so repeated pings cannot make us ask faster). With a request in flight (a claim without a
   * recorded answer) the next one follows that answer after the least wait instead of the safety
   * wait. One request at a time either way, by whichever worker claims it. False when the checkout
   * is no longer awaiting approval.
   */
  notePing(id: string, authReqId: string): Promise<boolean>;
}

export function createPollScheduleRepository(sql: SqlPool): PollScheduleRepository {
  async function claim(
    name: string,
    text: string,
    leaseSeconds: number,
    limit: number,
    exceptBanks: readonly string[],
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
      unanswered_claims: number;
      token_answer_encrypted: string | null;
    }>({
      name,
      text,
      values: [leaseSeconds, limit, [...exceptBanks]],
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
      unansweredClaims: r.unanswered_claims,
      storedAnswer: r.token_answer_encrypted,
    }));
  }

  return {
    async claimDue(leaseSeconds, limit, exceptBanks = [], pingedFirst = true) {
      const pinged = pingedFirst
        ? (await claim('claim_pinged_polls', CLAIM_PINGED_POLLS_SQL, leaseSeconds, limit, exceptBanks)).map(
            (poll) => ({ ...poll, pinged: true }),
          )
        : [];
      if (pinged.length >= limit) return pinged;
      const due = await claim(
        'claim_due_polls',
        CLAIM_DUE_POLLS_SQL,
        leaseSeconds,
        limit - pinged.length,
        exceptBanks,
      );
      return [...pinged, ...due];
    },

    async storeAnswer(id, sealed) {
      const { rowCount } = await sql.query({
        name: 'store_token_answer_v2',
        text: `UPDATE checkouts SET token_answer_encrypted = $2
               WHERE id = $1 AND status = 'awaiting_approval'`,
        values: [id, sealed],
      });
      return rowCount === 1;
    },

    async extendLease(id, lease, leaseSeconds) {
      const { rows } = await sql.query<{ next_poll_at: Date }>({
        name: 'extend_poll_lease',
        text: `UPDATE checkouts SET next_poll_at = now() + make_interval(secs => $3::float8)
               WHERE id = $1 AND status = 'awaiting_approval' AND next_poll_at = $2
               RETURNING next_poll_at`,
        values: [id, lease, leaseSeconds],
      });
      return rows[0]?.next_poll_at ?? null;
    },

    async findPingTarget(bankId, authReqId) {
      const { rows } = await sql.query<{ id: string; notification_token_hash: string | null }>({
        name: 'find_ping_target',
        text: `SELECT id, notification_token_hash FROM checkouts
               WHERE auth_req_id = $1 AND bank_id = $2 AND status = 'awaiting_approval'`,
        values: [authReqId, bankId],
      });
      const row = rows[0];
      return row ? { id: row.id, notificationTokenHash: row.notification_token_hash } : null;
    },

    async notePing(id, authReqId) {
      const { rowCount } = await sql.query({
        name: 'note_ping_v2',
        text: `UPDATE checkouts
               SET ping_pending = true,
                   next_poll_at = CASE WHEN unanswered_claims = 0
                     THEN LEAST(next_poll_at, GREATEST(now(), COALESCE(earliest_poll_at, now())))
                     ELSE next_poll_at END
               WHERE id = $1 AND auth_req_id = $2 AND status = 'awaiting_approval'`,
        values: [id, authReqId],
      });
      return rowCount === 1;
    },

    async recordAnswers(answers) {
      if (answers.length === 0) return 0;
      const { rowCount } = await sql.query({
        name: 'record_poll_answers_v2',
        text: `WITH v AS (
                 SELECT * FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::int[], $5::int[], $6::text[], $7::text[], $8::int[])
                   AS v(id, lease, wait_ms, poll_interval_s, step_errors, outcome, detail, min_wait_ms)
               ), u AS (
                 UPDATE checkouts AS c
                 SET next_poll_at = LEAST(now() + make_interval(secs =>
                       (CASE WHEN c.ping_pending THEN v.min_wait_ms ELSE v.wait_ms END) / 1000.0), c.expires_at),
                     earliest_poll_at = now() + make_interval(secs => v.min_wait_ms / 1000.0),
                     poll_interval_s = COALESCE(v.poll_interval_s, c.poll_interval_s),
                     step_errors = v.step_errors,
                     unanswered_claims = 0
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
          answers.map((a) => Math.ceil(Math.min(a.minWaitMs, a.waitMs))),
        ],
      });
      return rowCount ?? 0;
    },
  };
}
