/**
 * The token poller's two statements against a real PostgreSQL: the claim hands each due checkout
 * to one poller only (two workers never ask the bank about one auth_req_id at once), and an answer
 * is recorded only under the claim that asked (never over a cancel or a newer claim).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckoutRepository } from '../../src/checkout/checkout.repository.ts';
import { newCheckoutId } from '../../src/checkout/checkout.service.ts';
import type {
  DuePoll,
  PollAnswer,
  PollScheduleRepository,
} from '../../src/checkout/poll-schedule.repository.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { createRepositories } from '../../src/repositories.ts';
import { type System, startSystem } from '../support/system.ts';

let system: System;
let sql: SqlPool;
let schedule: PollScheduleRepository;
let checkouts: CheckoutRepository;
beforeAll(async () => {
  system = await startSystem({}, { worker: false });
  sql = createSqlPool(system.config.databaseUrl, { poolSize: 4 });
  ({ pollSchedule: schedule, checkouts } = createRepositories(system.db, sql));
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

const answer = (poll: DuePoll, outcome = 'authorization_pending'): PollAnswer => ({
  id: poll.id,
  lease: poll.lease,
  waitMs: 5_000,
  minWaitMs: 5_000,
  stepErrors: 0,
  outcome,
  detail: {},
});

/** What a lease that lapsed looks like (a crashed worker's claim, some time later). */
async function lapse(ids: string[]): Promise<void> {
  await sql.query("UPDATE checkouts SET next_poll_at = now() - interval '1 second' WHERE id = ANY($1)", [
    ids,
  ]);
}

const mine = async (ids: string[], claim: Promise<DuePoll[]>) => {
  const polls = await claim;
  return ids.map((id) => {
    const poll = polls.find((p) => p.id === id);
    if (!poll) throw new Error(`${id} was not claimed`);
    return poll;
  });
};

describe('token poll claims', () => {
  it('hands every due checkout to exactly one of many concurrent claims, and nothing else', async () => {
    const past = new Date(Date.now() - 1_000);
    const due = await Promise.all(Array.from({ length: 40 }, () => awaiting(past)));
    const notYet = await awaiting(new Date(Date.now() + 60_000));
    const settled = await awaiting(past, 'declined');
    const claims = await Promise.all(Array.from({ length: 6 }, () => schedule.claimDue(15, 10)));
    const claimed = claims.flat().map((c) => c.id);
    expect(new Set(claimed).size).toBe(claimed.length); // nobody got one twice
    expect(claimed.sort()).toEqual([...due].sort()); // every due one, once
    expect(claimed).not.toContain(notYet);
    expect(claimed).not.toContain(settled);
    // Claimed means leased, ~15 s ahead on the database's clock: a later claim finds none of them.
    const { rows } = await sql.query('SELECT now() AS now');
    for (const poll of claims.flat()) {
      const ahead = poll.lease.getTime() - (rows[0] as { now: Date }).now.getTime();
      expect(ahead).toBeGreaterThan(13_000);
      expect(ahead).toBeLessThan(17_000);
    }
    expect(await schedule.claimDue(15, 100)).toEqual([]);
    // Once the lease lapses (a crashed worker), they are due again.
    await lapse(due);
    const again = await schedule.claimDue(15, 100);
    expect(again.map((c) => c.id).sort()).toEqual([...due].sort());
  });

  it('never leases for less than the poll interval (a lost answer must not bring the next request early)', async () => {
    const id = await awaiting(new Date(Date.now() - 1_000));
    await system.db.checkout.update({ where: { id }, data: { pollIntervalS: 40 } });
    const [poll] = await mine([id], schedule.claimDue(15, 100));
    expect(poll!.lease.getTime() - Date.now()).toBeGreaterThan(35_000);
  });

  it('extends a claim only while it is still ours', async () => {
    const id = await awaiting(new Date(Date.now() - 1_000));
    const [poll] = await mine([id], schedule.claimDue(15, 100));
    const extended = await schedule.extendLease(id, poll!.lease, 30);
    expect(extended?.getTime()).toBeGreaterThan(poll!.lease.getTime());
    // The old lease is no longer the claim.
    expect(await schedule.extendLease(id, poll!.lease, 30)).toBeNull();
  });

  it('records an answer only under the claim that asked: not over a cancel, not over a newer claim', async () => {
    const past = new Date(Date.now() - 1_000);
    const ids = [await awaiting(past), await awaiting(past), await awaiting(past)];
    const [kept, canceled, reclaimed] = await mine(ids, schedule.claimDue(15, 100));
    await checkouts.transition(canceled!.id, 'awaiting_approval', 'canceled');
    // Someone else's claim after ours lapsed.
    await system.db.checkout.update({
      where: { id: reclaimed!.id },
      data: { nextPollAt: new Date(Date.now() + 99_000) },
    });

    const recorded = await schedule.recordAnswers([answer(kept!), answer(canceled!), answer(reclaimed!)]);
    expect(recorded).toBe(1);
    const rows = await system.db.checkout.findMany({
      where: { id: { in: ids } },
      include: { events: { where: { step: 'token_poll' } } },
    });
    const byId = new Map(rows.map((r) => [r.id, r]));
    expect(byId.get(kept!.id)?.events.map((e) => e.outcome)).toEqual(['authorization_pending']);
    // The next poll: 5 s after the answer was written.
    const next = byId.get(kept!.id)?.nextPollAt?.getTime() ?? 0;
    expect(next - Date.now()).toBeGreaterThan(3_000);
    expect(next - Date.now()).toBeLessThan(5_500);
    expect(byId.get(canceled!.id)).toMatchObject({ status: 'canceled', events: [] });
    expect(byId.get(reclaimed!.id)?.events).toEqual([]);
    expect(byId.get(reclaimed!.id)?.nextPollAt?.getTime()).toBeGreaterThan(Date.now() + 90_000);
  });

  it('keeps a slow_down interval, and never schedules past the expiry', async () => {
    const id = await awaiting(new Date(Date.now() - 1_000));
    const [poll] = await mine([id], schedule.claimDue(15, 100));
    const slowDown = { ...answer(poll!, 'slow_down'), pollIntervalS: 10, waitMs: 600_000 };
    expect(await schedule.recordAnswers([slowDown])).toBe(1);
    const row = await system.db.checkout.findUnique({ where: { id } });
    expect(row?.pollIntervalS).toBe(10);
    expect(row?.nextPollAt?.getTime()).toBe(row?.expiresAt.getTime());
  });

  it('leaves out the banks it is told to (a bank with enough requests in flight)', async () => {
    const past = new Date(Date.now() - 1_000);
    const busy = await awaiting(past, 'awaiting_approval', 'sandbox-short');
    const free = await awaiting(past);
    const claimed = (await schedule.claimDue(15, 100, ['sandbox-short'])).map((c) => c.id);
    expect(claimed).toContain(free);
    expect(claimed).not.toContain(busy);
    expect((await schedule.claimDue(15, 100)).map((c) => c.id)).toEqual([busy]);
  });

  it('keeps a stored token answer through an "ask again" answer: only leaving awaiting_approval clears it', async () => {
    const id = await awaiting(new Date(Date.now() - 1_000));
    const [poll] = await mine([id], schedule.claimDue(15, 100));
    expect(await schedule.storeAnswer(id, 'v2.sealed-answer')).toBe(true);
    // Validating it failed for a reason that passes (the bank's keys unreachable): ask again.
    expect(await schedule.recordAnswers([answer(poll!, 'bank_unavailable')])).toBe(1);
    await lapse([id]);
    const [again] = await mine([id], schedule.claimDue(15, 100));
    expect(again?.storedAnswer).toBe('v2.sealed-answer');
    await checkouts.transition(id, 'awaiting_approval', 'canceled');
    const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row.tokenAnswerEncrypted).toBeNull();
    expect(await schedule.storeAnswer(id, 'v2.late')).toBe(false);
  });

  it('claims a pinged checkout before every merely late one, a ping during a request brings the next one after the least wait, and no ping beats the interval', async () => {
    const late = [
      await awaiting(new Date(Date.now() - 60_000)),
      await awaiting(new Date(Date.now() - 30_000)),
    ];
    const later = await awaiting(new Date(Date.now() + 60_000));
    const pinged = async () => {
      const row = await schedule.findPingTarget('sandbox', (await checkouts.find(later))!.authReqId!);
      expect(row?.id).toBe(later);
      return schedule.notePing(later, (await checkouts.find(later))!.authReqId!);
    };
    expect(await pinged()).toBe(true);
    const [first] = await schedule.claimDue(10, 1);
    expect(first?.id).toBe(later);

    // Pinged again while its request is in flight: not claimable now (one request at a time)...
    expect(await pinged()).toBe(true);
    const meanwhile = await schedule.claimDue(10, 100);
    expect(meanwhile.map((p) => p.id)).not.toContain(later);
    expect(meanwhile.map((p) => p.id)).toEqual(expect.arrayContaining(late));
    // ...and due first once that request's "ask again" answer is recorded, after the least wait
    // the bank allows (here none) instead of ping mode's safety wait.
    expect(await schedule.recordAnswers([{ ...answer(first!), waitMs: 20_000, minWaitMs: 0 }])).toBe(1);
    const [next] = await schedule.claimDue(10, 1);
    expect(next?.id).toBe(later);

    // The interval still holds (CIBA Core §7.3): after an answer that allows the next request in
    // 3 s, a ping brings it forward to then, not to now, however often it comes.
    expect(await schedule.recordAnswers([{ ...answer(next!), waitMs: 20_000, minWaitMs: 3_000 }])).toBe(1);
    for (let i = 0; i < 3; i++) expect(await pinged()).toBe(true);
    expect((await schedule.claimDue(10, 100)).map((p) => p.id)).not.toContain(later);
    const { rows } = await sql.query<{ wait_ms: number }>(
      'SELECT extract(epoch FROM next_poll_at - now()) * 1000 AS wait_ms FROM checkouts WHERE id = $1',
      [later],
    );
    expect(Number(rows[0]!.wait_ms)).toBeGreaterThan(2_000);
    expect(Number(rows[0]!.wait_ms)).toBeLessThanOrEqual(3_000);
    // A settled checkout takes no ping.
    await checkouts.transition(later, 'awaiting_approval', 'canceled');
    expect(await schedule.findPingTarget('sandbox', 'whatever')).toBeNull();
    expect(await schedule.notePing(later, 'whatever')).toBe(false);
  });
});
