/**
 * Bank faults on every bank endpoint (bc-authorize, token, payments): timeouts, dropped
 * connections, 5xx, slow answers, and answers that bend the rules (src/integrations/
 * bank.answers.ts). The checkout still ends right, and an ambiguous payment answer is resolved by
 * re-sending with the same Idempotency-Key: one payment, never two.
 */
import { describe, expect, it } from 'vitest';
import {
  bankControl,
  checkoutBody,
  decideInBankApp,
  eventually,
  newBankCustomer,
  pendingInBankApp,
  setFaults,
  useSystem,
} from '../support/system.ts';

const { http } = useSystem({ BANK_TIMEOUT_MS: '1500' });

interface Timeline {
  bcAuthorize: Array<{ outcome: unknown; result: unknown }>;
  requests: Array<{
    bcAuthorize: { at: number };
    polls: Array<{ at: number; outcome: unknown; result: unknown }>;
  }>;
}
const timelineOf = (login: string) => bankControl<Timeline>(`/customers/${login}/timeline`);
const paymentsOf = (login: string) =>
  bankControl<{ count: number; attemptCount: number; payments: Array<{ idempotencyKey: string }> }>(
    `/payments?login=${login}`,
  );

async function payThrough(login: string, between?: () => Promise<void>) {
  const res = await http.createCheckout(checkoutBody(login));
  const { id } = (await res.json()) as { id: string };
  const request = await pendingInBankApp(login, 20_000);
  await between?.();
  await decideInBankApp(login, request.authReqId, 'approve');
  const done = await http.waitForStatus(id, ['succeeded', 'failed', 'declined', 'expired'], 30_000);
  return { id, done };
}

describe.concurrent('bank faults', () => {
  it('bc-authorize: a dropped connection is retried', async () => {
    const login = await newBankCustomer({ drop: { 'bc-authorize': { times: 1, afterCommit: false } } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    expect((await timelineOf(login)).bcAuthorize.map((a) => a.outcome)).toEqual(['dropped', 200]);
  });

  it('bc-authorize: a timeout (the bank answers too late) is retried', async () => {
    const login = await newBankCustomer({ delayMs: { 'bc-authorize': 3_000 } });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    await eventually(
      async () => (await timelineOf(login)).bcAuthorize.length >= 1,
      10_000,
      'the first bc-authorize',
    );
    await setFaults(login, {});
    const request = await pendingInBankApp(login, 20_000);
    await decideInBankApp(login, request.authReqId, 'approve');
    expect((await http.waitForStatus(id, ['succeeded', 'failed'], 30_000)).status).toBe('succeeded');
    const timeline = await http
      .get(`/v1/checkouts/${id}`)
      .then((r) => r.json() as Promise<{ timeline: Array<{ step: string; outcome: string }> }>);
    expect(
      timeline.timeline.some(
        (e) => e.step === 'backchannel_authentication' && e.outcome === 'bank_unavailable',
      ),
    ).toBe(true);
  });

  it('token: dropped connections are retried, never sooner than the interval', async () => {
    const login = await newBankCustomer({ drop: { token: { times: 2, afterCommit: false } } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    const polls = (await timelineOf(login)).requests[0]?.polls ?? [];
    expect(polls.filter((p) => p.outcome === 'dropped')).toHaveLength(2);
  });

  it('token: slow answers (under the timeout) are waited for', async () => {
    const login = await newBankCustomer({ delayMs: { token: 800, 'bc-authorize': 800, payments: 800 } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    expect((await paymentsOf(login)).count).toBe(1);
  });

  it('payments: a 500 is retried with the same Idempotency-Key', async () => {
    const login = await newBankCustomer({ paymentError: { times: 2 } });
    const { id, done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    const payments = await paymentsOf(login);
    expect(payments.count).toBe(1);
    expect(payments.attemptCount).toBe(3);
    expect(payments.payments[0]?.idempotencyKey).toBe(id);
  });

  it('payments: the answer is lost after the bank paid (connection dropped) → re-sent, paid once', async () => {
    const login = await newBankCustomer({ drop: { payments: { times: 1, afterCommit: true } } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    const payments = await paymentsOf(login);
    expect(payments.count).toBe(1);
    expect(payments.attemptCount).toBe(2);
  });

  it('payments: the bank paid but answered after our timeout → re-sent, paid once', async () => {
    const login = await newBankCustomer();
    const { done } = await payThrough(login, () => setFaults(login, { holdMs: { payments: 3_000 } }));
    // The first attempt timed out at 1.5 s while the bank had already paid; the retry with the
    // same key gets the bank's first answer back.
    expect(done.status).toBe('succeeded');
    const payments = await paymentsOf(login);
    expect(payments.count).toBe(1);
    expect(payments.attemptCount).toBe(2);
  });

  // Answers that bend the rules must not strand a customer who has the notification already.

  it.each([
    ['"1" (a string)', '1'],
    ['0', 0],
  ])(
    'bc-authorize: an acknowledgement with interval %s → polled every 5 s (the CIBA default) and paid',
    async (_name, interval) => {
      const login = await newBankCustomer({ ack: { members: { interval } } });
      const res = await http.createCheckout(checkoutBody(login));
      const { id } = (await res.json()) as { id: string };
      const request = await pendingInBankApp(login, 20_000);
      await eventually(
        async () => ((await timelineOf(login)).requests[0]?.polls.length ?? 0) >= 1,
        20_000,
        'a first token poll',
      );
      await decideInBankApp(login, request.authReqId, 'approve');
      const done = await http.waitForStatus(id, ['succeeded', 'failed', 'declined', 'expired'], 30_000);
      expect(done.status).toBe('succeeded');
      const [first] = (await timelineOf(login)).requests;
      const at = [first?.bcAuthorize.at ?? 0, ...(first?.polls ?? []).map((p) => p.at)];
      expect(at.length).toBeGreaterThanOrEqual(3);
      // CIBA Core §7.3: never sooner than 5 s after the acknowledgement or the previous poll.
      for (let i = 1; i < at.length; i++)
        expect((at[i] ?? 0) - (at[i - 1] ?? 0)).toBeGreaterThanOrEqual(4_900);
    },
  );

  it("token: a 200 'application/json' HTML page (a proxy's) is polled again, and the checkout is paid", async () => {
    const login = await newBankCustomer({ answer: { token: { times: 1 } } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    const polls = (await timelineOf(login)).requests[0]?.polls ?? [];
    expect(polls[0]).toMatchObject({ outcome: 200, result: 'http_200' });
    expect(polls.at(-1)?.result).toBe('tokens');
    expect((await paymentsOf(login)).count).toBe(1);
  });

  it('token: a Retry-After is honoured on any status (a 500, a 400 authorization_pending)', async () => {
    const login = await newBankCustomer({
      unavailable: { token: { times: 1, retryAfter: 3, status: 500 } },
      answer: { token: { times: 1, status: 400, body: { error: 'authorization_pending' }, retryAfter: 3 } },
    });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login, 20_000);
    await eventually(
      async () => ((await timelineOf(login)).requests[0]?.polls.length ?? 0) >= 3,
      20_000,
      'three token polls',
    );
    await decideInBankApp(login, request.authReqId, 'approve');
    expect((await http.waitForStatus(id, ['succeeded', 'failed'], 30_000)).status).toBe('succeeded');
    const polls = (await timelineOf(login)).requests[0]?.polls ?? [];
    expect(polls.slice(0, 2).map((p) => [p.outcome, p.result])).toEqual([
      [500, 'server_error'],
      [400, 'authorization_pending'],
    ]);
    // the interval is 1 s; each Retry-After asks for 3
    expect((polls[1]?.at ?? 0) - (polls[0]?.at ?? 0)).toBeGreaterThanOrEqual(2_900);
    expect((polls[2]?.at ?? 0) - (polls[1]?.at ?? 0)).toBeGreaterThanOrEqual(2_900);
  });

  it('bc-authorize: a 200 HTML page (no auth_req_id to read) is sent again, and the checkout is paid', async () => {
    const login = await newBankCustomer({ answer: { 'bc-authorize': { times: 1 } } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    expect((await timelineOf(login)).bcAuthorize.map((a) => a.result)).toEqual(['http_200', 'acknowledged']);
  });

  it('payments: a garbled 201 after the bank paid → re-sent with the same key, paid once, never rejected', async () => {
    const login = await newBankCustomer({ answer: { payments: { status: 201, afterCommit: true } } });
    const { id, done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    const payments = await paymentsOf(login);
    expect(payments.count).toBe(1);
    expect(payments.attemptCount).toBe(2);
    expect(payments.payments[0]?.idempotencyKey).toBe(id);
  });

  it("payments: a proxy's 403 page is no refusal → re-sent, paid once", async () => {
    const login = await newBankCustomer({ answer: { payments: { status: 403, contentType: 'text/html' } } });
    const { done } = await payThrough(login);
    expect(done.status).toBe('succeeded');
    const payments = await paymentsOf(login);
    expect(payments.count).toBe(1);
    expect(payments.attemptCount).toBe(2);
  });
});
