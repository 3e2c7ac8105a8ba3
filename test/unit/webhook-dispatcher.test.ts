/**
 * The webhook dispatcher's claim loop (src/jobs/webhook-dispatcher.ts), with an outbox and a
 * sender in memory: when an endpoint at its in-flight limit gets its slots back while the claim
 * that left it out is still running (no nap yet to wake), the next claim comes at once, not after
 * the idle poll. (bench/RESULTS.md, webhooks note 2: the stalls this caused on a real backlog.)
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { SUCCEEDED_CHECKOUT_EXAMPLE } from '../../src/checkout/checkout.schemas.ts';
import type { WebhookSender } from '../../src/integrations/webhook.sender.ts';
import type { JobContext } from '../../src/jobs/job.context.ts';
import { startWebhookDispatcher } from '../../src/jobs/webhook-dispatcher.ts';
import type {
  DueDelivery,
  WebhookDeliveriesRepository,
} from '../../src/notifications/webhook-deliveries.repository.ts';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

describe('the webhook dispatcher', () => {
  it('claims again as soon as an endpoint at its limit has room, even if that came during a claim', async () => {
    const LIMIT = 8;
    const N = 200;
    const { timeline: _, ...object } = SUCCEEDED_CHECKOUT_EXAMPLE;
    const queued: DueDelivery[] = Array.from({ length: N }, (_, i) => ({
      eventId: `evt_${i}`,
      endpointId: 'we_1',
      attempt: 1,
      url: 'https://receiver.example/webhooks',
      secretsSealed: ['sealed'],
      type: 'checkout.succeeded',
      eventCreatedAt: new Date(0),
      object,
    }));
    const delivered = new Set<string>();
    let claimsWithoutIt = 0;
    const webhookDeliveries: Pick<
      WebhookDeliveriesRepository,
      'claimDue' | 'recordOutcomes' | 'purgeExpiredEvents'
    > = {
      async claimDue(limit, exceptEndpoints) {
        if (exceptEndpoints.includes('we_1')) {
          // The claim that leaves the endpoint out (it is at its limit) outlasts the endpoint's
          // attempts: they all end while it runs.
          claimsWithoutIt++;
          await sleep(30);
          return [];
        }
        await sleep(1);
        return queued.splice(0, limit);
      },
      async recordOutcomes(outcomes) {
        for (const o of outcomes) if (o.delivered) delivered.add(o.eventId);
        return [];
      },
      async purgeExpiredEvents() {
        return 0;
      },
    };
    const sender: WebhookSender = {
      async send() {
        await sleep(5);
        return { delivered: true, status: 204, error: null, durationMs: 5 };
      },
      async close() {},
    };
    const ctx = {
      config: {
        webhooks: {
          timeoutMs: 1_000,
          concurrency: 256,
          perEndpointConcurrency: LIMIT,
          retryScheduleSeconds: [1],
        },
      },
      keys: { decrypt: () => 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' },
      log: pino({ level: 'silent' }),
      webhookDeliveries,
    } as unknown as JobContext;

    const started = Date.now();
    // An idle poll far longer than the test: only a claim made at once can deliver in time.
    const dispatcher = startWebhookDispatcher(ctx, {
      batchSize: 100,
      idleMs: 60_000,
      flushMs: 1,
      purgeEveryMs: 3_600_000,
      sender,
    });
    try {
      while (delivered.size < N && Date.now() - started < 10_000) await sleep(10);
    } finally {
      await dispatcher.close();
    }
    expect(delivered.size).toBe(N);
    expect(claimsWithoutIt).toBeGreaterThan(0);
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
