/** Every way a checkout ends, driven through the public API and the sandbox bank's app. */
import { describe, expect, it } from 'vitest';
import {
  bankControl,
  checkoutBody,
  decideInBankApp,
  newBankCustomer,
  pendingInBankApp,
  useSystem,
} from '../support/system.ts';

const { http, system } = useSystem();

async function create(login: string, overrides: Record<string, unknown> = {}) {
  const res = await http.createCheckout(checkoutBody(login, overrides));
  expect(res.status).toBe(202);
  return (await res.json()) as { id: string; clientSecret: string; bindingMessage: string };
}

const paymentsOf = (login: string) =>
  bankControl<{ count: number; attemptCount: number }>(`/payments?login=${login}`);

describe.concurrent('checkout outcomes', () => {
  it('the customer denies → declined, nothing paid', async () => {
    const login = await newBankCustomer();
    const checkout = await create(login);
    const request = await pendingInBankApp(login);
    await decideInBankApp(login, request.authReqId, 'deny');
    const done = await http.waitForStatus(checkout.id, ['declined', 'failed', 'succeeded']);
    expect(done).toMatchObject({ status: 'declined', failure: { code: 'access_denied' }, payment: null });
    expect((await paymentsOf(login)).attemptCount).toBe(0);
  });

  it('at a bank marked as unable to take authorization_details, the binding message carries the amount', async () => {
    const login = await newBankCustomer();
    const checkout = await create(login, { bankId: 'sandbox-no-details', amount: 4990, currency: 'EUR' });
    expect(checkout.bindingMessage).toMatch(/^EUR49\.90-[A-Z2-9]{6}$/);
    const request = await pendingInBankApp(login);
    // What the customer sees: no payment view, the amount in the message they match.
    expect(request.bindingMessage).toBe(checkout.bindingMessage);
    expect(request.payment ?? null).toBeNull();
    await decideInBankApp(login, request.authReqId, 'deny');
    expect((await http.waitForStatus(checkout.id, ['declined', 'failed'])).status).toBe('declined');
  });

  it('the customer never answers → expired when the bank says so', async () => {
    const login = await newBankCustomer();
    const checkout = await create(login, { bankId: 'sandbox-short' });
    await pendingInBankApp(login);
    const done = await http.waitForStatus(checkout.id, ['expired', 'failed', 'succeeded'], 20_000);
    expect(done).toMatchObject({ status: 'expired', failure: { code: 'expired_token' } });
    expect((await paymentsOf(login)).attemptCount).toBe(0);
  });

  it("an unknown login hint → failed with the bank's unknown_user_id", async () => {
    const checkout = await create(`nobody-${Date.now()}`);
    const done = await http.waitForStatus(checkout.id, ['failed', 'awaiting_approval']);
    expect(done).toMatchObject({ status: 'failed', failure: { code: 'unknown_user_id' } });
  });

  it("the bank rejects the payment → failed with payment_rejected, in our words, the bank's kept apart", async () => {
    // Bank-written text is untrusted: a page that shows failure.message must never show this.
    const reason = '<a href="https://evil.example">Call +1 555 0100 to unblock</a>\u202e';
    const login = await newBankCustomer({ rejectPayment: { reason } });
    const checkout = await create(login);
    const request = await pendingInBankApp(login);
    await decideInBankApp(login, request.authReqId, 'approve');
    const done = await http.waitForStatus(checkout.id, ['failed', 'succeeded']);
    expect(done).toMatchObject({
      status: 'failed',
      failure: { code: 'payment_rejected' },
      payment: { status: 'rejected' },
    });
    expect((done.failure as { message: string }).message).toBe('the bank rejected the payment');
    expect(JSON.stringify(done.failure)).not.toContain('555');
    // The merchant's timeline keeps the bank's words, sanitized, for support.
    const events = done.timeline as Array<{ step: string; detail: Record<string, unknown> | null }>;
    const payment = events.filter((e) => e.step === 'payment').at(-1);
    expect(payment?.detail?.bankText).toBe('<a href="https://evil.example">Call +1 555 0100 to unblock</a>');
    // A browser, with the clientSecret, sees no timeline at all.
    const browser = await (await http.get(`/v1/checkouts/${checkout.id}`, checkout.clientSecret)).json();
    expect(JSON.stringify(browser)).not.toContain('555');
    expect((await paymentsOf(login)).attemptCount).toBe(1);
  });

  it('canceled before approval → canceled, and a later approval pays nothing', async () => {
    const login = await newBankCustomer();
    const checkout = await create(login);
    const request = await pendingInBankApp(login);
    await http.waitForStatus(checkout.id, ['awaiting_approval']);
    const canceled = await http.post(`/v1/checkouts/${checkout.id}/cancel`);
    expect(canceled.status).toBe(200);
    expect(await canceled.json()).toMatchObject({ status: 'canceled' });

    await decideInBankApp(login, request.authReqId, 'approve');
    // Give the worker time for several polls at the 1 s interval: it must not pay.
    await new Promise((r) => setTimeout(r, 3_000));
    const after = await http.waitForStatus(checkout.id, ['canceled']);
    expect(after.status).toBe('canceled');
    expect((await paymentsOf(login)).attemptCount).toBe(0);
    // Canceling is idempotent; once terminal otherwise, it is refused.
    expect((await http.post(`/v1/checkouts/${checkout.id}/cancel`)).status).toBe(200);
  });

  it('cancel after the payment → 409 checkout_not_cancelable', async () => {
    const login = await newBankCustomer();
    const checkout = await create(login);
    const request = await pendingInBankApp(login);
    await decideInBankApp(login, request.authReqId, 'approve');
    await http.waitForStatus(checkout.id, ['succeeded']);
    const res = await http.post(`/v1/checkouts/${checkout.id}/cancel`);
    expect(res.status).toBe(409);
    expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await res.json()).toMatchObject({ code: 'checkout_not_cancelable' });
  });

  it('a pending checkout can be canceled before the bank is even asked', async () => {
    await system().stopWorker();
    try {
      const login = await newBankCustomer();
      const checkout = await create(login);
      const res = await http.post(`/v1/checkouts/${checkout.id}/cancel`);
      expect(await res.json()).toMatchObject({ status: 'canceled' });
    } finally {
      await system().startWorker();
    }
  });
});
