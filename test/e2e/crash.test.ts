/**
 * A worker killed with SIGKILL in each gap between systems, then a new worker: every checkout
 * still reaches the right terminal state, and the bank pays at most once. The sandbox bank holds
 * its answer after doing the work ("holdMs"), which opens each gap wide enough to kill in.
 */
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  bankControl,
  checkoutBody,
  decideInBankApp,
  eventually,
  newBankCustomer,
  pendingInBankApp,
  setFaults,
  spawnWorker,
  useSystem,
  type WorkerProcess,
} from '../support/system.ts';

// Short locks: a dead worker's job goes to the next worker after ~2 s instead of 15 s.
const { http, system } = useSystem({ WORKER_LOCK_MS: '2000', LOG_LEVEL: 'warn' }, { worker: false });
const workers: WorkerProcess[] = [];

// Each test owns its workers: one left alive would do the work the test means to interrupt.
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.kill()));
});

function worker(extraEnv: Record<string, string> = {}): WorkerProcess {
  const w = spawnWorker(system(), extraEnv);
  workers.push(w);
  return w;
}

interface Timeline {
  bcAuthorize: Array<{ at: number; outcome: unknown; authReqId: string | null }>;
  requests: Array<{
    authReqId: string;
    decidedAt: number | null;
    polls: Array<{ at: number; outcome: unknown; result: unknown }>;
  }>;
}
const timelineOf = (login: string) => bankControl<Timeline>(`/customers/${login}/timeline`);
const paymentsOf = (login: string) =>
  bankControl<{ count: number; attemptCount: number; payments: Array<{ idempotencyKey: string }> }>(
    `/payments?login=${login}`,
  );

async function approveAll(login: string): Promise<number> {
  const res = await fetch(`${inject('bank').appUrl}app/api/customers/${login}/requests`);
  const { requests } = (await res.json()) as { requests: Array<{ authReqId: string }> };
  for (const r of requests) await decideInBankApp(login, r.authReqId, 'approve');
  return requests.length;
}

describe('a worker killed with SIGKILL', () => {
  it('after the backchannel request was sent, before its answer was stored: a new request, one payment', async () => {
    const login = await newBankCustomer({ holdMs: { 'bc-authorize': 5_000 } });
    const w1 = worker();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    // The bank has the request (it exists there) but its answer is not out yet.
    await eventually(
      async () => (await timelineOf(login)).requests.length > 0,
      20_000,
      'the backchannel request at the bank',
    );
    expect(((await http.get(`/v1/checkouts/${id}`).then((r) => r.json())) as { status: string }).status).toBe(
      'pending',
    );
    await w1.kill('SIGKILL');
    await setFaults(login, {});

    worker();
    await http.waitForStatus(id, ['awaiting_approval'], 20_000);
    // The customer may see both requests; whichever they approve, at most one payment happens.
    expect(await approveAll(login)).toBeGreaterThanOrEqual(1);
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 20_000);
    expect(done.status).toBe('succeeded');
    expect((await paymentsOf(login)).count).toBe(1);
  }, 60_000);

  it('after the tokens were issued, before they were read: failed approval_lost, nothing paid, nothing stuck', async () => {
    const login = await newBankCustomer();
    const w1 = worker();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await http.waitForStatus(id, ['awaiting_approval'], 20_000);
    // From now on the bank holds every token answer for 10 s after producing it.
    await setFaults(login, { holdMs: { token: 10_000 } });
    await decideInBankApp(login, request.authReqId, 'approve');
    // A poll that reached the bank after the approval: the tokens are issued, the answer held.
    await eventually(
      async () => {
        const r = (await timelineOf(login)).requests[0];
        return r?.decidedAt && r.polls.some((p) => p.at > (r.decidedAt ?? 0));
      },
      30_000,
      'a token poll after the approval',
    );
    await w1.kill('SIGKILL');
    await setFaults(login, {});
    const before = (await http.get(`/v1/checkouts/${id}`).then((r) => r.json())) as { status: string };
    expect(before.status).toBe('awaiting_approval');

    worker();
    // The bank already redeemed this auth_req_id (CIBA Core §11: invalid_grant); tokens never
    // reached us, so no payment can be made: the checkout fails instead of hanging, and says the
    // approval was lost (a token request's answer went unrecorded), not a bare invalid_grant.
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 40_000);
    expect(done).toMatchObject({ status: 'failed', failure: { code: 'approval_lost' } });
    expect((done.failure as { message: string }).message).toMatch(/may have approved.*may retry/);
    expect((await paymentsOf(login)).attemptCount).toBe(0);
  }, 90_000);

  /** A worker that stops right after it has stored a settling token answer, before validating it. */
  const pausingAfterStore = () => worker({ WORKER_PAUSE_AFTER_TOKEN_ANSWER_STORED_MS: '60000' });

  async function killedAfterTheAnswerWasStored(login: string): Promise<string> {
    const w1 = pausingAfterStore();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await http.waitForStatus(id, ['awaiting_approval'], 20_000);
    await decideInBankApp(login, request.authReqId, 'approve');
    await eventually(
      async () =>
        (await system().db.checkout.findUniqueOrThrow({ where: { id } })).tokenAnswerEncrypted !== null,
      30_000,
      'the token answer stored',
    );
    await w1.kill('SIGKILL');
    const row = await system().db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row.status).toBe('awaiting_approval');
    // Sealed: neither the access token nor the ID Token is readable in the row.
    expect(row.tokenAnswerEncrypted).not.toMatch(/eyJ/);
    return id;
  }

  it('after the token answer was stored, before it was validated: finished from the stored answer, paid once', async () => {
    const login = await newBankCustomer();
    const id = await killedAfterTheAnswerWasStored(login);
    worker();
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 40_000);
    expect(done.status, JSON.stringify(done.failure)).toBe('succeeded');
    expect((await paymentsOf(login)).count).toBe(1);
    const row = await system().db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row.tokenAnswerEncrypted).toBeNull();
  }, 90_000);

  it('a stored answer whose ID Token is invalid still fails invalid_id_token after the crash, nothing paid', async () => {
    const login = await newBankCustomer({ idToken: { sign: 'foreign-key' } });
    const id = await killedAfterTheAnswerWasStored(login);
    worker();
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 40_000);
    expect(done).toMatchObject({ status: 'failed', failure: { code: 'invalid_id_token' } });
    expect((await paymentsOf(login)).attemptCount).toBe(0);
  }, 90_000);

  it("after the payment was sent, before the bank's answer was stored: re-sent with the same key, paid once", async () => {
    const login = await newBankCustomer();
    const w1 = worker();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await setFaults(login, { holdMs: { payments: 5_000 } });
    await decideInBankApp(login, request.authReqId, 'approve');
    // The bank has made the payment; its answer is held.
    await eventually(async () => (await paymentsOf(login)).count === 1, 20_000, 'the payment at the bank');
    expect(((await http.get(`/v1/checkouts/${id}`).then((r) => r.json())) as { status: string }).status).toBe(
      'authorized',
    );
    await w1.kill('SIGKILL');
    await setFaults(login, {});

    worker();
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 30_000);
    expect(done.status).toBe('succeeded');
    const payments = await paymentsOf(login);
    expect(payments.count).toBe(1);
    expect(payments.attemptCount).toBe(2);
    expect(payments.payments[0]?.idempotencyKey).toBe(id);
    expect((done.payment as { bankPaymentId: string }).bankPaymentId).toBeTruthy();
  }, 60_000);
});

describe('a worker stopped with SIGTERM', () => {
  it('finishes the bank request it is in, records the answer, then exits 0', async () => {
    const login = await newBankCustomer();
    const w = worker();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await setFaults(login, { holdMs: { payments: 2_000 } });
    await decideInBankApp(login, request.authReqId, 'approve');
    await eventually(async () => (await paymentsOf(login)).count === 1, 20_000, 'the payment at the bank');
    expect(await w.kill('SIGTERM')).toBe(0);
    // No other worker runs: the answer was stored by the one that was asked to stop.
    const now = (await http.get(`/v1/checkouts/${id}`).then((r) => r.json())) as { status: string };
    expect(now.status).toBe('succeeded');
    expect((await paymentsOf(login)).attemptCount).toBe(1);
  }, 60_000);
});
