/**
 * The token poller's two statements against a real PostgreSQL: the claim hands each due checkout
 * to one poller only (two workers never ask the bank about one auth_req_id at once), and an answer
 * is recorded only under the claim that asked (never over a cancel or a newer claim).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  claimDuePolls,
  type PollAnswer,
  recordPollAnswers,
  transition,
} from '../../src/checkout/checkout.repository.ts';
import { newCheckoutId } from '../../src/checkout/checkout.service.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { type System, startSystem } from '../support/system.ts';

let system: System;
let sql: SqlPool;
beforeAll(async () => {
  system = await startSystem({}, { worker: false });
  sql = createSqlPool(system.config.databaseUrl, { poolSize: 4 });
});
afterAll(async () => {
  await sql?.end();
  await system?.close();
});

async function awaiting(nextPollAt: Date, status = 'awaiting_approval', bankId = 'sandbox'): Promise<string> {
  const id = newCheckoutId();
  await system.db.checkout.create({
    data: {
      id,
      status,
      amount: 100n,
      currency: 'EUR',
      bankId,
      loginHint: 'alice',
      reference: 'claims',
      bindingMessage: 'PAY-CLAIMS',
      expiresAt: new Date(Date.now() + 60_000),
      authReqId: `req-${randomBytes(8).toString('hex')}`,
      pollIntervalS: 5,
      nextPollAt,
    },
  });
  return id;
}

const answer = (id: string, lease: Date, outcome = 'authorization_pending'): PollAnswer => ({
  id,
  lease,
  nextPollAt: new Date(Date.now() + 5_000),
  stepErrors: 0,
  outcome,
  detail: {},
});

describe('token poll claims', () => {
  it('hands every due checkout to exactly one of many concurrent claims, and nothing else', async () => {
    const past = new Date(Date.now() - 1_000);
    const due = await Promise.all(Array.from({ length: 40 }, () => awaiting(past)));
    const notYet = await awaiting(new Date(Date.now() + 60_000));
    const settled = await awaiting(past, 'declined');
    const now = new Date();
    const lease = new Date(now.getTime() + 15_000);
    const claims = await Promise.all(Array.from({ length: 6 }, () => claimDuePolls(sql, now, lease, 10)));
    const claimed = claims.flat().map((c) => c.id);
    expect(new Set(claimed).size).toBe(claimed.length); // nobody got one twice
    expect(claimed.sort()).toEqual([...due].sort()); // every due one, once
    expect(claimed).not.toContain(notYet);
    expect(claimed).not.toContain(settled);
    // Claimed means leased: a later claim (before the lease lapses) finds none of them.
    expect(await claimDuePolls(sql, new Date(), new Date(Date.now() + 15_000), 100)).toEqual([]);
    // Once the lease lapses (a crashed worker), they are due again.
    const again = await claimDuePolls(
      sql,
      new Date(lease.getTime() + 1),
      new Date(lease.getTime() + 20_000),
      100,
    );
    expect(again.map((c) => c.id).sort()).toEqual([...due].sort());
  });

  it('records an answer only under the claim that asked: not over a cancel, not over a newer claim', async () => {
    const past = new Date(Date.now() - 1_000);
    const [kept, canceled, reclaimed] = [await awaiting(past), await awaiting(past), await awaiting(past)];
    const now = new Date();
    const lease = new Date(now.getTime() + 15_000);
    const mine = await claimDuePolls(sql, now, lease, 100);
    expect(mine.map((c) => c.id)).toEqual(expect.arrayContaining([kept, canceled, reclaimed]));
    await transition(system.db, canceled, 'awaiting_approval', 'canceled');
    // Someone else's claim after ours lapsed.
    await system.db.checkout.update({
      where: { id: reclaimed },
      data: { nextPollAt: new Date(Date.now() + 99_000) },
    });

    const recorded = await recordPollAnswers(sql, [
      answer(kept, lease),
      answer(canceled, lease),
      answer(reclaimed, lease),
    ]);
    expect(recorded).toBe(1);
    const rows = await system.db.checkout.findMany({
      where: { id: { in: [kept, canceled, reclaimed] } },
      include: { events: { where: { step: 'token_poll' } } },
    });
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(kept)?.events.map((e) => e.outcome)).toEqual(['authorization_pending']);
    expect(byId.get(kept)?.nextPollAt?.getTime()).toBeGreaterThan(Date.now());
    expect(byId.get(canceled)).toMatchObject({ status: 'canceled', events: [] });
    expect(byId.get(reclaimed)?.events).toEqual([]);
    expect(byId.get(reclaimed)?.nextPollAt?.getTime()).toBeGreaterThan(Date.now() + 90_000);
  });

  it('keeps a slow_down interval and leaves the interval alone otherwise', async () => {
    const id = await awaiting(new Date(Date.now() - 1_000));
    const now = new Date();
    const lease = new Date(now.getTime() + 15_000);
    await claimDuePolls(sql, now, lease, 100);
    expect(await recordPollAnswers(sql, [{ ...answer(id, lease, 'slow_down'), pollIntervalS: 10 }])).toBe(1);
    expect((await system.db.checkout.findUnique({ where: { id } }))?.pollIntervalS).toBe(10);
  });

  it('leaves out the banks it is told to (a bank with enough requests in flight)', async () => {
    const past = new Date(Date.now() - 1_000);
    const busy = await awaiting(past, 'awaiting_approval', 'sandbox-short');
    const free = await awaiting(past);
    const now = new Date();
    const lease = new Date(now.getTime() + 15_000);
    const claimed = (await claimDuePolls(sql, now, lease, 100, ['sandbox-short'])).map((c) => c.id);
    expect(claimed).toContain(free);
    expect(claimed).not.toContain(busy);
    expect((await claimDuePolls(sql, now, lease, 100)).map((c) => c.id)).toEqual([busy]);
  });
});
