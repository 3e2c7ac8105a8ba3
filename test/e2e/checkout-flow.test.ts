/**
 * The product, end to end through the public API only: a storefront creates a checkout, the
 * customer decides in the sandbox bank's app, the worker talks CIBA over mTLS to the bank.
 */
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

interface Payments {
  count: number;
  payments: Array<{
    paymentId: string;
    amount?: unknown;
    body?: Record<string, unknown>;
    instructedAmount?: unknown;
    status: string;
    idempotencyKey?: string;
  }>;
}

describe('a checkout the customer approves', () => {
  it('succeeds with exactly one payment at the bank, for the right amount and creditor', async () => {
    const login = await newBankCustomer();
    const created = await http.createCheckout(
      checkoutBody(login, {
        amount: 4990,
        currency: 'EUR',
        reference: 'order-1234',
        description: 'two shirts',
      }),
    );
    expect(created.status).toBe(202);
    const checkout = (await created.json()) as Record<string, string>;
    expect(created.headers.get('location')).toBe(`/v1/checkouts/${checkout.id}`);
    expect(checkout).toMatchObject({
      status: 'pending',
      amount: 4990,
      currency: 'EUR',
      bankId: 'sandbox',
      reference: 'order-1234',
      description: 'two shirts',
      payment: null,
      failure: null,
    });
    expect(checkout.bindingMessage).toMatch(/^PAY-[A-Z2-9]{6}$/);
    expect(checkout.clientSecret).toBeTruthy();

    // The customer's phone shows what they are asked to approve.
    const request = await pendingInBankApp(login);
    expect(request.bindingMessage).toBe(checkout.bindingMessage);
    expect(request.payment).toMatchObject({
      amount: '49.90',
      currency: 'EUR',
      creditorName: 'Acme Shop',
      creditorIban: 'DE89370400440532013000',
      remittanceInformation: 'order-1234',
    });

    const waiting = await http.waitForStatus(checkout.id!, ['awaiting_approval']);
    expect(waiting.status).toBe('awaiting_approval');

    // The browser follows the checkout with its clientSecret; Retry-After says when to ask again.
    const followed = await http.get(`/v1/checkouts/${checkout.id}`, checkout.clientSecret);
    expect(followed.status).toBe(200);
    expect(Number(followed.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);

    await decideInBankApp(login, request.authReqId, 'approve');
    const done = await http.waitForStatus(checkout.id!, ['succeeded', 'failed']);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(done.payment).toMatchObject({ status: 'accepted' });
    const finalRes = await http.get(`/v1/checkouts/${checkout.id}`);
    expect(finalRes.headers.get('retry-after')).toBeNull();

    const payments = await bankControl<Payments>(`/payments?login=${login}`);
    expect(payments.count).toBe(1);
    const [payment] = payments.payments;
    expect(payment?.paymentId).toBe((done.payment as { bankPaymentId: string }).bankPaymentId);
    expect(JSON.stringify(payment)).toContain('"49.90"');
    expect(JSON.stringify(payment)).toContain('DE89370400440532013000');
    expect(JSON.stringify(payment)).toContain(checkout.id);

    // The timeline tells the story, without secrets.
    const timeline = (done.timeline as Array<{ step: string; outcome: string }>).map(
      (e) => `${e.step}:${e.outcome}`,
    );
    expect(timeline[0]).toBe('created:pending');
    expect(timeline).toContain('backchannel_authentication:accepted');
    expect(timeline).toContain('token_poll:tokens');
    expect(timeline.at(-1)).toBe('payment:accepted');

    // Once it has ended, nothing that identifies the customer at the bank is kept in clear.
    const row = await system().db.checkout.findUniqueOrThrow({ where: { id: checkout.id! } });
    expect(row).toMatchObject({ authReqId: null, loginHint: null, subject: null, tokensEncrypted: null });
    const stored = JSON.stringify({ ...row, amount: String(row.amount) });
    expect(stored).not.toContain(login);
    expect(stored).not.toContain(request.authReqId);
  });
});
