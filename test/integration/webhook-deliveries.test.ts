/**
 * Webhook deliveries against a real PostgreSQL (DESIGN.md §7.3,
 * src/notifications/webhook-deliveries.repository.ts, src/jobs/webhook-dispatcher.ts): the give-up
 * after 3 days by the delivery's age, the 30-day purge of events with their deliveries and
 * attempts, which secrets sign during and after a rotation, secrets sealed at rest, and one
 * hanging endpoint that must not hold up deliveries to another (real HTTP receivers, the
 * dispatcher as the worker runs it, its logs captured and searched for secrets).
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import pino from 'pino';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newCheckoutId } from '../../src/checkout/checkout.service.ts';
import { createKeyRing, type KeyRing } from '../../src/infra/crypto.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { loggerOptions } from '../../src/infra/logging.ts';
import { signWebhook } from '../../src/integrations/webhook.sender.ts';
import {
  DEFAULT_WEBHOOK_DISPATCHER_OPTIONS,
  startWebhookDispatcher,
} from '../../src/jobs/webhook-dispatcher.ts';
import { RETRY_FOR_HOURS } from '../../src/notifications/webhook-deliveries.repository.ts';
import {
  createWebhookEndpoint,
  rotateWebhookSecret,
  type WebhookDeps,
} from '../../src/notifications/webhooks.service.ts';
import { createRepositories, type Repositories } from '../../src/repositories.ts';
import { type System, startSystem } from '../support/system.ts';

interface Harness {
  system: System;
  sql: SqlPool;
  repos: Repositories;
  keys: KeyRing;
  deps: WebhookDeps;
}

async function harness(overrides: Record<string, string> = {}): Promise<Harness> {
  const system = await startSystem(overrides, { worker: false });
  const sql = createSqlPool(system.config.databaseUrl, { poolSize: 4 });
  const repos = createRepositories(system.db, sql);
  const keys = createKeyRing(system.config.tokenEncryptionKeys);
  return { system, sql, repos, keys, deps: { ...repos, keys } };
}

async function closeHarness(h: Harness | undefined): Promise<void> {
  await h?.sql.end();
  await h?.system.close();
}

/** A checkout canceled straight from pending: one checkout.canceled event, fanned out by the trigger. */
async function newEvent(h: Harness): Promise<string> {
  const id = newCheckoutId();
  await h.system.db.checkout.create({
    data: {
      id,
      status: 'pending',
      amount: 4990n,
      currency: 'EUR',
      bankId: 'sandbox',
      loginHint: 'alice',
      reference: `wh-${randomBytes(3).toString('hex')}`,
      bindingMessage: 'PAY-WEBHOOK',
      expiresAt: new Date(Date.now() + 300_000),
    },
  });
  await h.repos.checkouts.transition(id, 'pending', 'canceled');
  const [event] = await h.repos.events.forCheckout(id);
  if (!event) throw new Error('no event written');
  return event.id;
}

async function delivery(h: Harness, eventId: string, endpointId: string) {
  const { rows } = await h.sql.query<{
    state: string;
    attempts: number;
    next_attempt_at: Date;
    delivered_at: Date | null;
    due_in_ms: number;
  }>(
    `SELECT state, attempts, next_attempt_at, delivered_at,
            extract(epoch FROM next_attempt_at - now()) * 1000 AS due_in_ms
     FROM webhook_deliveries WHERE event_id = $1 AND endpoint_id = $2`,
    [eventId, endpointId],
  );
  return rows[0];
}

describe('deliveries, attempts, rotation and retention in the database', () => {
  let h: Harness;
  beforeAll(async () => {
    h = await harness();
  });
  afterAll(async () => {
    await closeHarness(h);
  });

  /**
   * Claims the deliveries of `eventId`, made due (every other pending one due later). A second
   * ago, not now(): the column keeps milliseconds, and now() rounded up is not due yet for a claim
   * in the same millisecond.
   */
  async function claim(eventId: string) {
    await h.sql.query(
      `UPDATE webhook_deliveries
       SET next_attempt_at = CASE WHEN event_id = $1 THEN now() - interval '1 second' ELSE now() + interval '1 hour' END
       WHERE state = 'pending'`,
      [eventId],
    );
    const due = await h.repos.webhookDeliveries.claimDue(100, [], 30_000);
    return due.filter((d) => d.eventId === eventId);
  }

  it(`gives a delivery up (failed) once it is older than ${RETRY_FOR_HOURS} h; a younger one stays pending, due after the retry`, async () => {
    const endpoint = await createWebhookEndpoint(h.deps, { url: 'https://old.shop.example/h' });
    const old = await newEvent(h);
    const young = await newEvent(h);
    await h.sql.query(
      `UPDATE webhook_deliveries SET created_at = now() - interval '72 hours 1 minute' WHERE event_id = $1`,
      [old],
    );
    await h.sql.query(
      `UPDATE webhook_deliveries SET created_at = now() - interval '71 hours 59 minutes' WHERE event_id = $1`,
      [young],
    );
    const claimed = [...(await claim(old)), ...(await claim(young))];
    expect(claimed.map((d) => [d.eventId, d.endpointId, d.attempt])).toEqual([
      [old, endpoint.id, 1],
      [young, endpoint.id, 1],
    ]);
    const now = new Date();
    await h.repos.webhookDeliveries.recordOutcomes(
      [old, young].map((eventId) => ({
        eventId,
        endpointId: endpoint.id,
        attemptedAt: now,
        durationMs: 12,
        status: 503,
        error: null,
        delivered: false,
        retryInMs: 120_000,
      })),
    );
    expect(await delivery(h, old, endpoint.id)).toMatchObject({ state: 'failed', attempts: 1 });
    const pending = await delivery(h, young, endpoint.id);
    expect(pending).toMatchObject({ state: 'pending', attempts: 1, delivered_at: null });
    expect(Number(pending?.due_in_ms)).toBeGreaterThan(115_000);
    expect(Number(pending?.due_in_ms)).toBeLessThanOrEqual(120_000);
    // The attempts are recorded either way, and the events API shows them.
    expect(await h.repos.webhookDeliveries.attemptsOf(old)).toEqual([
      { endpointId: endpoint.id, attemptedAt: now.toISOString(), status: 503, error: null, durationMs: 12 },
    ]);
    expect(await h.repos.webhookDeliveries.deliveriesOf(old)).toEqual([
      { endpointId: endpoint.id, state: 'failed', attempts: 1, nextAttemptAt: null, deliveredAt: null },
    ]);
    // A failed delivery is not claimed again.
    expect(await claim(old)).toEqual([]);
  });

  it('a success on the last attempt is delivered, even past the 3 days; a late outcome changes nothing after', async () => {
    const endpoint = await createWebhookEndpoint(h.deps, { url: 'https://late.shop.example/h' });
    const eventId = await newEvent(h);
    await h.sql.query(
      `UPDATE webhook_deliveries SET created_at = now() - interval '80 hours' WHERE event_id = $1 AND endpoint_id = $2`,
      [eventId, endpoint.id],
    );
    await claim(eventId);
    const outcome = {
      eventId,
      endpointId: endpoint.id,
      attemptedAt: new Date(),
      durationMs: 5,
      status: 200,
      error: null,
      delivered: true,
      retryInMs: 0,
    };
    await h.repos.webhookDeliveries.recordOutcomes([outcome]);
    expect(await delivery(h, eventId, endpoint.id)).toMatchObject({ state: 'delivered' });
    // The outcome of a duplicate attempt (a lease that lapsed) arriving later: still delivered.
    await h.repos.webhookDeliveries.recordOutcomes([
      { ...outcome, attemptedAt: new Date(), status: 500, delivered: false, retryInMs: 1_000 },
    ]);
    expect(await delivery(h, eventId, endpoint.id)).toMatchObject({ state: 'delivered' });
  });

  it('a resend starts the 3 days again, for a failed delivery too', async () => {
    const endpoint = await createWebhookEndpoint(h.deps, { url: 'https://again.shop.example/h' });
    const eventId = await newEvent(h);
    await h.sql.query(
      `UPDATE webhook_deliveries SET state = 'failed', attempts = 14, created_at = now() - interval '73 hours'
       WHERE event_id = $1 AND endpoint_id = $2`,
      [eventId, endpoint.id],
    );
    expect(await h.repos.webhookDeliveries.resend(eventId, endpoint.id)).toEqual([endpoint.id]);
    expect(await delivery(h, eventId, endpoint.id)).toMatchObject({ state: 'pending', attempts: 0 });
    const [claimed] = await claim(eventId).then((d) => d.filter((x) => x.endpointId === endpoint.id));
    expect(claimed?.attempt).toBe(1);
  });

  it('an outcome settles only the attempt it belongs to: a resend while an attempt is in flight is not swallowed', async () => {
    const endpoint = await createWebhookEndpoint(h.deps, { url: 'https://inflight.shop.example/h' });
    const eventId = await newEvent(h);
    const [first] = (await claim(eventId)).filter((d) => d.endpointId === endpoint.id);
    expect(first?.attempt).toBe(1);
    // The merchant resends while that attempt is still on its way.
    expect(await h.repos.webhookDeliveries.resend(eventId, endpoint.id)).toEqual([endpoint.id]);
    const outcome = {
      eventId,
      endpointId: endpoint.id,
      attemptedAt: new Date(),
      durationMs: 5,
      status: 204,
      error: null,
      delivered: true,
      retryInMs: 0,
      attempt: 1,
    };
    await h.repos.webhookDeliveries.recordOutcomes([outcome]);
    // The attempt is recorded; the resent delivery is still to be made.
    expect(await delivery(h, eventId, endpoint.id)).toMatchObject({ state: 'pending', attempts: 0 });
    expect((await h.repos.webhookDeliveries.attemptsOf(eventId)).map((a) => a.status)).toEqual([204]);
    const [second] = (await claim(eventId)).filter((d) => d.endpointId === endpoint.id);
    expect(second?.attempt).toBe(1);
    await h.repos.webhookDeliveries.recordOutcomes([{ ...outcome, attemptedAt: new Date() }]);
    expect(await delivery(h, eventId, endpoint.id)).toMatchObject({ state: 'delivered', attempts: 1 });
  });

  it('purges events older than 30 days with their deliveries and attempts, and keeps the rest', async () => {
    const endpoint = await createWebhookEndpoint(h.deps, { url: 'https://purge.shop.example/h' });
    const [expired, alsoExpired, kept] = [await newEvent(h), await newEvent(h), await newEvent(h)];
    for (const eventId of [expired, alsoExpired, kept]) {
      await claim(eventId);
      await h.repos.webhookDeliveries.recordOutcomes([
        {
          eventId,
          endpointId: endpoint.id,
          attemptedAt: new Date(),
          durationMs: 1,
          status: 500,
          error: null,
          delivered: false,
          retryInMs: 1_000,
        },
      ]);
    }
    await h.sql.query(
      `UPDATE events SET created_at = now() - interval '30 days 1 minute' WHERE id = ANY ($1)`,
      [[expired, alsoExpired]],
    );
    await h.sql.query(`UPDATE events SET created_at = now() - interval '29 days 23 hours' WHERE id = $1`, [
      kept,
    ]);
    const count = async (table: string, eventId: string) =>
      Number(
        (
          await h.sql.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} WHERE event_id = $1`, [
            eventId,
          ])
        ).rows[0]?.n,
      );
    expect(await count('webhook_attempts', expired)).toBe(1);
    // In batches: one, then the other, then none.
    expect(await h.repos.webhookDeliveries.purgeExpiredEvents(1)).toBe(1);
    expect(await h.repos.webhookDeliveries.purgeExpiredEvents(1_000)).toBe(1);
    expect(await h.repos.webhookDeliveries.purgeExpiredEvents(1_000)).toBe(0);
    for (const eventId of [expired, alsoExpired]) {
      expect(await h.repos.events.find(eventId)).toBeNull();
      expect(await count('webhook_deliveries', eventId)).toBe(0);
      expect(await count('webhook_attempts', eventId)).toBe(0);
    }
    expect(await h.repos.events.find(kept)).not.toBeNull();
    expect(await count('webhook_deliveries', kept)).toBeGreaterThan(0);
    expect(await count('webhook_attempts', kept)).toBe(1);
    // The endpoint itself is not touched.
    expect(await h.repos.webhookEndpoints.find(endpoint.id)).not.toBeNull();
  });

  it('stores the secret sealed (AES-GCM, bound to the endpoint id), never in the clear', async () => {
    const endpoint = await createWebhookEndpoint(h.deps, { url: 'https://sealed.shop.example/h' });
    const rotated = await rotateWebhookSecret(h.deps, endpoint.id);
    const { rows } = await h.sql.query<Record<string, unknown>>(
      `SELECT * FROM webhook_endpoints WHERE id = $1`,
      [endpoint.id],
    );
    const row = JSON.stringify(rows[0]);
    for (const secret of [endpoint.secret, rotated.secret]) {
      expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
      expect(Buffer.from(secret.slice('whsec_'.length), 'base64')).toHaveLength(32);
      const key = secret.slice('whsec_'.length);
      expect(row).not.toContain(key);
      expect(row).not.toContain(Buffer.from(key, 'base64').toString('base64url'));
      expect(row).not.toContain(Buffer.from(key, 'base64').toString('hex'));
    }
    const sealed = rows[0]?.secret_sealed as string;
    expect(sealed).toMatch(/^v2\./);
    expect(h.keys.decrypt(sealed, endpoint.id)).toBe(rotated.secret);
    expect(h.keys.decrypt(rows[0]?.previous_secret_sealed as string, endpoint.id)).toBe(endpoint.secret);
    // Copied to another endpoint's row, it does not open there.
    const other = await createWebhookEndpoint(h.deps, { url: 'https://sealed2.shop.example/h' });
    expect(() => h.keys.decrypt(sealed, other.id)).toThrow();
  });

  it('rotation: the new and the previous secret sign for 24 h, then only the new one; a second rotation drops the first secret', async () => {
    const endpoint = await createWebhookEndpoint(h.deps, {
      url: 'https://rotate.shop.example/h',
      events: ['checkout.canceled'],
    });
    const signedWith = async (eventId: string) => {
      const [due] = (await claim(eventId)).filter((d) => d.endpointId === endpoint.id);
      if (!due) throw new Error('not claimed');
      return due.secretsSealed.map((s) => h.keys.decrypt(s, endpoint.id));
    };
    /** Which of `secrets` verify a delivery signed as the dispatcher would sign it now. */
    const verifying = (signers: string[], secrets: string[]) => {
      const message = { id: 'evt_x', body: '{"a":1}', secrets: signers };
      const now = new Date();
      const headers = {
        'webhook-id': message.id,
        'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
        'webhook-signature': signWebhook(message, now),
      };
      return secrets.filter((secret) => {
        try {
          new Webhook(secret).verify(message.body, headers);
          return true;
        } catch {
          return false;
        }
      });
    };

    const first = await newEvent(h);
    expect(await signedWith(first)).toEqual([endpoint.secret]);

    const rotated = await rotateWebhookSecret(h.deps, endpoint.id);
    expect(rotated.secret).not.toBe(endpoint.secret);
    expect(Date.parse(rotated.previousSecretExpiresAt ?? '') - Date.now()).toBeGreaterThan(23.9 * 3_600_000);
    const during = await signedWith(first);
    expect(during).toEqual([rotated.secret, endpoint.secret]);
    expect(verifying(during, [endpoint.secret, rotated.secret])).toEqual([endpoint.secret, rotated.secret]);

    // Rotated again within the 24 h: the newest two sign; the first no longer.
    const again = await rotateWebhookSecret(h.deps, endpoint.id);
    const twice = await signedWith(first);
    expect(twice).toEqual([again.secret, rotated.secret]);
    expect(verifying(twice, [endpoint.secret, rotated.secret, again.secret])).toEqual([
      rotated.secret,
      again.secret,
    ]);

    // 24 h later: only the newest.
    await h.sql.query(
      `UPDATE webhook_endpoints SET previous_secret_until = now() - interval '1 millisecond' WHERE id = $1`,
      [endpoint.id],
    );
    const after = await signedWith(first);
    expect(after).toEqual([again.secret]);
    expect(verifying(after, [endpoint.secret, rotated.secret, again.secret])).toEqual([again.secret]);
    const view = await h.repos.webhookEndpoints.find(endpoint.id);
    expect(view?.previousSecretSealed).not.toBeNull(); // still stored, no longer used
  });
});

describe('one hanging endpoint does not hold up another', () => {
  const CONCURRENCY = 2;
  let h: Harness;
  const lines: string[] = [];
  beforeAll(async () => {
    h = await harness({
      WEBHOOK_ENDPOINT_CONCURRENCY: String(CONCURRENCY),
      WEBHOOK_TIMEOUT_MS: '8000',
      WEBHOOK_RETRY_SCHEDULE: '60',
    });
  });
  afterAll(async () => {
    await closeHarness(h);
  });

  async function listen(server: Server): Promise<string> {
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
  }

  it(`deliveries to a receiver go on while another hangs with more than ${CONCURRENCY} in flight; the hanging one never gets more than ${CONCURRENCY} at once`, async () => {
    // The hanging receiver: reads each delivery, never answers; counts what it holds at once.
    let holding = 0;
    let mostHeld = 0;
    const held = new Set<Socket>();
    const hanging = createServer((req) => {
      holding++;
      mostHeld = Math.max(mostHeld, holding);
      held.add(req.socket);
      req.resume();
      req.socket.once('close', () => {
        holding--;
        held.delete(req.socket);
      });
    });
    const arrived: number[] = [];
    const prompt = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        arrived.push(Date.now());
        res.writeHead(204).end();
      });
    });
    const [hangingUrl, promptUrl] = await Promise.all([listen(hanging), listen(prompt)]);
    const slow = await createWebhookEndpoint(h.deps, { url: hangingUrl, description: 'hangs' });
    const fast = await createWebhookEndpoint(h.deps, { url: promptUrl, description: 'answers' });
    // An endpoint whose sealed secret was copied from another row: it cannot be opened here.
    const copied = await createWebhookEndpoint(h.deps, { url: promptUrl, events: ['checkout.canceled'] });
    await h.sql.query(
      `UPDATE webhook_endpoints SET secret_sealed = (SELECT secret_sealed FROM webhook_endpoints WHERE id = $1)
       WHERE id = $2`,
      [slow.id, copied.id],
    );

    const EVENTS = 4 * CONCURRENCY;
    const events: string[] = [];
    for (let i = 0; i < EVENTS; i++) events.push(await newEvent(h));

    const log = pino(
      loggerOptions('trace', 'bankpay-worker'),
      new (await import('node:stream')).Writable({
        write(chunk, _encoding, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    );
    const started = Date.now();
    const dispatcher = startWebhookDispatcher(
      {
        ...h.repos,
        config: h.system.config,
        queue: h.system.queue.queue,
        keys: h.keys,
        banks: h.system.banks,
        log,
      },
      DEFAULT_WEBHOOK_DISPATCHER_OPTIONS,
    );
    try {
      // Every delivery to the prompt receiver, well within the hanging one's 8 s timeout.
      const deadline = Date.now() + 5_000;
      while (arrived.length < EVENTS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      expect(arrived).toHaveLength(EVENTS);
      expect(Math.max(...arrived) - started).toBeLessThan(4_000);
      expect(holding).toBe(CONCURRENCY);
      expect(mostHeld).toBe(CONCURRENCY);
      // ... and recorded delivered (outcomes are written in batches, a few ms later).
      const states = async () =>
        (
          await h.sql.query<{ state: string; n: string }>(
            `SELECT state, count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1 GROUP BY state`,
            [fast.id],
          )
        ).rows;
      while ((await states()).some((r) => r.state !== 'delivered') && Date.now() < deadline + 1_000) {
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(await states()).toEqual([{ state: 'delivered', n: String(EVENTS) }]);
    } finally {
      // The hanging receiver goes away: its attempts end now (and are retried in a minute).
      for (const socket of held) socket.destroy();
      hanging.close();
      await dispatcher.close();
      await dispatcher.close(); // a second close waits for the first, harmlessly
      prompt.close();
    }
    expect(mostHeld).toBe(CONCURRENCY);
    const attempts = await h.repos.webhookDeliveries.attemptsOf(events[0] ?? '');
    expect(attempts.find((a) => a.endpointId === fast.id)).toMatchObject({ status: 204, error: null });
    expect(attempts.find((a) => a.endpointId === copied.id)).toMatchObject({
      status: null,
      error: 'secret_unavailable',
    });

    // The worker's logs (trace level) name endpoints and events, never a secret.
    const all = lines.join('');
    expect(all).toMatch(/webhook attempt failed/);
    expect(all).toMatch(/its secret could not be opened/);
    for (const secret of [slow.secret, fast.secret, copied.secret]) {
      expect(all).not.toContain(secret.slice('whsec_'.length));
    }
    expect(all).not.toMatch(/whsec_/);
  });
});
