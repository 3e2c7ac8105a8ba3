import { randomUUID } from 'node:crypto';
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandboxBank } from '../../sandbox/bank.ts';
import { syntheticIban } from '../../sandbox/customers.ts';
import {
  app,
  errorCode,
  newTestBankCustomer,
  obtainTokens,
  pay,
  poll,
  pollResult,
  shopClient,
  sleep,
  startCiba,
  startCibaOk,
  startTestBank,
  type TestBank,
  testBankControl,
} from './helpers.ts';

let tb: TestBank;

beforeAll(async () => {
  tb = await startTestBank({ defaultInterval: 1 });
});

afterAll(async () => {
  await tb?.close();
});

const script = (login: string, body: unknown) =>
  testBankControl(tb, 'PUT', `/customers/${login}/faults`, body);

/** ISO 7064 MOD 97-10 over the rearranged IBAN (ISO 13616). */
function ibanIsValid(iban: string): boolean {
  const rearranged = `${iban.slice(4)}${iban.slice(0, 4)}`.replace(/[A-Z]/g, (c) =>
    String(c.charCodeAt(0) - 55),
  );
  return BigInt(rearranged) % 97n === 1n;
}

describe('sandbox bank control API: customers created on demand', () => {
  it('creates a customer (201), refuses a duplicate (409) and invalid bodies (400)', async () => {
    const login = `t-${randomUUID().slice(0, 8)}`;
    const created = await testBankControl(tb, 'POST', '/customers', { login, name: 'Test Person' });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      login,
      name: 'Test Person',
      email: `${login}@sandbox.bank.test`,
      iban: syntheticIban(login),
      seeded: false,
    });
    expect(ibanIsValid(created.body.iban)).toBe(true);
    expect(ibanIsValid('DE02120300000000202051')).toBe(true); // alice's: the check itself works
    expect((await testBankControl(tb, 'POST', '/customers', { login })).status).toBe(409);
    expect((await testBankControl(tb, 'POST', '/customers', { login: 'alice' })).status).toBe(409);
    for (const bad of [
      { login: 'Upper' },
      { login: '-dash-first' },
      { login: 'a'.repeat(65) },
      { login: 'has space' },
      { login: 42 },
      { login: 'ok-login', extra: true },
      { login: 'ok-login', name: '' },
      [],
    ]) {
      expect((await testBankControl(tb, 'POST', '/customers', bad)).status, JSON.stringify(bad)).toBe(400);
    }
    expect((await testBankControl(tb, 'POST', '/customers', { login: 'a'.repeat(64) })).status).toBe(201);
    expect((await testBankControl(tb, 'GET', `/customers/${login}`)).body.name).toBe('Test Person');
    const listed = (await testBankControl(tb, 'GET', '/customers')).body.customers.map(
      (c: { login: string }) => c.login,
    );
    expect(listed).toEqual(expect.arrayContaining(['alice', 'bob', 'carol', login]));
  });

  it('a created customer goes through the whole flow: bank app, approval, tokens, payment', async () => {
    const login = await newTestBankCustomer(tb, 'flow');
    const ack = await startCibaOk(tb, { loginHint: login, bindingMessage: 'PAY-NEW001' });
    // the bank app lists the request to that customer, and offers the customer on its page
    const inbox = await app(tb, 'GET', `/app/api/customers/${login}/requests`);
    expect(inbox.body.customer).toEqual({ login, name: login });
    expect(inbox.body.requests.map((r: { authReqId: string }) => r.authReqId)).toEqual([ack.auth_req_id]);
    expect((await app(tb, 'GET', '/app/api/customers')).body).toContainEqual({ login, name: login });
    expect(await (await fetch(tb.bank.appUrl)).text()).toContain(`"login":"${login}"`);
    // another customer cannot approve it
    expect(
      (await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/approve`, { login: 'alice' })).status,
    ).toBe(404);
    expect(
      (await app(tb, 'POST', `/app/api/requests/${ack.auth_req_id}/approve`, { login })).body.status,
    ).toBe('approved');
    const tokens = await pollResult(tb, ack.auth_req_id);
    // the sandbox's subjects are its logins
    expect(decodeJwt(tokens.id_token!).sub).toBe(login);
    expect(decodeJwt(tokens.access_token).sub).toBe(login);
    expect((await pay(tb, tokens.access_token, { idempotencyKey: `pay-${login}` })).status).toBe(201);
    expect((await testBankControl(tb, 'GET', `/payments?login=${login}`)).body.count).toBe(1);
  });

  it("applies a created customer's fault script to that customer only", async () => {
    const [mine, theirs] = [await newTestBankCustomer(tb), await newTestBankCustomer(tb)];
    await script(mine, { unavailable: { 'bc-authorize': { times: 1, retryAfter: 2 } } });
    expect((await startCiba(tb, { loginHint: theirs })).status).toBe(200);
    expect((await startCiba(tb, { loginHint: mine })).status).toBe(503);
    expect((await startCiba(tb, { loginHint: mine })).status).toBe(200);
  });

  it('still answers unknown_user_id for a hint that is no customer, and deletes created customers only', async () => {
    const login = await newTestBankCustomer(tb);
    expect((await testBankControl(tb, 'DELETE', `/customers/${login}`)).status).toBe(200);
    const res = await startCiba(tb, { loginHint: login });
    expect(await errorCode(oauth.processBackchannelAuthenticationResponse(tb.as, shopClient(tb), res))).toBe(
      'unknown_user_id',
    );
    expect((await testBankControl(tb, 'DELETE', `/customers/${login}`)).status).toBe(404);
    expect((await testBankControl(tb, 'DELETE', '/customers/alice')).status).toBe(409);
    expect((await testBankControl(tb, 'GET', `/customers/${login}/faults`)).status).toBe(404);
  });
});

describe('sandbox bank control API: payment attempts', () => {
  it('counts every POST /payments, with its status, Idempotency-Key and the token subject', async () => {
    const login = await newTestBankCustomer(tb, 'pay');
    expect((await testBankControl(tb, 'GET', `/payments?login=${login}`)).body).toMatchObject({
      count: 0,
      attemptCount: 0,
      attempts: [],
    });
    const { tokens } = await obtainTokens(tb, { loginHint: login });
    const noKey = await pay(tb, tokens.access_token);
    expect(noKey.status).toBe(400);
    const stolen = await pay(tb, tokens.access_token, {
      idempotencyKey: `k-${login}`,
      fetch: tb.other.fetch,
    });
    expect(stolen.status).toBe(401);
    const forged = await pay(tb, 'not.a-token', { idempotencyKey: `forged-${login}` });
    expect(forged.status).toBe(401);
    const ok = await pay(tb, tokens.access_token, { idempotencyKey: `k-${login}` });
    expect(ok.status).toBe(201);
    const { paymentId } = (await ok.json()) as { paymentId: string };

    const mine = await testBankControl(tb, 'GET', `/payments?login=${login}`);
    expect(mine.body.count).toBe(1);
    expect(mine.body.attemptCount).toBe(3);
    expect(mine.body.attempts).toEqual([
      {
        at: expect.any(String),
        login,
        clientId: 'shop',
        idempotencyKey: null,
        status: 400,
        error: 'invalid_request',
        paymentId: null,
      },
      // the token verified (so it names the customer) but is bound to another certificate
      expect.objectContaining({ login, idempotencyKey: `k-${login}`, status: 401, error: 'invalid_token' }),
      expect.objectContaining({ login, idempotencyKey: `k-${login}`, status: 201, error: null, paymentId }),
    ]);
    // without a verified token there is no customer: login null, listed with `login=` and in the total
    const anonymous = await testBankControl(tb, 'GET', '/payment-attempts?login=');
    expect(anonymous.body.attempts).toContainEqual(
      expect.objectContaining({
        login: null,
        clientId: null,
        idempotencyKey: `forged-${login}`,
        status: 401,
      }),
    );
    expect(anonymous.body.attempts.every((a: { login: unknown }) => a.login === null)).toBe(true);
    const all = await testBankControl(tb, 'GET', '/payment-attempts');
    expect(all.body.count).toBeGreaterThanOrEqual(4);
    expect(
      all.body.attempts.filter((a: { idempotencyKey: string }) => a.idempotencyKey?.endsWith(login)),
    ).toHaveLength(3);
    expect(
      (await testBankControl(tb, 'GET', `/payment-attempts?login=${login}&clientId=shop-jwt`)).body.count,
    ).toBe(0);
  });

  it('records a dropped payment answer with the payment it created', async () => {
    const login = await newTestBankCustomer(tb, 'drop');
    await script(login, { drop: { payments: { times: 1, afterCommit: true } } });
    const { tokens } = await obtainTokens(tb, { loginHint: login });
    await pay(tb, tokens.access_token, { idempotencyKey: `d-${login}` }).catch(() => undefined);
    const { body } = await testBankControl(tb, 'GET', `/payment-attempts?login=${login}`);
    expect(body.attempts).toEqual([
      expect.objectContaining({ status: 'dropped', paymentId: expect.stringMatching(/^pay_/) }),
    ]);
  });
});

describe('sandbox bank control API: timelines and expiry', () => {
  it("lists a login's bc-authorize answers and every request with its poll outcomes", async () => {
    const login = await newTestBankCustomer(tb, 'tl');
    await script(login, { unavailable: { 'bc-authorize': { times: 1, retryAfter: 1 } }, slowDown: 1 });
    expect((await startCiba(tb, { loginHint: login })).status).toBe(503);
    const approvedAck = await startCibaOk(tb, { loginHint: login });
    expect(await errorCode(pollResult(tb, approvedAck.auth_req_id))).toBe('slow_down');
    expect(await errorCode(pollResult(tb, approvedAck.auth_req_id))).toBe('authorization_pending');
    await testBankControl(tb, 'POST', `/requests/${approvedAck.auth_req_id}/approve`);
    await pollResult(tb, approvedAck.auth_req_id);
    expect(await errorCode(pollResult(tb, approvedAck.auth_req_id))).toBe('invalid_grant');

    const deniedAck = await startCibaOk(tb, { loginHint: login });
    await testBankControl(tb, 'POST', `/requests/${deniedAck.auth_req_id}/deny`);
    expect(await errorCode(pollResult(tb, deniedAck.auth_req_id))).toBe('access_denied');

    const lostAck = await startCibaOk(tb, { loginHint: login });
    await testBankControl(tb, 'POST', `/requests/${lostAck.auth_req_id}/approve`);
    await script(login, { drop: { token: { times: 1, afterCommit: true } } });
    await poll(tb, lostAck.auth_req_id).catch(() => undefined);

    const { status, body } = await testBankControl(tb, 'GET', `/customers/${login}/timeline`);
    expect(status).toBe(200);
    expect(body.customer.login).toBe(login);
    expect(body.bcAuthorize.map((a: { result: string }) => a.result)).toEqual([
      'temporarily_unavailable',
      'acknowledged',
      'acknowledged',
      'acknowledged',
    ]);
    expect(body.bcAuthorize[0]).toMatchObject({
      outcome: 503,
      authReqId: null,
      path: '/master/mtls/backchannel',
    });
    expect(body.bcAuthorize[1].authReqId).toBe(approvedAck.auth_req_id);
    const byId = Object.fromEntries(
      body.requests.map((r: { authReqId: string }) => [r.authReqId, r]),
    ) as Record<string, { polls: { outcome: unknown; result: string; unsent?: string }[]; status: string }>;
    expect(byId[approvedAck.auth_req_id]!.polls.map((p) => [p.outcome, p.result])).toEqual([
      [400, 'slow_down'],
      [400, 'authorization_pending'],
      [200, 'tokens'],
      [400, 'invalid_grant'],
    ]);
    expect(byId[deniedAck.auth_req_id]!.polls.map((p) => p.result)).toEqual(['access_denied']);
    expect(byId[deniedAck.auth_req_id]!.status).toBe('denied');
    expect(byId[lostAck.auth_req_id]!.polls).toEqual([
      expect.objectContaining({ outcome: 'dropped', result: 'dropped', unsent: 'tokens' }),
    ]);
    // each request also carries its own bc-authorize answer and the interval it was given
    const single = await testBankControl(tb, 'GET', `/requests/${approvedAck.auth_req_id}/timeline`);
    expect(single.body.bcAuthorize).toMatchObject({ outcome: 200, result: 'acknowledged', interval: 1 });
  });

  it('shows the unknown_user_id answers of a hint that is no customer', async () => {
    const hint = `nobody-${randomUUID().slice(0, 8)}`;
    await startCiba(tb, { loginHint: hint });
    const { status, body } = await testBankControl(tb, 'GET', `/customers/${hint}/timeline`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ login: hint, customer: null, requests: [] });
    expect(body.bcAuthorize).toEqual([expect.objectContaining({ outcome: 400, result: 'unknown_user_id' })]);
  });

  it('honours requested_expiry of 1-2 s and answers expired_token after it (CIBA Core §11)', async () => {
    const login = await newTestBankCustomer(tb, 'exp');
    const short = await startCibaOk(tb, { loginHint: login, requestedExpiry: 1 });
    expect(short.expires_in).toBe(1);
    const ack = await startCibaOk(tb, { loginHint: login, requestedExpiry: 2 });
    const acknowledgedAt = Date.now();
    expect(ack.expires_in).toBe(2);
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');
    await sleep(acknowledgedAt + 2_050 - Date.now());
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('expired_token');
    expect(await errorCode(pollResult(tb, short.auth_req_id))).toBe('expired_token');
    // nothing left to approve, and the bank app no longer offers it
    expect((await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`)).status).toBe(404);
    expect((await app(tb, 'GET', `/app/api/customers/${login}/requests`)).body.requests).toEqual([]);
    const timeline = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(timeline.body.expired).toBe(true);
    expect(timeline.body.polls.map((p: { result: string }) => p.result)).toEqual([
      'authorization_pending',
      'expired_token',
    ]);
  });
});

describe('sandbox bank: default acknowledgement interval', () => {
  it('puts defaultInterval in every acknowledgement unless the fault script sets one', async () => {
    const login = await newTestBankCustomer(tb);
    expect((await startCibaOk(tb, { loginHint: login })).interval).toBe(1);
    await script(login, { interval: 3 });
    expect((await startCibaOk(tb, { loginHint: login })).interval).toBe(3);
  });

  it('refuses a defaultInterval that is not a whole number of seconds', async () => {
    for (const defaultInterval of [0, 0.5, -1]) {
      await expect(
        startSandboxBank({ certificates: tb.certs, port: 0, appPort: 0, defaultInterval }),
      ).rejects.toThrow(/defaultInterval/);
    }
  });
});
