/**
 * Webhook deliveries and their attempts (DESIGN.md §7.3): the only code that touches the
 * `webhook_deliveries` and `webhook_attempts` tables, and that purges old events.
 *
 * A delivery (one event to one endpoint) is written by the outbox trigger in the transaction of
 * the status change. A worker claims due deliveries with a lease (the due time moved past the
 * attempt's deadline, under FOR UPDATE SKIP LOCKED, so two workers never hold the same one); the
 * outcome is written in batches: the attempt, then delivered, or the next due time, or given up
 * after 3 days. A worker that dies mid-attempt loses nothing: the lease lapses and the delivery is
 * claimed again (at least once). Due times and leases are the database's clock.
 */
import type { CheckoutView } from '../checkout/checkout.schemas.ts';
import type { SqlPool } from '../infra/database.ts';
import type { EventType } from './events.repository.ts';

/** How long deliveries are retried, and how long an endpoint may fail before it is disabled. */
export const RETRY_FOR_HOURS = 72;
/** How long events (with their deliveries and attempts) are kept. */
export const EVENT_RETENTION_DAYS = 30;

/** pending: to be attempted · delivered · failed: retried for 3 days in vain · abandoned: its endpoint was disabled. */
export type DeliveryState = 'pending' | 'delivered' | 'failed' | 'abandoned';

/** A claimed delivery: what an attempt needs. */
export interface DueDelivery {
  eventId: string;
  endpointId: string;
  /** This attempt's number (1 for the first). */
  attempt: number;
  url: string;
  /** Sealed secrets, newest first: the current one, and the previous one while it still signs. */
  secretsSealed: string[];
  type: EventType;
  eventCreatedAt: Date;
  /** The checkout as the event carries it. */
  object: CheckoutView;
}

export interface AttemptOutcome {
  eventId: string;
  endpointId: string;
  attemptedAt: Date;
  durationMs: number;
  status: number | null;
  error: string | null;
  delivered: boolean;
  /** When not delivered: wait this long before the next attempt (ms). */
  retryInMs: number;
  /**
   * The attempt number the claim gave (DueDelivery.attempt): the outcome then settles the delivery
   * only if no later claim or resend has taken it since (a lease that lapsed under a slow attempt,
   * a resend while an attempt was in flight); the attempt is recorded either way.
   */
  attempt?: number;
}

export interface DeliveryView {
  endpointId: string;
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: string | null;
  deliveredAt: string | null;
}

export interface AttemptView {
  endpointId: string;
  attemptedAt: string;
  status: number | null;
  error: string | null;
  durationMs: number;
}

export interface WebhookDeliveriesRepository {
  /**
   * Leases up to `limit` due deliveries, earliest due first, none of the endpoints in
   * `exceptEndpoints` (those a worker already has enough in flight for): each is not due again for
   * `leaseMs`, and its attempt count goes up by one.
   */
  claimDue(limit: number, exceptEndpoints: readonly string[], leaseMs: number): Promise<DueDelivery[]>;
  /**
   * Writes a batch of attempt outcomes: the attempts; each delivery delivered, or due again after
   * its `retryInMs`, or `failed` once it has been retried for RETRY_FOR_HOURS; each endpoint's
   * `failingSince` (set by a failure, cleared by a success); an endpoint failing for
   * RETRY_FOR_HOURS is disabled (with the reason) and its pending deliveries abandoned. Returns
   * the endpoints it disabled.
   */
  recordOutcomes(outcomes: readonly AttemptOutcome[]): Promise<Array<{ id: string; reason: string }>>;
  /**
   * Queues the event again for the enabled endpoints subscribed to its type (or only
   * `endpointId`): due now, retried for 3 days again. Returns the endpoints it was queued for.
   */
  resend(eventId: string, endpointId?: string): Promise<string[]>;
  deliveriesOf(eventId: string): Promise<DeliveryView[]>;
  /** Oldest first. */
  attemptsOf(eventId: string): Promise<AttemptView[]>;
  /** Deletes events (with their deliveries and attempts) older than EVENT_RETENTION_DAYS, up to `batch`; returns how many. */
  purgeExpiredEvents(batch: number): Promise<number>;
}

/**
 * The claim of `claimDue`: $1 the batch size, $2 endpoints to leave out (text[]), $3 the lease (ms).
 * Per endpoint (at most MAX_WEBHOOK_ENDPOINTS), its earliest due deliveries by the index
 * (endpoint_id, next_attempt_at): an endpoint left out costs nothing however large its backlog.
 * Then the earliest due of those, across endpoints.
 */
export const CLAIM_DUE_DELIVERIES_SQL = `UPDATE webhook_deliveries d
  SET next_attempt_at = now() + $3 * interval '1 millisecond', attempts = d.attempts + 1
  FROM (
    SELECT due.event_id, due.endpoint_id
    FROM webhook_endpoints w
    CROSS JOIN LATERAL (
      SELECT event_id, endpoint_id, next_attempt_at FROM webhook_deliveries
      WHERE endpoint_id = w.id AND state = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at
      LIMIT $1
      FOR UPDATE SKIP LOCKED
    ) due
    WHERE w.id <> ALL ($2::text[])
    ORDER BY due.next_attempt_at
    LIMIT $1
  ) due, events e, webhook_endpoints w
  WHERE d.event_id = due.event_id AND d.endpoint_id = due.endpoint_id
    AND e.id = d.event_id AND w.id = d.endpoint_id
  RETURNING d.event_id, d.endpoint_id, d.attempts, w.url, w.secret_sealed,
    CASE WHEN w.previous_secret_until > now() THEN w.previous_secret_sealed END AS previous_secret_sealed,
    e.type, e.created_at, e.data`;

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export function createWebhookDeliveriesRepository(sql: SqlPool): WebhookDeliveriesRepository {
  return {
    async claimDue(limit, exceptEndpoints, leaseMs) {
      const { rows } = await sql.query<{
        event_id: string;
        endpoint_id: string;
        attempts: number;
        url: string;
        secret_sealed: string;
        previous_secret_sealed: string | null;
        type: EventType;
        created_at: Date;
        data: CheckoutView;
      }>(CLAIM_DUE_DELIVERIES_SQL, [limit, exceptEndpoints, leaseMs]);
      return rows.map((r) => ({
        eventId: r.event_id,
        endpointId: r.endpoint_id,
        attempt: r.attempts,
        url: r.url,
        secretsSealed: r.previous_secret_sealed
          ? [r.secret_sealed, r.previous_secret_sealed]
          : [r.secret_sealed],
        type: r.type,
        eventCreatedAt: r.created_at,
        object: r.data,
      }));
    },

    async recordOutcomes(outcomes) {
      if (outcomes.length === 0) return [];
      const client = await sql.connect();
      // A connection the server drops while this transaction holds it (a restart, a failover)
      // reports it as an 'error' event on the client when no statement is in flight: unheard, that
      // event would crash the worker. Heard, the write fails with the server's reason (57P01 and
      // the like: the caller retries it on a fresh connection while the database is unavailable)
      // and the dropped connection is discarded rather than pooled again.
      let dropped: Error | undefined;
      const onDropped = (error: Error) => {
        dropped = error;
      };
      client.on('error', onDropped);
      try {
        await client.query('BEGIN');
        const params = [
          outcomes.map((o) => o.eventId),
          outcomes.map((o) => o.endpointId),
          outcomes.map((o) => o.attemptedAt),
          outcomes.map((o) => o.durationMs),
          outcomes.map((o) => o.status),
          outcomes.map((o) => o.error),
          outcomes.map((o) => o.delivered),
          outcomes.map((o) => Math.max(0, Math.round(o.retryInMs))),
          outcomes.map((o) => o.attempt ?? null),
        ];
        // The attempts (of events not purged meanwhile), and each delivery's next state. A delivery
        // no longer pending (delivered by another attempt, its endpoint disabled) keeps its state.
        await client.query(
          `WITH o AS (
             SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::int[], $5::int[],
                                  $6::text[], $7::bool[], $8::bigint[], $9::int[])
               AS o(event_id, endpoint_id, attempted_at, duration_ms, status, error, delivered, retry_ms, attempt)
           ), attempts AS (
             INSERT INTO webhook_attempts (event_id, endpoint_id, attempted_at, duration_ms, status, error)
             SELECT o.event_id, o.endpoint_id, o.attempted_at, o.duration_ms, o.status, o.error
             FROM o JOIN events e ON e.id = o.event_id
           )
           UPDATE webhook_deliveries d SET
             state = CASE WHEN o.delivered THEN 'delivered'
                          WHEN d.created_at < now() - interval '${RETRY_FOR_HOURS} hours' THEN 'failed'
                          ELSE 'pending' END,
             delivered_at = CASE WHEN o.delivered THEN o.attempted_at ELSE d.delivered_at END,
             next_attempt_at = CASE WHEN o.delivered THEN d.next_attempt_at
                                    ELSE now() + o.retry_ms * interval '1 millisecond' END
           FROM o
           WHERE d.event_id = o.event_id AND d.endpoint_id = o.endpoint_id AND d.state = 'pending'
             AND (o.attempt IS NULL OR d.attempts = o.attempt)`,
          params,
        );
        // Endpoint health: written only when it changes (a success after failures, the first
        // failure), so that deliveries to a healthy endpoint never contend on its row.
        const { rows: disabled } = await client.query<{ id: string; reason: string }>(
          `WITH o AS (
             SELECT endpoint_id, bool_or(delivered) AS any_delivered, min(attempted_at) AS first_at,
                    (array_agg(coalesce('HTTP ' || status, error) ORDER BY attempted_at DESC))[1] AS last_error
             FROM unnest($1::text[], $2::timestamptz[], $3::int[], $4::text[], $5::bool[])
               AS o(endpoint_id, attempted_at, status, error, delivered)
             GROUP BY endpoint_id
           ), health AS (
             UPDATE webhook_endpoints w
             SET failing_since = CASE WHEN o.any_delivered THEN NULL ELSE o.first_at END
             FROM o
             WHERE w.id = o.endpoint_id
               AND ((o.any_delivered AND w.failing_since IS NOT NULL)
                    OR (NOT o.any_delivered AND w.failing_since IS NULL))
           )
           UPDATE webhook_endpoints w
           SET disabled_at = now(),
               disabled_reason = 'every delivery failed for ${RETRY_FOR_HOURS} hours (since '
                 || to_char(w.failing_since AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
                 || '); the last attempt: ' || o.last_error
           FROM o
           WHERE w.id = o.endpoint_id AND NOT o.any_delivered AND w.disabled_at IS NULL
             AND w.failing_since < now() - interval '${RETRY_FOR_HOURS} hours'
           RETURNING w.id, w.disabled_reason AS reason`,
          [params[1], params[2], params[4], params[5], params[6]],
        );
        if (disabled.length > 0) {
          await client.query(
            `UPDATE webhook_deliveries SET state = 'abandoned'
             WHERE endpoint_id = ANY ($1::text[]) AND state = 'pending'`,
            [disabled.map((d) => d.id)],
          );
        }
        await client.query('COMMIT');
        return disabled;
      } catch (error) {
        if (dropped) throw dropped;
        await client.query('ROLLBACK').catch(() => undefined);
        throw error;
      } finally {
        client.removeListener('error', onDropped);
        client.release(dropped);
      }
    },

    async resend(eventId, endpointId) {
      const { rows } = await sql.query<{ endpoint_id: string }>(
        `INSERT INTO webhook_deliveries (event_id, endpoint_id, next_attempt_at, created_at)
         SELECT e.id, w.id, now(), now()
         FROM events e JOIN webhook_endpoints w ON e.type = ANY (w.events)
         WHERE e.id = $1 AND w.disabled_at IS NULL AND ($2::text IS NULL OR w.id = $2)
         ON CONFLICT (event_id, endpoint_id) DO UPDATE
           SET state = 'pending', next_attempt_at = now(), created_at = now(), attempts = 0,
               delivered_at = NULL
         RETURNING endpoint_id`,
        [eventId, endpointId ?? null],
      );
      return rows.map((r) => r.endpoint_id).sort();
    },

    async deliveriesOf(eventId) {
      const { rows } = await sql.query<{
        endpoint_id: string;
        state: DeliveryState;
        attempts: number;
        next_attempt_at: Date;
        delivered_at: Date | null;
      }>(
        `SELECT endpoint_id, state, attempts, next_attempt_at, delivered_at
         FROM webhook_deliveries WHERE event_id = $1 ORDER BY endpoint_id`,
        [eventId],
      );
      return rows.map((r) => ({
        endpointId: r.endpoint_id,
        state: r.state,
        attempts: r.attempts,
        nextAttemptAt: r.state === 'pending' ? iso(r.next_attempt_at) : null,
        deliveredAt: iso(r.delivered_at),
      }));
    },

    async attemptsOf(eventId) {
      const { rows } = await sql.query<{
        endpoint_id: string;
        attempted_at: Date;
        status: number | null;
        error: string | null;
        duration_ms: number;
      }>(
        `SELECT endpoint_id, attempted_at, status, error, duration_ms
         FROM webhook_attempts WHERE event_id = $1 ORDER BY attempted_at, id LIMIT 1000`,
        [eventId],
      );
      return rows.map((r) => ({
        endpointId: r.endpoint_id,
        attemptedAt: r.attempted_at.toISOString(),
        status: r.status,
        error: r.error,
        durationMs: r.duration_ms,
      }));
    },

    async purgeExpiredEvents(batch) {
      const { rowCount } = await sql.query(
        `DELETE FROM events WHERE id IN (
           SELECT id FROM events WHERE created_at < now() - interval '${EVENT_RETENTION_DAYS} days'
           ORDER BY created_at LIMIT $1)`,
        [batch],
      );
      return rowCount ?? 0;
    },
  };
}
