/**
 * The fan-out of live status against a real PostgreSQL: the trigger of migration
 * `checkout_changed_notify` announces exactly the changes a reader sees, and only once they are
 * committed; CheckoutWatch hands each change to every follower with shared reads, and finds what
 * a lost notification or a dropped LISTEN connection hid.
 *
 * Absence is checked by order, not by waiting: PostgreSQL delivers notifications in commit order,
 * so when an update of checkout A that must not notify is followed by one of B that must, the next
 * notification is B's.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckoutRepository } from '../../src/checkout/checkout.repository.ts';
import { newCheckoutId } from '../../src/checkout/checkout.service.ts';
import {
  CHECKOUT_CHANGED_CHANNEL,
  type CheckoutState,
  CheckoutWatch,
} from '../../src/checkout/checkout.watch.ts';
import type { PollScheduleRepository } from '../../src/checkout/poll-schedule.repository.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { type NotificationSource, PgListener } from '../../src/infra/pg-listen.ts';
import { createRepositories } from '../../src/repositories.ts';
import { eventually, type System, startSystem } from '../support/system.ts';

let system: System;
let sql: SqlPool;
let checkouts: CheckoutRepository;
let schedule: PollScheduleRepository;
let listener: pg.Client;
const heard: string[] = [];

beforeAll(async () => {
  system = await startSystem({}, { worker: false });
  sql = createSqlPool(system.config.databaseUrl, { poolSize: 4 });
  ({ checkouts, pollSchedule: schedule } = createRepositories(system.db, sql));
  listener = new pg.Client({ connectionString: system.config.databaseUrl });
  await listener.connect();
  listener.on('notification', (n) => heard.push(n.payload ?? ''));
  await listener.query(`LISTEN ${CHECKOUT_CHANGED_CHANNEL}`);
});
afterAll(async () => {
  await listener?.end();
  await sql?.end();
  await system?.close();
});

async function awaiting(): Promise<string> {
  const id = newCheckoutId();
  await system.db.checkout.create({
    data: {
      id,
      status: 'awaiting_approval',
      amount: 100n,
      currency: 'EUR',
      bankId: 'sandbox',
      loginHint: 'alice',
      reference: 'watch',
      bindingMessage: 'PAY-WATCH',
      expiresAt: new Date(Date.now() + 60_000),
      authReqId: `req-${randomBytes(8).toString('hex')}`,
      pollIntervalS: 5,
      nextPollAt: new Date(Date.now() - 1_000),
    },
  });
  return id;
}

/** The next notification heard after `from` (an index into `heard`). */
const nextHeard = (from: number) =>
  eventually(async () => heard[from], 5_000, 'a notification on checkout_changed');

describe('the checkout_changed trigger', () => {
  it('announces a status change with the id, and nothing for token poll bookkeeping', async () => {
    const [a, b] = [await awaiting(), await awaiting()];
    const mark = heard.length;
    // A token poll on A: claim, then an "ask again later" answer, as the poller records them.
    const [claim] = await schedule.claimDue(15, 10);
    expect(claim?.id).toBe(a);
    await schedule.recordAnswers([
      {
        id: a,
        lease: claim!.lease,
        waitMs: 5_000,
        minWaitMs: 5_000,
        stepErrors: 0,
        outcome: 'authorization_pending',
        detail: {},
      },
    ]);
    await sql.query('UPDATE checkouts SET unanswered_claims = 3, step_errors = 2 WHERE id = $1', [a]);
    await checkouts.transition(b, 'awaiting_approval', 'canceled');
    expect(await nextHeard(mark)).toBe(b);
  });

  it('says nothing for a change rolled back', async () => {
    const [a, b] = [await awaiting(), await awaiting()];
    const mark = heard.length;
    const client = await sql.connect();
    try {
      await client.query('BEGIN');
      await client.query(`UPDATE checkouts SET status = 'canceled', updated_at = now() WHERE id = $1`, [a]);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await checkouts.updateWhileInStatus(b, 'awaiting_approval', { stepErrors: 1 });
    // updateWhileInStatus goes through Prisma, which moves updatedAt: a change a reader sees.
    expect(await nextHeard(mark)).toBe(b);
  });
});

/** A source that never notifies: only the sweeps find changes. */
const silent = (): NotificationSource => ({ start() {}, listening: false, close: async () => {} });

function collect(): { states: CheckoutState[]; changed(s: CheckoutState): void; closing(): void } {
  const states: CheckoutState[] = [];
  return { states, changed: (s) => states.push(s), closing() {} };
}

describe('CheckoutWatch', () => {
  it('hands one change to every follower with shared reads, not one read per follower', async () => {
    const id = await awaiting();
    let reads = 0;
    const counted: Pick<CheckoutRepository, 'findMany'> = {
      findMany: (ids) => {
        reads += 1;
        return checkouts.findMany(ids);
      },
    };
    const source = new PgListener({
      connectionString: system.config.databaseUrl,
      channel: CHECKOUT_CHANGED_CHANNEL,
    });
    const watch = new CheckoutWatch({ checkouts: counted, source, recheckMs: 60_000 });
    try {
      const followers = Array.from({ length: 200 }, collect);
      const following = await Promise.all(followers.map((f) => watch.follow(id, f)));
      expect(following.every((f) => f.current?.view.status === 'awaiting_approval')).toBe(true);
      await eventually(async () => source.listening, 5_000, 'LISTEN');
      const before = reads;
      await checkouts.transition(id, 'awaiting_approval', 'canceled');
      await eventually(
        async () => followers.every((f) => f.states.length === 1),
        5_000,
        'every follower told',
      );
      expect(followers.every((f) => f.states[0]?.view.status === 'canceled')).toBe(true);
      // One read per notification (two if a sweep or the connection's resync came meanwhile).
      expect(reads - before).toBeLessThanOrEqual(2);
      expect(reads).toBeLessThan(20);
      for (const f of following) f.stop();
      expect(watch.size).toEqual({ checkouts: 0, followers: 0 });
    } finally {
      await watch.close();
    }
  });

  it('a change nobody announced is found by the periodic read (LIVE_RECHECK_MS)', async () => {
    const id = await awaiting();
    const watch = new CheckoutWatch({ checkouts, source: silent(), recheckMs: 100 });
    try {
      const follower = collect();
      await watch.follow(id, follower);
      await checkouts.transition(id, 'awaiting_approval', 'declined', { failureCode: 'access_denied' });
      await eventually(async () => follower.states[0], 5_000, 'the change');
      expect(follower.states.map((s) => s.view.status)).toEqual(['declined']);
    } finally {
      await watch.close();
    }
  });

  it('after the LISTEN connection drops, it reconnects and reads again what changed meanwhile', async () => {
    const id = await awaiting();
    const source = new PgListener({
      connectionString: system.config.databaseUrl,
      channel: CHECKOUT_CHANGED_CHANNEL,
      retryMinMs: 300,
    });
    // No sweep within the test: only the reconnection can find the change.
    const watch = new CheckoutWatch({ checkouts, source, recheckMs: 60_000 });
    try {
      const follower = collect();
      await watch.follow(id, follower);
      await eventually(async () => source.listening, 5_000, 'LISTEN');
      const admin = await sql.connect();
      try {
        const { rows } = await admin.query<{ pid: number }>(
          `SELECT pg_terminate_backend(pid) AS pid FROM pg_stat_activity
           WHERE application_name = $1 AND datname = current_database()`,
          [`bankpay-listen-${CHECKOUT_CHANGED_CHANNEL}`],
        );
        expect(rows).toHaveLength(1);
      } finally {
        admin.release();
      }
      await eventually(async () => !source.listening, 5_000, 'the drop noticed');
      // Changed while nobody listens: no notification will ever say so.
      await checkouts.transition(id, 'awaiting_approval', 'canceled');
      await eventually(async () => follower.states[0], 10_000, 'the change found after reconnecting');
      expect(follower.states[0]?.view.status).toBe('canceled');
      expect(source.listening).toBe(true);
    } finally {
      await watch.close();
    }
  });

  it('waitForChange: the newest state after the wait, the same version when nothing changed; at once at shutdown', async () => {
    const id = await awaiting();
    const watch = new CheckoutWatch({ checkouts, source: silent(), recheckMs: 60_000 });
    try {
      const first = await watch.waitForChange(id, 'not-the-version', 10_000);
      expect(first?.view.status).toBe('awaiting_approval');
      const version = first?.version ?? '';
      const unchanged = await watch.waitForChange(id, version, 50);
      expect(unchanged?.version).toBe(version);
      let abandon: () => void = () => {};
      const waiting = watch.waitForChange(id, version, 60_000, (a) => {
        abandon = a;
      });
      abandon();
      expect((await waiting)?.version).toBe(version);
      const held = watch.waitForChange(id, version, 60_000);
      await eventually(async () => watch.size.followers === 1 || undefined, 5_000, 'a follower');
      watch.shutdown();
      expect((await held)?.version).toBe(version);
      expect(await watch.waitForChange('chk_unknown', version, 10)).toBeNull();
    } finally {
      await watch.close();
    }
  });
});
