/**
 * The outbox of merchant events (DESIGN.md §7.3) against a real PostgreSQL: an event exists if
 * and only if its status change committed. The trigger of migration event_outbox writes it in the
 * transaction of the change; its `data.object` is the checkout exactly as the API shows it then.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckoutRepository } from '../../src/checkout/checkout.repository.ts';
import { newCheckoutId, toView } from '../../src/checkout/checkout.service.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { createEventsRepository, type EventsRepository } from '../../src/notifications/events.repository.ts';
import { createRepositories } from '../../src/repositories.ts';
import { type System, startSystem } from '../support/system.ts';

let system: System;
let sql: SqlPool;
let checkouts: CheckoutRepository;
let events: EventsRepository;
beforeAll(async () => {
  system = await startSystem({}, { worker: false });
  sql = createSqlPool(system.config.databaseUrl, { poolSize: 4 });
  ({ checkouts } = createRepositories(system.db, sql));
  events = createEventsRepository(system.db);
});
afterAll(async () => {
  await sql?.end();
  await system?.close();
});

async function pending(): Promise<string> {
  const id = newCheckoutId();
  await system.db.checkout.create({
    data: {
      id,
      status: 'pending',
      amount: 4990n,
      currency: 'EUR',
      bankId: 'sandbox',
      loginHint: 'alice',
      reference: `outbox-${randomBytes(3).toString('hex')}`,
      description: 'A "quoted" description — with unicode',
      bindingMessage: 'PAY-OUTBOX',
      expiresAt: new Date(Date.now() + 300_000),
    },
  });
  return id;
}

const awaiting = async (id: string) =>
  checkouts.transition(id, 'pending', 'awaiting_approval', {
    authReqId: `req-${randomBytes(8).toString('hex')}`,
    nextPollAt: new Date(Date.now() + 5_000),
  });

/** The checkout's events, each next to what the API shows of the checkout now. */
async function eventsOf(id: string) {
  return (await events.forCheckout(id)).map((e) => ({ type: e.type, object: e.data.object }));
}

describe('the event outbox', () => {
  it('writes one event per status change a merchant is told of, with the checkout as the API shows it', async () => {
    const paid = await pending();
    expect(await eventsOf(paid)).toEqual([]); // creation is no event
    const shown: unknown[] = [];
    shown.push(toView((await awaiting(paid))!));
    await checkouts.transition(paid, 'awaiting_approval', 'authorized', { subject: 'alice' }); // not news
    shown.push(
      toView(
        (await checkouts.transition(paid, 'authorized', 'succeeded', {
          bankPaymentId: 'pay_123',
          paymentStatus: 'accepted',
        }))!,
      ),
    );
    expect(await eventsOf(paid)).toEqual([
      { type: 'checkout.awaiting_approval', object: shown[0] },
      { type: 'checkout.succeeded', object: shown[1] },
    ]);

    const endings: Array<[string, (id: string) => Promise<unknown>]> = [
      ['checkout.canceled', (id) => checkouts.transition(id, 'pending', 'canceled')],
      [
        'checkout.failed',
        (id) =>
          checkouts.transition(id, 'pending', 'failed', {
            failureCode: 'unknown_user_id',
            failureMessage: 'no such customer',
          }),
      ],
      [
        'checkout.declined',
        async (id) => {
          await awaiting(id);
          return checkouts.transition(id, 'awaiting_approval', 'declined', {
            failureCode: 'access_denied',
            failureMessage: null,
          });
        },
      ],
      [
        'checkout.expired',
        async (id) => {
          await awaiting(id);
          return checkouts.transition(id, 'awaiting_approval', 'expired', { failureCode: 'expired_token' });
        },
      ],
    ];
    for (const [type, end] of endings) {
      const id = await pending();
      await end(id);
      const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
      const all = await eventsOf(id);
      expect(all.at(-1), type).toEqual({ type, object: toView(row) });
      expect(
        all.filter((e) => e.type === type),
        type,
      ).toHaveLength(1);
    }
  });

  it('writes nothing for a change that rolls back, for poll bookkeeping, or for a status set to itself', async () => {
    const id = await pending();
    const client = await sql.connect();
    try {
      await client.query('BEGIN');
      await client.query("UPDATE checkouts SET status = 'canceled' WHERE id = $1", [id]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    expect(await eventsOf(id)).toEqual([]);
    await awaiting(id);
    await sql.query(
      'UPDATE checkouts SET next_poll_at = now(), unanswered_claims = 1, step_errors = 2, status = status WHERE id = $1',
      [id],
    );
    expect((await eventsOf(id)).map((e) => e.type)).toEqual(['checkout.awaiting_approval']);
  });

  it('writes one event when two changes race for one checkout (only one commits)', async () => {
    const id = await pending();
    await awaiting(id);
    const results = await Promise.all([
      checkouts.transition(id, 'awaiting_approval', 'declined', { failureCode: 'access_denied' }),
      checkouts.transition(id, 'awaiting_approval', 'canceled'),
      checkouts.transition(id, 'awaiting_approval', 'expired', { failureCode: 'expired_token' }),
    ]);
    expect(results.filter(Boolean)).toHaveLength(1);
    const ended = (await eventsOf(id)).filter((e) => e.type !== 'checkout.awaiting_approval');
    expect(ended).toHaveLength(1);
    expect(ended[0]!.object.status).toBe(
      (await system.db.checkout.findUniqueOrThrow({ where: { id } })).status,
    );
  });

  it('lists newest first with a cursor and a type filter', async () => {
    const ids = [await pending(), await pending(), await pending()];
    for (const id of ids) await checkouts.transition(id, 'pending', 'canceled');
    const first = await events.list({ limit: 2, type: 'checkout.canceled' });
    expect(first.data).toHaveLength(2);
    expect(first.hasMore).toBe(true);
    expect(first.data.every((e) => e.type === 'checkout.canceled')).toBe(true);
    expect(first.data[0]!.data.object.id).toBe(ids[2]);
    expect(first.data[1]!.data.object.id).toBe(ids[1]);
    const next = await events.list({ limit: 2, type: 'checkout.canceled', startingAfter: first.data[1]!.id });
    expect(next.data[0]!.data.object.id).toBe(ids[0]);
    expect(await events.find(first.data[0]!.id)).toEqual(first.data[0]);
    expect(first.data[0]!.id).toMatch(/^evt_[0-9a-f]{32}$/);
  });
});
