/**
 * Webhooks end to end (DESIGN.md §7.3): checkouts driven through the public API and the sandbox
 * bank's app; events delivered by the worker to a receiver running in its own process, which
 * verifies every signature with the `standardwebhooks` package, as a merchant's server would.
 * Retries are compressed (WEBHOOK_RETRY_SCHEDULE=1: one second) and the timeout is 1.5 s, so
 * that a retry and a timeout fit in a test.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ReceivedWebhook } from '../../devstack/webhook-receiver.ts';
import { isDatabaseUnavailable, type SqlPool } from '../../src/infra/database.ts';
import { createWebhookDeliveriesRepository } from '../../src/notifications/webhook-deliveries.repository.ts';
import {
  checkoutBody,
  decideInBankApp,
  newBankCustomer,
  pendingInBankApp,
  useSystem,
} from '../support/system.ts';
import { type ReceiverProcess, startReceiverProcess } from '../support/webhook-receiver.ts';

const { http, system } = useSystem({ WEBHOOK_RETRY_SCHEDULE: '1', WEBHOOK_TIMEOUT_MS: '1500' });

type Endpoint = { id: string; url: string; events: string[]; secret: string; status: string };

async function createEndpoint(url: string, extra: Record<string, unknown> = {}): Promise<Endpoint> {
  const res = await http.post('/v1/webhook_endpoints', { url, ...extra });
  expect(res.status, await res.clone().text()).toBe(201);
  return (await res.json()) as Endpoint;
}

async function deleteEndpoint(id: string): Promise<Response> {
  return fetch(`${system().url}/v1/webhook_endpoints/${id}`, {
    method: 'DELETE',
    headers: { authorization: `Bearer ${system().apiKey}` },
  });
}

/** A checkout taken to succeeded or declined; `beforeDecision` runs once it awaits approval. */
async function checkoutTo(
  outcome: 'approve' | 'deny',
  beforeDecision?: (id: string) => Promise<void>,
): Promise<string> {
  const login = await newBankCustomer();
  const res = await http.createCheckout(checkoutBody(login));
  const { id } = (await res.json()) as { id: string };
  const request = await pendingInBankApp(login);
  await beforeDecision?.(id);
  await decideInBankApp(login, request.authReqId, outcome);
  await http.waitForStatus(id, [outcome === 'approve' ? 'succeeded' : 'declined']);
  return id;
}

const of = (checkoutId: string) => (list: ReceivedWebhook[]) =>
  list.filter((w) => w.checkoutId === checkoutId);

type EventDetail = {
  id: string;
  type: string;
  data: { object: Record<string, unknown> };
  deliveries: Array<{ endpointId: string; state: string; attempts: number }>;
  attempts: Array<{ endpointId: string; status: number | null; error: string | null; durationMs: number }>;
};

/**
 * The event of that type for the checkout, as GET /v1/events/{id} shows it once `settled` holds:
 * a receiver has an attempt's request before the worker records its outcome (outcomes are
 * written in batches), so what the API shows may lag what arrived by a moment.
 */
async function eventOf(
  checkoutId: string,
  type: string,
  settled: (event: EventDetail) => boolean = () => true,
): Promise<EventDetail> {
  const res = await http.get(`/v1/events?type=${type}&limit=100`);
  const page = (await res.json()) as { data: Array<{ id: string; data: { object: { id: string } } }> };
  const event = page.data.find((e) => e.data.object.id === checkoutId);
  if (!event) throw new Error(`no ${type} event for ${checkoutId}`);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const detail = (await (await http.get(`/v1/events/${event.id}`)).json()) as EventDetail;
    if (settled(detail) || Date.now() > deadline) return detail;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Every delivery of the event recorded as delivered (or given up). */
const recorded = (event: EventDetail) => event.deliveries.every((d) => d.state !== 'pending');

describe('webhooks, delivered to a receiver process', () => {
  let receiver: ReceiverProcess;
  let endpoint: Endpoint;

  beforeAll(async () => {
    receiver = await startReceiverProcess();
    endpoint = await createEndpoint(receiver.url, { description: 'e2e' });
    await receiver.setSecrets([endpoint.secret]);
  });
  afterAll(async () => {
    await receiver?.kill();
  });

  it('each event type arrives once per change, signed, and verifies with standardwebhooks', async () => {
    const succeeded = await checkoutTo('approve');
    const declined = await checkoutTo('deny');
    // failed: a login the bank does not know (straight from pending).
    const failedRes = await http.createCheckout(checkoutBody(`nobody-${Date.now()}`));
    const failed = ((await failedRes.json()) as { id: string }).id;
    await http.waitForStatus(failed, ['failed']);
    // expired: the 3-second bank.
    const login = await newBankCustomer();
    const expiredRes = await http.createCheckout(checkoutBody(login, { bankId: 'sandbox-short' }));
    const expired = ((await expiredRes.json()) as { id: string }).id;
    await http.waitForStatus(expired, ['expired'], 20_000);
    // canceled: before the customer answers.
    const cancelLogin = await newBankCustomer();
    const canceledRes = await http.createCheckout(checkoutBody(cancelLogin));
    const canceled = ((await canceledRes.json()) as { id: string }).id;
    await pendingInBankApp(cancelLogin);
    await http.waitForStatus(canceled, ['awaiting_approval']);
    expect((await http.post(`/v1/checkouts/${canceled}/cancel`)).status).toBe(200);

    const expected: Array<[string, string[]]> = [
      [succeeded, ['checkout.awaiting_approval', 'checkout.succeeded']],
      [declined, ['checkout.awaiting_approval', 'checkout.declined']],
      [failed, ['checkout.failed']],
      [expired, ['checkout.awaiting_approval', 'checkout.expired']],
      [canceled, ['checkout.awaiting_approval', 'checkout.canceled']],
    ];
    const all = await receiver.waitFor((list) =>
      expected.every(([id, types]) => types.every((t) => of(id)(list).some((w) => w.type === t))),
    );
    for (const [id, types] of expected) {
      const mine = of(id)(all);
      expect(mine.map((w) => w.type).sort()).toEqual([...types].sort());
      for (const webhook of mine) {
        expect(webhook.verified).toBe(true);
        expect(webhook.signatures).toBe(1);
        expect(webhook.checkoutStatus).toBe(webhook.type.slice('checkout.'.length));
      }
      // webhook-id is the event id of the events API; the event carries the checkout as the API shows it.
      const last = mine.find((w) => w.type === types.at(-1));
      const event = await eventOf(id, types.at(-1) ?? '', recorded);
      expect(last?.id).toBe(event.id);
      const { timeline: _, ...checkout } = (await (await http.get(`/v1/checkouts/${id}`)).json()) as Record<
        string,
        unknown
      >;
      expect(event.data.object).toEqual(checkout);
      expect(event.deliveries).toEqual([
        expect.objectContaining({ endpointId: endpoint.id, state: 'delivered', attempts: 1 }),
      ]);
      expect(event.attempts).toEqual([
        expect.objectContaining({ endpointId: endpoint.id, status: 204, error: null }),
      ]);
    }
  });

  it('a 500 is retried, and delivered once more with the same webhook-id', async () => {
    const id = await checkoutTo('deny', async (id) => {
      await receiver.waitFor((list) => of(id)(list).some((w) => w.type === 'checkout.awaiting_approval'));
      await receiver.setBehaviour({ kind: 'script', answers: [500] });
    });
    const got = await receiver.waitFor(
      (list) => of(id)(list).filter((w) => w.type === 'checkout.declined').length >= 2,
    );
    const declined = of(id)(got).filter((w) => w.type === 'checkout.declined');
    expect(declined.map((w) => w.answered)).toEqual([500, 204]);
    expect(declined[0]?.id).toBe(declined[1]?.id);
    const event = await eventOf(id, 'checkout.declined', recorded);
    expect(event.id).toBe(declined[0]?.id);
    expect(event.attempts.map((a) => a.status)).toEqual([500, 204]);
    expect(event.deliveries[0]).toMatchObject({ state: 'delivered', attempts: 2 });
  });

  it('a receiver that never answers times out, and the delivery is retried', async () => {
    const id = await checkoutTo('deny', async (id) => {
      await receiver.waitFor((list) => of(id)(list).some((w) => w.type === 'checkout.awaiting_approval'));
      await receiver.setBehaviour({ kind: 'script', answers: ['hang'] });
    });
    const got = await receiver.waitFor((list) =>
      of(id)(list).some((w) => w.type === 'checkout.declined' && w.answered === 204),
    );
    expect(
      of(id)(got)
        .filter((w) => w.type === 'checkout.declined')
        .map((w) => w.answered),
    ).toEqual([0, 204]);
    const event = await eventOf(id, 'checkout.declined', recorded);
    expect(event.attempts[0]).toMatchObject({ status: null, error: 'timeout' });
    expect(event.attempts[0]?.durationMs).toBeGreaterThanOrEqual(1_400);
    expect(event.attempts[1]).toMatchObject({ status: 204, error: null });
  });

  it('resend delivers the same event again, with the same webhook-id', async () => {
    const id = await checkoutTo('deny');
    await receiver.waitFor((list) => of(id)(list).some((w) => w.type === 'checkout.declined'));
    const event = await eventOf(id, 'checkout.declined', recorded);
    const res = await http.post(`/v1/events/${event.id}/resend`);
    expect(res.status).toBe(202);
    expect(((await res.json()) as { deliveries: unknown[] }).deliveries).toEqual([
      expect.objectContaining({ endpointId: endpoint.id, state: 'pending' }),
    ]);
    const got = await receiver.waitFor(
      (list) => of(id)(list).filter((w) => w.type === 'checkout.declined').length >= 2,
    );
    const both = of(id)(got).filter((w) => w.type === 'checkout.declined');
    expect(both.map((w) => w.id)).toEqual([event.id, event.id]);
    expect(both.every((w) => w.verified)).toBe(true);
  });

  it('rotation: both secrets sign for 24 h, then only the new one', async () => {
    const rotated = await http.post(`/v1/webhook_endpoints/${endpoint.id}/rotate_secret`);
    expect(rotated.status).toBe(200);
    const body = (await rotated.json()) as Endpoint & { previousSecretExpiresAt: string };
    expect(body.secret).toMatch(/^whsec_/);
    expect(body.secret).not.toBe(endpoint.secret);
    const hours = (Date.parse(body.previousSecretExpiresAt) - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);

    // During the overlap: two signatures; the receiver still on the old secret verifies.
    const during = await checkoutTo('deny');
    let got = await receiver.waitFor((list) => of(during)(list).some((w) => w.type === 'checkout.declined'));
    expect(of(during)(got).find((w) => w.type === 'checkout.declined')).toMatchObject({
      verified: true,
      signatures: 2,
    });
    // ... and one on the new secret alone verifies too.
    await receiver.setSecrets([body.secret]);
    const duringNew = await checkoutTo('deny');
    got = await receiver.waitFor((list) => of(duringNew)(list).some((w) => w.type === 'checkout.declined'));
    expect(of(duringNew)(got).find((w) => w.type === 'checkout.declined')).toMatchObject({ verified: true });

    // After 24 h (the overlap's end moved to the past): one signature, the old secret fails.
    const db = new pg.Client({ connectionString: system().config.databaseUrl });
    await db.connect();
    await db.query(
      `UPDATE webhook_endpoints SET previous_secret_until = now() - interval '1 second' WHERE id = $1`,
      [endpoint.id],
    );
    await db.end();
    await receiver.setSecrets([endpoint.secret]);
    const after = await checkoutTo('deny');
    got = await receiver.waitFor((list) => of(after)(list).some((w) => w.type === 'checkout.declined'));
    expect(of(after)(got).find((w) => w.type === 'checkout.declined')).toMatchObject({
      verified: false,
      signatures: 1,
    });
    await receiver.setSecrets([body.secret]);
    endpoint = body;
  });

  it('an endpoint receives only the types it subscribed to', async () => {
    const other = await startReceiverProcess();
    try {
      const only = await createEndpoint(other.url, { events: ['checkout.succeeded'] });
      expect(only.events).toEqual(['checkout.succeeded']);
      await other.setSecrets([only.secret]);
      const declined = await checkoutTo('deny');
      const succeeded = await checkoutTo('approve');
      const got = await other.waitFor((list) => of(succeeded)(list).length > 0);
      // The main endpoint got the declined one by now; this one, only the success.
      await receiver.waitFor((list) => of(declined)(list).some((w) => w.type === 'checkout.declined'));
      expect(of(declined)(await other.received())).toEqual([]);
      expect(of(succeeded)(got).map((w) => [w.type, w.verified])).toEqual([['checkout.succeeded', true]]);
      expect((await deleteEndpoint(only.id)).status).toBe(200);
    } finally {
      await other.kill();
    }
  });

  it('a deleted endpoint receives nothing more', async () => {
    const other = await startReceiverProcess();
    try {
      const doomed = await createEndpoint(other.url);
      await other.setSecrets([doomed.secret]);
      const before = await checkoutTo('deny');
      await other.waitFor((list) => of(before)(list).some((w) => w.type === 'checkout.declined'));
      const res = await deleteEndpoint(doomed.id);
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ id: doomed.id, deleted: true });
      expect((await http.get(`/v1/webhook_endpoints/${doomed.id}`)).status).toBe(404);
      const after = await checkoutTo('deny');
      // The endpoint still registered got it; the deleted one, nothing, even a while later.
      await receiver.waitFor((list) => of(after)(list).some((w) => w.type === 'checkout.declined'));
      await new Promise((r) => setTimeout(r, 1_500));
      expect(of(after)(await other.received())).toEqual([]);
    } finally {
      await other.kill();
    }
  });

  it('an endpoint failing for 3 days is disabled, says why, and its pending deliveries are abandoned', async () => {
    const other = await startReceiverProcess();
    try {
      const failing = await createEndpoint(other.url);
      await other.setBehaviour({ kind: 'status', status: 503 });
      // Three days of failures, compressed: the endpoint has been failing since 73 hours ago.
      const db = new pg.Client({ connectionString: system().config.databaseUrl });
      await db.connect();
      await db.query(
        `UPDATE webhook_endpoints SET failing_since = now() - interval '73 hours' WHERE id = $1`,
        [failing.id],
      );
      await db.end();
      const id = await checkoutTo('deny');
      await other.waitFor((list) => of(id)(list).length > 0);
      let view: Record<string, unknown> = {};
      for (let i = 0; i < 100 && view.status !== 'disabled'; i++) {
        view = (await (await http.get(`/v1/webhook_endpoints/${failing.id}`)).json()) as Record<
          string,
          unknown
        >;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(view).toMatchObject({ status: 'disabled' });
      expect(view.disabledReason).toMatch(/every delivery failed for 72 hours .*HTTP 503/);
      // The event that failed is abandoned, not retried; the next one is not even queued for it.
      const first = await eventOf(id, 'checkout.awaiting_approval');
      expect(first.deliveries.find((d) => d.endpointId === failing.id)?.state).toBe('abandoned');
      expect(first.attempts.find((a) => a.endpointId === failing.id)).toMatchObject({ status: 503 });
      const event = await eventOf(id, 'checkout.declined');
      expect(event.deliveries.find((d) => d.endpointId === failing.id)).toBeUndefined();
      expect(of(id)(await other.received()).map((w) => w.type)).toEqual(['checkout.awaiting_approval']);
      // A resend to it is refused.
      const res = await http.post(`/v1/events/${event.id}/resend`, { endpointId: failing.id });
      expect(res.status).toBe(409);
      expect(await res.json()).toMatchObject({ code: 'no_webhook_endpoint' });
      expect((await deleteEndpoint(failing.id)).status).toBe(200);
    } finally {
      await other.kill();
    }
  });
});

describe('webhook outcomes, written while the database drops connections', () => {
  it('a connection dropped while the outcome writer holds it fails that write with its reason; no error goes unheard', async () => {
    const url = system().config.databaseUrl;
    const pool = new pg.Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    // What a client emits with nobody listening: in a worker, an uncaught exception that ends it.
    const unheard: unknown[] = [];
    // The pool the repository is given: each connection is terminated by the server (as a restart
    // or failover does) right after BEGIN, while no statement of the writer is in flight.
    const dropping = {
      async connect() {
        const client = await pool.connect();
        const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
        const emit = client.emit.bind(client);
        client.emit = ((name: string, ...args: unknown[]) => {
          if (name === 'error' && client.listenerCount('error') === 0) {
            unheard.push(args[0]);
            return false;
          }
          return emit(name, ...args);
        }) as typeof client.emit;
        const query = client.query.bind(client) as (text: string, values?: unknown[]) => Promise<unknown>;
        let first = true;
        client.query = (async (text: string, values?: unknown[]) => {
          const result = await query(text, values);
          if (first) {
            first = false;
            const ended = new Promise((r) => client.once('end', r));
            await admin.query('SELECT pg_terminate_backend($1)', [rows[0]?.pid]);
            await ended;
          }
          return result;
        }) as unknown as typeof client.query;
        return client;
      },
    } as unknown as SqlPool;
    try {
      const deliveries = createWebhookDeliveriesRepository(dropping);
      const outcome = {
        eventId: 'evt_dropped',
        endpointId: 'we_dropped',
        attemptedAt: new Date(),
        durationMs: 5,
        status: 204,
        error: null,
        delivered: true,
        retryInMs: 0,
      };
      const failure = await deliveries.recordOutcomes([outcome]).then(
        () => null,
        (error: unknown) => error,
      );
      expect(unheard).toEqual([]);
      // The server's reason (57P01, "terminating connection due to administrator command"): one
      // the dispatcher's writer recognises as the database being unavailable, and retries.
      expect(isDatabaseUnavailable(failure)).toBe(true);
      expect(pool.idleCount).toBe(0); // the dropped connection is not pooled again
    } finally {
      await admin.end();
      await pool.end();
    }
  });
});
