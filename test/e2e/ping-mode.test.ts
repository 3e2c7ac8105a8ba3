/**
 * CIBA ping mode end to end (CIBA Core §10.2, DESIGN.md §7.1): a sandbox bank of this file's own
 * with the ping-mode client, registered with this file's API as its notification endpoint. The
 * bank's timeline shows each ping and each token request as the bank received them.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { type DevSandbox, startDevSandbox } from '../../devstack/sandbox.service.ts';
import { sandboxBankEntry } from '../../sandbox/banks-entry.ts';
import { checkoutBody, decideInBankApp, eventually, useSystem } from '../support/system.ts';

const banksFile = join(inject('certsDir'), '..', `banks-ping-${process.pid}.json`);
let sandbox: DevSandbox;
let apiPort: number;

interface Timeline {
  authReqId: string;
  status: string;
  polls: Array<{ at: number; result: string | null }>;
  pings: Array<{ at: number; copy: number; outcome: number | string | null }>;
  clientNotificationToken: string | null;
}

beforeAll(async () => {
  apiPort = await freePort();
  sandbox = await startDevSandbox({
    certsDir: inject('certsDir'),
    port: 0,
    appPort: 0,
    testMode: true,
    defaultInterval: 1,
    notificationEndpoint: `http://127.0.0.1:${apiPort}/ciba/notify/sandbox`,
  });
  const entry = (id: string) =>
    sandboxBankEntry(sandbox.bank, { ...sandbox.certificates }, { id, deliveryMode: 'ping' });
  // A second ping bank (the same sandbox under another id): a ping must name the right one.
  writeFileSync(banksFile, JSON.stringify({ banks: [entry('sandbox'), entry('other')] }));
});
afterAll(async () => {
  await sandbox?.bank.close();
});
const { http, system } = useSystem(() => ({
  BANKS_FILE: banksFile,
  PORT: String(apiPort),
  PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
}));

async function control<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(`${sandbox.bank.controlUrl}${path}`, init);
  if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

async function customer(faults?: Record<string, unknown>): Promise<string> {
  const login = `p-${randomBytes(5).toString('hex')}`;
  await control('/customers', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ login }),
  });
  if (faults) {
    await control(`/customers/${login}/faults`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(faults),
    });
  }
  return login;
}

/** A checkout awaiting approval, and the bank's record of its request. */
async function awaiting(login: string): Promise<{ id: string; timeline: Timeline }> {
  const res = await http.createCheckout(checkoutBody(login));
  expect(res.status).toBe(202);
  const { id } = (await res.json()) as { id: string };
  await http.waitForStatus(id, ['awaiting_approval']);
  const { requests } = await control<{ requests: Timeline[] }>(`/customers/${login}/timeline`);
  expect(requests).toHaveLength(1);
  return { id, timeline: requests[0]! };
}

const timelineOf = (authReqId: string) => control<Timeline>(`/requests/${authReqId}/timeline`);

function ping(bankId: string, token: string | undefined, body: unknown): Promise<Response> {
  return fetch(`http://127.0.0.1:${apiPort}/ciba/notify/${bankId}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
    },
    body: JSON.stringify(body),
  });
}

describe('CIBA ping mode', () => {
  it('approve → one ping → one token request → succeeded', async () => {
    const login = await customer();
    const { id, timeline } = await awaiting(login);
    // A fresh token of ≥ 128 bits was sent with the request, and only its hash is stored.
    expect(timeline.clientNotificationToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const row = await system().db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row.notificationTokenHash).toMatch(/^[0-9a-f]{64}$/);
    const stored = JSON.stringify(row, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v));
    expect(stored).not.toContain(timeline.clientNotificationToken);

    await decideInBankApp(login, timeline.authReqId, 'approve', sandbox.bank.appUrl);
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 10_000);
    expect(done.status).toBe('succeeded');
    const after = await timelineOf(timeline.authReqId);
    expect(after.pings).toEqual([expect.objectContaining({ copy: 1, outcome: 204 })]);
    expect(after.polls.map((p) => p.result)).toEqual(['tokens']);
    // The token request followed the ping, not the safety poll 4 intervals after the acknowledgement.
    expect(after.polls[0]!.at - after.pings[0]!.at).toBeLessThan(1_000);
  });

  it('deny → one ping → one token request → declined', async () => {
    const login = await customer();
    const { id, timeline } = await awaiting(login);
    await decideInBankApp(login, timeline.authReqId, 'deny', sandbox.bank.appUrl);
    expect((await http.waitForStatus(id, ['declined', 'failed'], 10_000)).status).toBe('declined');
    const after = await timelineOf(timeline.authReqId);
    expect(after.pings).toEqual([expect.objectContaining({ outcome: 204 })]);
    expect(after.polls.map((p) => p.result)).toEqual(['access_denied']);
  });

  it('a dropped ping costs time, not the outcome: the safety poll settles approve and deny', async () => {
    const [approver, denier] = await Promise.all([
      customer({ ping: { drop: 1 } }),
      customer({ ping: { drop: 1 } }),
    ]);
    const [a, d] = await Promise.all([awaiting(approver), awaiting(denier)]);
    await decideInBankApp(approver, a.timeline.authReqId, 'approve', sandbox.bank.appUrl);
    await decideInBankApp(denier, d.timeline.authReqId, 'deny', sandbox.bank.appUrl);
    // The first safety poll comes 4 × the 1 s interval after the acknowledgement.
    expect((await http.waitForStatus(a.id, ['succeeded', 'failed'], 15_000)).status).toBe('succeeded');
    expect((await http.waitForStatus(d.id, ['declined', 'failed'], 15_000)).status).toBe('declined');
    for (const { timeline } of [a, d]) {
      const after = await timelineOf(timeline.authReqId);
      expect(after.pings.map((p) => p.outcome)).toEqual(['dropped']);
      // Polls before the decision answered pending, never sooner than 4 intervals apart.
      const gaps = after.polls.slice(1).map((p, i) => p.at - after.polls[i]!.at);
      for (const gap of gaps) expect(gap).toBeGreaterThanOrEqual(3_900);
    }
  });

  it('a doubled ping makes one token request', async () => {
    const login = await customer({ ping: { twice: 1 } });
    const { id, timeline } = await awaiting(login);
    await decideInBankApp(login, timeline.authReqId, 'approve', sandbox.bank.appUrl);
    expect((await http.waitForStatus(id, ['succeeded', 'failed'], 10_000)).status).toBe('succeeded');
    const after = await eventually(
      async () => {
        const t = await timelineOf(timeline.authReqId);
        return t.pings.length === 2 && t.pings.every((p) => p.outcome !== null) && t;
      },
      5_000,
      'both pings delivered',
    );
    expect(after.pings.map((p) => p.copy).sort()).toEqual([1, 2]);
    expect(after.polls.map((p) => p.result)).toEqual(['tokens']);
  });

  it('refuses forged, cross-checkout, cross-bank, malformed and replayed pings: 401, no bank call, nothing changed', async () => {
    const [loginA, loginB] = await Promise.all([customer(), customer()]);
    const [a, b] = await Promise.all([awaiting(loginA), awaiting(loginB)]);
    const tokenA = a.timeline.clientNotificationToken!;
    const eventsOf = async (id: string) =>
      (await system().db.checkoutEvent.findMany({ where: { checkoutId: id } })).length;
    const before = { a: await eventsOf(a.id), b: await eventsOf(b.id) };
    const refusals: Array<[string, Promise<Response>]> = [
      [
        'unknown token',
        ping('sandbox', randomBytes(32).toString('base64url'), { auth_req_id: b.timeline.authReqId }),
      ],
      ['token of another checkout', ping('sandbox', tokenA, { auth_req_id: b.timeline.authReqId })],
      ['another bank', ping('other', tokenA, { auth_req_id: a.timeline.authReqId })],
      ['an unknown bank', ping('nobank', tokenA, { auth_req_id: a.timeline.authReqId })],
      ['no Authorization', ping('sandbox', undefined, { auth_req_id: a.timeline.authReqId })],
      ['no auth_req_id', ping('sandbox', tokenA, { authReqId: a.timeline.authReqId })],
      ['auth_req_id not a string', ping('sandbox', tokenA, { auth_req_id: 42 })],
      ['an array body', ping('sandbox', tokenA, [a.timeline.authReqId])],
    ];
    for (const [what, pending] of refusals) {
      const res = await pending;
      expect(res.status, what).toBe(401);
      expect(res.headers.get('content-type'), what).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('www-authenticate'), what).toBe('Bearer error="invalid_token"');
      expect(((await res.json()) as { code: string }).code, what).toBe('invalid_notification');
    }
    // Within the first interval nothing was asked (the safety poll is 4 s after the acknowledgement).
    for (const c of [a, b]) {
      expect((await timelineOf(c.timeline.authReqId)).polls, c.id).toEqual([]);
      const read = (await (await http.get(`/v1/checkouts/${c.id}`)).json()) as { status: string };
      expect(read.status).toBe('awaiting_approval');
    }
    expect({ a: await eventsOf(a.id), b: await eventsOf(b.id) }).toEqual(before);

    // The genuine ping, then its replay once the checkout has settled.
    await decideInBankApp(loginA, a.timeline.authReqId, 'approve', sandbox.bank.appUrl);
    await http.waitForStatus(a.id, ['succeeded']);
    const polls = (await timelineOf(a.timeline.authReqId)).polls.length;
    const replay = await ping('sandbox', tokenA, { auth_req_id: a.timeline.authReqId });
    expect(replay.status).toBe(401);
    await new Promise((r) => setTimeout(r, 300));
    expect((await timelineOf(a.timeline.authReqId)).polls).toHaveLength(polls);
    // B is untouched: deny it so nothing is left waiting.
    await decideInBankApp(loginB, b.timeline.authReqId, 'deny', sandbox.bank.appUrl);
    await http.waitForStatus(b.id, ['declined']);
  });

  it('repeated genuine pings never bring token requests closer than the interval (CIBA Core §7.3)', async () => {
    const login = await customer();
    const { id, timeline } = await awaiting(login);
    const token = timeline.clientNotificationToken!;
    const until = Date.now() + 3_500;
    let accepted = 0;
    while (Date.now() < until) {
      const res = await ping('sandbox', token, { auth_req_id: timeline.authReqId });
      if (res.status === 204) accepted++;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(accepted).toBeGreaterThan(10);
    const { polls } = await timelineOf(timeline.authReqId);
    // About one a second (the bank's interval), not one per ping. The one exception: a ping right
    // after a scheduled safety poll (here 4 s after the acknowledgement) asks at once.
    expect(polls.length).toBeGreaterThanOrEqual(2);
    expect(polls.length).toBeLessThanOrEqual(6);
    const short = polls.slice(1).filter((p, i) => p.at - polls[i]!.at < 950);
    expect(short.length).toBeLessThanOrEqual(1);
    await decideInBankApp(login, timeline.authReqId, 'deny', sandbox.bank.appUrl);
    await http.waitForStatus(id, ['declined']);
  });

  it('refuses an auth_req_id that is no visible ASCII, before any query (a NUL byte)', async () => {
    for (const authReqId of ['\u0000', 'abc\u0000def', 'tab\there', 'é']) {
      const res = await ping('sandbox', 'x', { auth_req_id: authReqId });
      expect(res.status, JSON.stringify(authReqId)).toBe(401);
    }
  });

  it('a bank in ping mode needs PUBLIC_URL: the notification endpoint is registered from it', async () => {
    const { loadConfig } = await import('../../src/config.ts');
    const env = { ...system().env, PUBLIC_URL: '' };
    expect(() => loadConfig(env)).toThrow(/PUBLIC_URL is not set: bank "sandbox" uses ping mode/);
    expect(() => loadConfig({ ...env, PUBLIC_URL: 'ftp://x' })).toThrow(/PUBLIC_URL is not an http\(s\) URL/);
    expect(() => loadConfig({ ...env, PUBLIC_URL: 'http://pay.example', NODE_ENV: 'production' })).toThrow();
  });
});

describe('the notification endpoint is rate-limited per bank', () => {
  const limited = useSystem(() => ({
    BANKS_FILE: banksFile,
    PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    CIBA_NOTIFY_RATE_LIMIT_MAX: '3',
  }));

  it('answers 429 past the limit of one bank, while another bank keeps its own budget', async () => {
    const at = (bankId: string) =>
      fetch(`${limited.system().url}/ciba/notify/${bankId}`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${randomBytes(32).toString('base64url')}`,
        },
        body: JSON.stringify({ auth_req_id: 'x' }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await at('sandbox')).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    const over = await at('sandbox');
    expect(over.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(((await over.json()) as { code: string }).code).toBe('rate_limited');
    expect((await at('other')).status).toBe(401);
    // Refused pings count nowhere else: a merchant key from the same address still works.
    expect((await limited.http.get('/v1/checkouts?limit=1')).status).toBe(200);
  });
});
