/**
 * The sandbox bank with a store (sandbox/journal.ts on the run's PostgreSQL) keeps across a
 * restart what a real bank keeps: its signing keys, pending, approved, redeemed and expired CIBA
 * requests, certificate-bound access tokens, created customers and payments (idempotency).
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  bankJwks,
  errorCode,
  newTestBankCustomer,
  ORDER,
  obtainTokens,
  pay,
  pollResult,
  sleep,
  startCibaOk,
  startTestBank,
  type TestBank,
  testBankControl,
} from './helpers.ts';

describe('sandbox bank with a store: a restart keeps its promises', () => {
  let tb: TestBank;
  beforeAll(async () => {
    tb = await startTestBank({
      database: { url: inject('databaseUrl'), schema: `sandbox_p_${randomBytes(4).toString('hex')}` },
    });
  });
  afterAll(async () => {
    await tb?.close();
  });

  it('keeps its signing keys and a created customer', async () => {
    const login = await newTestBankCustomer(tb);
    const keys = await bankJwks(tb);
    await tb.restart();
    expect(await bankJwks(tb)).toEqual(keys);
    expect((await testBankControl(tb, 'GET', `/customers/${login}`)).status).toBe(200);
  });

  it('answers for pending, approved-before-restart, redeemed and expired requests', async () => {
    const login = await newTestBankCustomer(tb);
    const pending = await startCibaOk(tb, { loginHint: login, bindingMessage: 'PAY-PEND1' });
    const approved = await startCibaOk(tb, { loginHint: login, bindingMessage: 'PAY-APPR1' });
    const expiring = await startCibaOk(tb, {
      loginHint: login,
      bindingMessage: 'PAY-EXP1',
      requestedExpiry: 1,
    });
    expect((await testBankControl(tb, 'POST', `/requests/${approved.auth_req_id}/approve`)).status).toBe(200);
    const redeemed = await obtainTokens(tb, { loginHint: login, bindingMessage: 'PAY-REDM1' });
    await sleep(1_100);

    await tb.restart();

    expect(await errorCode(pollResult(tb, pending.auth_req_id))).toBe('authorization_pending');
    const inbox = await testBankControl(tb, 'GET', `/customers/${login}/requests`);
    expect(inbox.body.requests.map((r: { bindingMessage: string }) => r.bindingMessage)).toEqual([
      'PAY-PEND1',
    ]);
    // The approval given before the restart is answered with tokens after it.
    const tokens = await pollResult(tb, approved.auth_req_id);
    expect(tokens.access_token).toEqual(expect.any(String));
    // CIBA Core §11: an expired auth_req_id is expired_token, not an unknown (invalid_grant) one.
    expect(await errorCode(pollResult(tb, expiring.auth_req_id))).toBe('expired_token');
    // A redeemed auth_req_id gives no second set of tokens.
    expect(await errorCode(pollResult(tb, redeemed.ack.auth_req_id))).toBe('invalid_grant');
  });

  it('a token issued before a restart pays after it, and the payment stays idempotent', async () => {
    const login = await newTestBankCustomer(tb);
    const { tokens } = await obtainTokens(tb, { loginHint: login });
    await tb.restart();
    const first = await pay(tb, tokens.access_token, { idempotencyKey: `k-${login}` });
    expect(first.status).toBe(201);
    const created = await first.json();
    await tb.restart();
    const replay = await pay(tb, tokens.access_token, { idempotencyKey: `k-${login}` });
    expect(replay.status).toBe(201);
    expect(replay.headers.get('idempotent-replayed')).toBe('true');
    expect(await replay.json()).toEqual(created);
    const other = await pay(tb, tokens.access_token, { idempotencyKey: `k2-${login}`, body: ORDER });
    expect(other.status).toBe(403);
    expect((await testBankControl(tb, 'GET', `/payments?login=${login}`)).body.count).toBe(1);
  });

  it('a reset through the control API is kept too', async () => {
    const login = await newTestBankCustomer(tb);
    const { tokens } = await obtainTokens(tb, { loginHint: login });
    expect((await pay(tb, tokens.access_token, { idempotencyKey: `r-${login}` })).status).toBe(201);
    expect((await testBankControl(tb, 'POST', '/reset')).status).toBe(200);
    await tb.restart();
    expect((await testBankControl(tb, 'GET', `/payments?login=${login}`)).body.count).toBe(0);
  });
});

describe('sandbox bank without a store', () => {
  it('forgets its requests on restart: the next poll is invalid_grant', async () => {
    const tb = await startTestBank();
    try {
      const ack = await startCibaOk(tb, { loginHint: 'alice' });
      await tb.restart();
      expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('invalid_grant');
    } finally {
      await tb.close();
    }
  });
});
