import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  app,
  errorCode,
  pollResult,
  startCibaOk,
  startTestBank,
  type TestBank,
  testBankControl,
} from './helpers.ts';

let tb: TestBank;
let quiet: TestBank;

beforeAll(async () => {
  [tb, quiet] = await Promise.all([startTestBank(), startTestBank({ testMode: false })]);
});

afterAll(async () => {
  await Promise.all([tb?.close(), quiet?.close()]);
});

describe('sandbox bank app (the authentication device)', () => {
  it('serves a phone-sized HTML page', async () => {
    const res = await fetch(tb.bank.appUrl);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await res.text();
    expect(html).toContain('<meta name="viewport" content="width=device-width, initial-scale=1');
    expect(html).toContain('/app/api/customers/');
    expect(html).toContain('Approve');
  });

  it('lists a pending request with the amount, creditor and binding message', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'carol', bindingMessage: 'PAY-APP001' });
    const { status, body } = await app(tb, 'GET', '/app/api/customers/carol/requests');
    expect(status).toBe(200);
    expect(body.customer).toEqual({ login: 'carol', name: 'Carol Nguyen' });
    const mine = body.requests.find((r: { authReqId: string }) => r.authReqId === ack.auth_req_id);
    expect(mine).toMatchObject({
      merchantName: 'Acme Shop',
      bindingMessage: 'PAY-APP001',
      status: 'pending',
      payment: {
        amount: '49.90',
        currency: 'EUR',
        creditorName: 'Acme Shop',
        creditorIban: 'DE89370400440532013000',
        remittanceInformation: 'order-1234',
      },
    });
    expect(mine.secondsLeft).toBeGreaterThan(250);
    // other customers do not see it
    const bob = await app(tb, 'GET', '/app/api/customers/bob/requests');
    expect(bob.body.requests.some((r: { authReqId: string }) => r.authReqId === ack.auth_req_id)).toBe(false);
    expect((await app(tb, 'GET', '/app/api/customers/mallory/requests')).status).toBe(404);
  });

  it('refuses a decision in the name of another customer, and removes decided requests from the list', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'alice' });
    expect(
      (await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/approve`, { login: 'bob' })).status,
    ).toBe(404);
    expect(
      (await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/deny`, { login: 'alice' })).status,
    ).toBe(200);
    const list = await app(tb, 'GET', '/app/api/customers/alice/requests');
    expect(list.body.requests.some((r: { authReqId: string }) => r.authReqId === ack.auth_req_id)).toBe(
      false,
    );
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('access_denied');
  });

  it('answers 404 for an unknown request', async () => {
    expect((await app(tb, 'POST', '/app/api/requests/nope/approve')).status).toBe(404);
  });
});

describe('sandbox bank control API', () => {
  it('lists pending requests per customer in test mode', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'bob' });
    const { body } = await testBankControl(tb, 'GET', '/customers/bob/requests');
    expect(body.requests.map((r: { authReqId: string }) => r.authReqId)).toContain(ack.auth_req_id);
    expect((await testBankControl(tb, 'GET', '')).body.issuer).toBe(tb.bank.issuer);
  });

  it('is absent (404) when test mode is off, while the bank app still works', async () => {
    expect(quiet.bank.controlUrl).toBeNull();
    const base = new URL(quiet.bank.appUrl);
    for (const path of ['/control', '/control/payments', '/control/customers/alice/faults']) {
      expect((await fetch(new URL(path, base))).status).toBe(404);
    }
    const put = await fetch(new URL('/control/customers/alice/faults', base), { method: 'PUT', body: '{}' });
    expect(put.status).toBe(404);
    expect((await fetch(new URL('/app/api/customers', base))).status).toBe(200);
  });
});
