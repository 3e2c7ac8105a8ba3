/**
 * Webhook delivery (DESIGN.md §7.3), the mechanism: each worker process runs one dispatcher that
 * claims due deliveries from the outbox (webhook-deliveries.repository.ts), makes one signed
 * attempt per claimed delivery (webhook.sender.ts), and writes the outcomes in batches. When a
 * failed delivery is tried again is webhook-retry.policy.ts.
 *
 * Isolation: at most `perEndpointConcurrency` attempts in flight to one endpoint per process, and
 * an endpoint at its limit is left out of the next claim, so an endpoint that hangs for the whole
 * 10 s timeout holds its own slots only; deliveries to the others go on at full speed.
 * A crash loses nothing: a claimed delivery whose outcome was not written is claimed again when
 * its lease (the timeout + 20 s) lapses. Old events are purged here too (once an hour).
 */

import { CheckoutSchema, type CheckoutView } from '../checkout/checkout.schemas.ts';
import { createWebhookSender, type WebhookSender } from '../integrations/webhook.sender.ts';
import type { EventView } from '../notifications/events.repository.ts';
import type { AttemptOutcome, DueDelivery } from '../notifications/webhook-deliveries.repository.ts';
import { persistBankAnswer } from './bank-step.ts';
import type { JobContext } from './job.context.ts';
import { type BatchWriter, createBatchWriter, createNap } from './loop-parts.ts';
import { retryDelayMs } from './webhook-retry.policy.ts';

export interface WebhookDispatcherOptions {
  /** Largest batch one claim takes. */
  batchSize: number;
  /** How often to look for due deliveries when there were none (ms): bounds the lateness it adds. */
  idleMs: number;
  /** How long an outcome may wait to be written with others (ms). */
  flushMs: number;
  /** How often old events are purged (ms). */
  purgeEveryMs: number;
  /** The sender (default: one made from the configuration, closed with the dispatcher). */
  sender?: WebhookSender;
}

export const DEFAULT_WEBHOOK_DISPATCHER_OPTIONS: WebhookDispatcherOptions = {
  batchSize: 100,
  idleMs: 100,
  flushMs: 20,
  purgeEveryMs: 3_600_000,
};

export interface WebhookDispatcher {
  /** Stops claiming, waits for the attempts in flight and writes their outcomes (once: a second call waits for the first). */
  close(): Promise<void>;
}

/** The checkout's members in the order the API shows them (PostgreSQL's jsonb keeps its own order). */
const CHECKOUT_KEYS = Object.keys(CheckoutSchema.properties).filter(
  (k) => k !== 'clientSecret' && k !== 'timeline',
);

function inApiOrder(object: CheckoutView): CheckoutView {
  const ordered: Record<string, unknown> = {};
  for (const key of CHECKOUT_KEYS) if (key in object) ordered[key] = object[key as keyof CheckoutView];
  return Object.assign(ordered, object) as CheckoutView;
}

/**
 * The body of an event's webhook: the event as GET /v1/events/{id} shows it (DESIGN.md §7.3),
 * `{ id, type, createdAt, data: { object } }`; the same bytes on every attempt and resend.
 */
export function webhookBody(
  delivery: Pick<DueDelivery, 'eventId' | 'type' | 'eventCreatedAt' | 'object'>,
): string {
  const event: EventView = {
    id: delivery.eventId,
    type: delivery.type,
    createdAt: delivery.eventCreatedAt.toISOString(),
    data: { object: inApiOrder(delivery.object) },
  };
  return JSON.stringify(event);
}

export function startWebhookDispatcher(
  ctx: JobContext,
  options: WebhookDispatcherOptions = DEFAULT_WEBHOOK_DISPATCHER_OPTIONS,
): WebhookDispatcher {
  const settings = ctx.config.webhooks;
  const sender = options.sender ?? createWebhookSender({ timeoutMs: settings.timeoutMs });
  const leaseMs = settings.timeoutMs + 20_000;
  const inFlight = new Set<Promise<unknown>>();
  const perEndpoint = new Map<string, number>();
  const writer = createOutcomeWriter(ctx, options.flushMs, options.batchSize);
  // Opened secrets by endpoint and sealed form: a few endpoints, at most two secrets each. The
  // endpoint is part of the key: a sealed secret is bound to its endpoint (crypto.ts), and one
  // copied to another row must fail to open there, not be served from here.
  const secrets = new Map<string, string>();
  const openSecret = (sealed: string, endpointId: string) => {
    const key = `${endpointId} ${sealed}`;
    let secret = secrets.get(key);
    if (secret === undefined) {
      if (secrets.size > 1000) secrets.clear();
      secret = ctx.keys.decrypt(sealed, endpointId);
      secrets.set(key, secret);
    }
    return secret;
  };

  let stopped = false;
  const { nap, wake } = createNap();
  // Set when an attempt ends that frees the slot a claim lacked (the process's last one, or that
  // of an endpoint at its limit). It may end while a claim is running, when there is no nap to
  // wake: the loop then claims again at once rather than napping with room and deliveries due.
  let roomMade = false;

  const attempt = async (delivery: DueDelivery) => {
    const attemptedAt = new Date();
    let outcome: AttemptOutcome;
    try {
      const result = await sender.send(
        delivery.url,
        {
          id: delivery.eventId,
          body: webhookBody(delivery),
          secrets: delivery.secretsSealed.map((s) => openSecret(s, delivery.endpointId)),
        },
        attemptedAt,
      );
      outcome = {
        eventId: delivery.eventId,
        endpointId: delivery.endpointId,
        attemptedAt,
        durationMs: result.durationMs,
        status: result.status,
        error: result.error,
        delivered: result.delivered,
        retryInMs: result.delivered ? 0 : retryDelayMs(delivery.attempt, settings.retryScheduleSeconds),
        attempt: delivery.attempt,
      };
    } catch (error) {
      // A secret that no configured key opens (TOKEN_ENCRYPTION_KEYS lost the key that sealed it):
      // nothing can be signed; retried on the schedule, and visible in the attempts.
      ctx.log.error(
        { event: delivery.eventId, endpoint: delivery.endpointId, err: (error as Error).message },
        'webhook not sent: its secret could not be opened',
      );
      outcome = {
        eventId: delivery.eventId,
        endpointId: delivery.endpointId,
        attemptedAt,
        durationMs: 0,
        status: null,
        error: 'secret_unavailable',
        delivered: false,
        retryInMs: retryDelayMs(delivery.attempt, settings.retryScheduleSeconds),
        attempt: delivery.attempt,
      };
    }
    if (!outcome.delivered) {
      ctx.log.info(
        {
          event: delivery.eventId,
          endpoint: delivery.endpointId,
          attempt: delivery.attempt,
          status: outcome.status ?? undefined,
          code: outcome.error ?? undefined,
          retryInMs: outcome.retryInMs,
        },
        'webhook attempt failed; retrying later',
      );
    } else {
      ctx.log.debug(
        { event: delivery.eventId, endpoint: delivery.endpointId, attempt: delivery.attempt },
        'webhook delivered',
      );
    }
    writer.add(outcome);
  };

  const loop = async () => {
    while (!stopped) {
      roomMade = false;
      // A claim may be all one endpoint's deliveries (those due first): never more than one endpoint
      // may have in flight, nor more than any endpoint with some in flight may still take.
      let want = Math.min(
        settings.concurrency - inFlight.size,
        options.batchSize,
        settings.perEndpointConcurrency,
      );
      const busy: string[] = [];
      for (const [endpoint, n] of perEndpoint) {
        if (n >= settings.perEndpointConcurrency) busy.push(endpoint);
        else want = Math.min(want, settings.perEndpointConcurrency - n);
      }
      let claimed = 0;
      if (want > 0) {
        try {
          const due = await ctx.webhookDeliveries.claimDue(want, busy, leaseMs);
          claimed = due.length;
          for (const delivery of due) {
            const run = attempt(delivery);
            inFlight.add(run);
            perEndpoint.set(delivery.endpointId, (perEndpoint.get(delivery.endpointId) ?? 0) + 1);
            void run.finally(() => {
              inFlight.delete(run);
              const left = (perEndpoint.get(delivery.endpointId) ?? 1) - 1;
              if (left === 0) perEndpoint.delete(delivery.endpointId);
              else perEndpoint.set(delivery.endpointId, left);
              if (
                inFlight.size === settings.concurrency - 1 ||
                left === settings.perEndpointConcurrency - 1
              ) {
                roomMade = true;
                wake();
              }
            });
          }
        } catch (err) {
          ctx.log.warn({ err: (err as Error).message }, 'could not claim due webhook deliveries; retrying');
          await nap(1_000);
          continue;
        }
      }
      if (claimed > 0 && claimed === want) await new Promise((r) => setImmediate(r));
      else if (!roomMade) await nap(options.idleMs);
    }
  };
  const running = loop();

  const purge = async () => {
    try {
      let purged = 0;
      for (let n = 1_000; n === 1_000 && !stopped; purged += n) {
        n = await ctx.webhookDeliveries.purgeExpiredEvents(1_000);
      }
      if (purged > 0) ctx.log.info({ purged }, 'purged events older than the retention');
    } catch (err) {
      ctx.log.warn({ err: (err as Error).message }, 'could not purge old events; trying again later');
    }
  };
  const purgeTimer = setInterval(purge, options.purgeEveryMs);
  purgeTimer.unref();

  let closing: Promise<void> | undefined;
  return {
    close() {
      // Once: a second close (a worker runtime closed twice) waits for the first, and does not
      // close the sender's connection pools again (undici refuses that of a closed pool).
      closing ??= (async () => {
        stopped = true;
        clearInterval(purgeTimer);
        wake();
        await running;
        await Promise.all(inFlight);
        await writer.close();
        if (!options.sender) await sender.close();
      })();
      return closing;
    },
  };
}

/** Collects attempt outcomes and writes them in batches (at most `flushMs` later). */
function createOutcomeWriter(
  ctx: JobContext,
  flushMs: number,
  maxBatch: number,
): BatchWriter<AttemptOutcome> {
  return createBatchWriter<AttemptOutcome>(flushMs, maxBatch, async (outcomes) => {
    try {
      const disabled = await persistBankAnswer(ctx, 'webhook attempts', () =>
        ctx.webhookDeliveries.recordOutcomes(outcomes),
      );
      for (const endpoint of disabled) {
        ctx.log.warn({ endpoint: endpoint.id, reason: endpoint.reason }, 'webhook endpoint disabled');
      }
    } catch (err) {
      // Nothing is lost: these deliveries are claimed again when their lease lapses (and may
      // then arrive twice, which at-least-once delivery allows: the webhook-id is the same).
      ctx.log.warn(
        { err: (err as Error).message, outcomes: outcomes.length },
        'could not record webhook attempts',
      );
    }
  });
}
