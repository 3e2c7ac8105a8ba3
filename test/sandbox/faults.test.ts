import * as oauth from 'oauth4webapi';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  errorCode,
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
  tb = await startTestBank();
});

afterAll(async () => {
  await tb?.close();
});

beforeEach(async () => {
  expect((await testBankControl(tb, 'POST', '/reset')).status).toBe(200);
});

const script = (login: string, body: unknown) =>
  testBankControl(tb, 'PUT', `/customers/${login}/faults`, body);

/** The undici error code behind a failed fetch ("other side closed" and friends). */
async function socketErrorOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'answered';
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? String(error);
  }
}

describe('sandbox bank: scripted misbehaviour, observed on the wire', () => {
  it('validates fault scripts and keeps them per customer', async () => {
    expect((await script('alice', { slowDown: 'many' })).status).toBe(400);
    expect((await script('alice', { unavailable: { userinfo: { times: 1 } } })).status).toBe(400);
    expect((await script('mallory', {})).status).toBe(404);
    const set = await script('alice', { slowDown: 2, drop: { payments: { afterCommit: true } } });
    expect(set.body).toEqual({ slowDown: 2, drop: { payments: { times: 1, afterCommit: true } } });
    expect((await testBankControl(tb, 'GET', '/customers/bob/faults')).body).toEqual({});
  });

  it('adds the scripted interval to the bc-authorize acknowledgement', async () => {
    await script('alice', { interval: 2 });
    const ack = await startCibaOk(tb, { loginHint: 'alice' });
    expect(ack.interval).toBe(2);
    // another customer's requests are untouched
    expect((await startCibaOk(tb, { loginHint: 'bob' })).interval).toBeUndefined();
  });

  it('rewrites acknowledgement members as scripted (null deletes one), then acknowledges plainly', async () => {
    await script('alice', {
      ack: { members: { interval: '5', expires_in: 0, auth_req_id: null }, times: 1 },
    });
    const bent = await startCiba(tb, { loginHint: 'alice' });
    expect(bent.status).toBe(200);
    const body = (await bent.json()) as Record<string, unknown>;
    expect(body).toEqual({ interval: '5', expires_in: 0 });
    // the request exists at the bank all the same (the customer was notified)
    const pending = await testBankControl(tb, 'GET', '/customers/alice/requests');
    expect(pending.body.requests).toHaveLength(1);
    expect((await startCibaOk(tb, { loginHint: 'alice' })).auth_req_id).toEqual(expect.any(String));
    expect((await script('alice', { ack: { interval: 5 } })).status).toBe(400);
  });

  it('answers a scripted raw answer instead of the bank: a JSON-labelled HTML page by default', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'bob' });
    await script('bob', { answer: { token: { times: 1 } } });
    const page = await poll(tb, ack.auth_req_id);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('application/json');
    expect(await page.text()).toMatch(/^<!DOCTYPE html>/);
    // before the bank saw it: the auth_req_id is untouched
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');
    const { body } = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(body.polls.map((p: { result: string }) => p.result)).toEqual([
      'http_200',
      'authorization_pending',
    ]);

    await script('bob', {
      answer: { 'bc-authorize': { status: 400, body: { error: 'temporarily_unavailable' }, retryAfter: 4 } },
    });
    const busy = await startCiba(tb, { loginHint: 'bob' });
    expect(busy.status).toBe(400);
    expect(busy.headers.get('retry-after')).toBe('4');
    expect(await busy.json()).toEqual({ error: 'temporarily_unavailable' });
  });

  it('answers a scripted raw answer after the bank did the work (afterCommit)', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'carol' });
    await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
    await script('carol', { answer: { token: { afterCommit: true, contentType: 'text/html' } } });
    const page = await poll(tb, ack.auth_req_id);
    expect([page.status, page.headers.get('content-type')]).toEqual([200, 'text/html']);
    expect(await page.text()).toMatch(/Bad Gateway/);
    const { body } = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(body.polls[0]).toMatchObject({ outcome: 200, result: 'http_200', unsent: 'tokens' });
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('invalid_grant');

    await script('carol', { answer: { payments: { status: 201, afterCommit: true } } });
    const { tokens } = await obtainTokens(tb, { loginHint: 'carol' });
    const garbled = await pay(tb, tokens.access_token, { idempotencyKey: 'garbled-1' });
    expect(garbled.status).toBe(201);
    expect(await garbled.text()).toMatch(/^<!DOCTYPE html>/);
    expect((await testBankControl(tb, 'GET', '/payments?login=carol')).body.count).toBe(1);
    const replay = await pay(tb, tokens.access_token, { idempotencyKey: 'garbled-1' });
    expect(((await replay.json()) as { status: string }).status).toBe('accepted');
  });

  it('answers another 5xx than 503 with Retry-After when scripted', async () => {
    await script('alice', { unavailable: { token: { times: 1, retryAfter: 3, status: 500 } } });
    const ack = await startCibaOk(tb, { loginHint: 'alice' });
    const failed = await poll(tb, ack.auth_req_id);
    expect([failed.status, failed.headers.get('retry-after')]).toEqual([500, '3']);
    expect((await script('alice', { unavailable: { token: { status: 404 } } })).status).toBe(400);
  });

  it("scripts the bank's own documents (discovery, JWKS) bank-wide; reset clears them", async () => {
    const discovery = `${tb.bank.issuer}/.well-known/openid-configuration`;
    const get = (url: string) =>
      tb.mtls.fetch(url, { method: 'GET', headers: {}, body: undefined, redirect: 'manual' });
    expect(
      (await testBankControl(tb, 'PUT', '/faults', { answer: { discovery: { afterCommit: true } } })).status,
    ).toBe(400);
    const set = await testBankControl(tb, 'PUT', '/faults', {
      answer: { discovery: { times: 1 }, jwks: { times: 2, body: {} } },
    });
    expect(set.body.answer.jwks).toMatchObject({ times: 2, status: 200, body: '{}' });
    expect(await (await get(discovery)).text()).toMatch(/Bad Gateway/);
    expect(((await (await get(discovery)).json()) as { issuer: string }).issuer).toBe(tb.bank.issuer);
    expect(await (await get(tb.as.jwks_uri ?? '')).json()).toEqual({});
    await testBankControl(tb, 'POST', '/reset');
    expect((await testBankControl(tb, 'GET', '/faults')).body).toEqual({});
    expect(
      ((await (await get(tb.as.jwks_uri ?? '')).json()) as { keys: unknown[] }).keys.length,
    ).toBeGreaterThan(0);
  });

  it('answers slow_down N times, then authorization_pending again', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'bob' });
    await script('bob', { slowDown: 2 });
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('slow_down');
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('slow_down');
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');
    expect((await testBankControl(tb, 'GET', '/customers/bob/faults')).body.slowDown).toBe(0);
  });

  it('answers 503 with Retry-After on bc-authorize and on the token endpoint', async () => {
    await script('carol', {
      unavailable: { 'bc-authorize': { times: 1, retryAfter: 3 }, token: { times: 1, retryAfter: 1 } },
    });
    const refused = await startCiba(tb, { loginHint: 'carol' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('3');

    const ack = await startCibaOk(tb, { loginHint: 'carol' });
    const busy = await poll(tb, ack.auth_req_id);
    expect(busy.status).toBe(503);
    expect(busy.headers.get('retry-after')).toBe('1');
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');
  });

  it('delays the scripted endpoint by the given milliseconds', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'alice' });
    await script('alice', { delayMs: { token: 300 } });
    const started = performance.now();
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');
    expect(performance.now() - started).toBeGreaterThanOrEqual(290);
  });

  it('records every token poll with its arrival time and outcome', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'bob' });
    for (let i = 0; i < 3; i++) {
      await errorCode(pollResult(tb, ack.auth_req_id));
      await sleep(150);
    }
    const { body } = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(body.polls).toHaveLength(3);
    expect(body.polls.map((p: { outcome: number }) => p.outcome)).toEqual([400, 400, 400]);
    const at = body.polls.map((p: { at: number }) => p.at) as number[];
    expect(at[0]).toBeGreaterThanOrEqual(body.bcAuthorize.at);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(140);
  });

  it('drops the connection without an answer: the client sees a socket error', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'carol' });
    await script('carol', { drop: { token: { times: 1 } }, unavailable: {} });
    expect(await socketErrorOf(poll(tb, ack.auth_req_id))).toBe('UND_ERR_SOCKET');
    expect(await errorCode(pollResult(tb, ack.auth_req_id))).toBe('authorization_pending');
    const { body } = await testBankControl(tb, 'GET', `/requests/${ack.auth_req_id}/timeline`);
    expect(body.polls.map((p: { outcome: unknown }) => p.outcome)).toEqual(['dropped', 400]);

    await script('carol', { drop: { 'bc-authorize': { times: 1 } } });
    expect(await socketErrorOf(startCiba(tb, { loginHint: 'carol' }))).toBe('UND_ERR_SOCKET');
  });

  it('drops the token answer after the tokens were issued (the lost-response case)', async () => {
    const ack = await startCibaOk(tb, { loginHint: 'alice' });
    await testBankControl(tb, 'POST', `/requests/${ack.auth_req_id}/approve`);
    await script('alice', { drop: { token: { times: 1, afterCommit: true } } });
    expect(await socketErrorOf(poll(tb, ack.auth_req_id))).toBe('UND_ERR_SOCKET');
    // the auth_req_id was consumed by the lost exchange
    const again = await poll(tb, ack.auth_req_id);
    expect(
      await errorCode(oauth.processBackchannelAuthenticationGrantResponse(tb.as, shopClient(tb), again)),
    ).toBe('invalid_grant');
  });

  it('rejects a payment with the scripted reason', async () => {
    await script('bob', { rejectPayment: { reason: 'insufficient_funds' } });
    const { tokens } = await obtainTokens(tb, { loginHint: 'bob' });
    const res = await pay(tb, tokens.access_token, { idempotencyKey: 'reject-1' });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({
      paymentId: expect.any(String),
      status: 'rejected',
      reason: 'insufficient_funds',
    });
  });

  it('answers 500 from the payment API N times, then pays', async () => {
    await script('carol', { paymentError: { times: 1 } });
    const { tokens } = await obtainTokens(tb, { loginHint: 'carol' });
    expect((await pay(tb, tokens.access_token, { idempotencyKey: 'err-1' })).status).toBe(500);
    expect((await testBankControl(tb, 'GET', '/payments?login=carol')).body.count).toBe(0);
    const ok = await pay(tb, tokens.access_token, { idempotencyKey: 'err-1' });
    expect(ok.status).toBe(201);
    expect(((await ok.json()) as { status: string }).status).toBe('accepted');
  });

  it('answers 503 with Retry-After from the payment API', async () => {
    await script('alice', { unavailable: { payments: { times: 1, retryAfter: 2 } } });
    const { tokens } = await obtainTokens(tb, { loginHint: 'alice' });
    const res = await pay(tb, tokens.access_token, { idempotencyKey: 'busy-1' });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('2');
  });

  it('drops the payment answer before or after the commit, as scripted', async () => {
    await script('bob', { drop: { payments: { times: 1, afterCommit: false } } });
    const first = await obtainTokens(tb, { loginHint: 'bob' });
    expect(await socketErrorOf(pay(tb, first.tokens.access_token, { idempotencyKey: 'drop-before' }))).toBe(
      'UND_ERR_SOCKET',
    );
    expect((await testBankControl(tb, 'GET', '/payments?login=bob')).body.count).toBe(0);

    await script('bob', { drop: { payments: { times: 1, afterCommit: true } } });
    const second = await obtainTokens(tb, { loginHint: 'bob' });
    expect(await socketErrorOf(pay(tb, second.tokens.access_token, { idempotencyKey: 'drop-after' }))).toBe(
      'UND_ERR_SOCKET',
    );
    const recorded = await testBankControl(tb, 'GET', '/payments?login=bob');
    expect(recorded.body.count).toBe(1);
    // retrying with the same key returns the payment the bank did create
    const retry = await pay(tb, second.tokens.access_token, { idempotencyKey: 'drop-after' });
    expect(retry.status).toBe(201);
    expect(((await retry.json()) as { paymentId: string }).paymentId).toBe(
      recorded.body.payments[0].paymentId,
    );
    expect((await testBankControl(tb, 'GET', '/payments?login=bob')).body.count).toBe(1);
  });
});
