/**
 * Live status (DESIGN.md §7.2) against the real system: the ETag of every read, the held read
 * (`If-None-Match` + `Prefer: wait`), the Server-Sent Events stream, and their limits. Changes
 * come from the worker (the customer approves in the sandbox bank's app) or from a cancel.
 * Two API processes and a worker process: live-status-processes.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { followStream, readRaw } from '../support/live.ts';
import {
  checkoutBody,
  decideInBankApp,
  eventually,
  newBankCustomer,
  pendingInBankApp,
  useSystem,
} from '../support/system.ts';

// A short heartbeat so that a test sees one; small per-clientSecret limits so that a test reaches them.
const { http, system } = useSystem({
  LIVE_HEARTBEAT_MS: '300',
  LIVE_MAX_PER_CLIENT_SECRET: '2',
});

// biome-ignore lint/suspicious/noExplicitAny: test assertions read JSON freely
type Json = any;

interface Created {
  id: string;
  clientSecret: string;
  login: string;
}

/** A checkout of a fresh customer, awaiting approval in the bank app. */
async function awaitingCheckout(): Promise<Created & { authReqId: string }> {
  const login = await newBankCustomer();
  const res = await http.createCheckout(checkoutBody(login));
  expect(res.status).toBe(202);
  const { id, clientSecret } = (await res.json()) as Created;
  const { authReqId } = await pendingInBankApp(login);
  await http.waitForStatus(id, ['awaiting_approval']);
  return { id, clientSecret, login, authReqId };
}

function read(id: string, headers: Record<string, string> = {}, token = system().apiKey): Promise<Response> {
  return fetch(`${system().url}/v1/checkouts/${id}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
}

const streamUrl = (id: string, clientSecret?: string) =>
  `${system().url}/v1/checkouts/${id}/stream${clientSecret ? `?client_secret=${encodeURIComponent(clientSecret)}` : ''}`;

async function expectProblem(res: Response, status: number, code: string): Promise<Json> {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Json;
  expect(body).toMatchObject({ status, code });
  return body;
}

describe('ETag and If-None-Match', () => {
  it('every read has a weak ETag; If-None-Match with it answers 304 at once, any other answers 200', async () => {
    const { id, clientSecret } = await awaitingCheckout();
    const first = await read(id);
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag') ?? '';
    expect(etag).toMatch(/^W\/"[A-Za-z0-9_-]{22}"$/);
    // The browser's read (no timeline) has the same tag: it is the state's, not the bytes'.
    const browser = await read(id, {}, clientSecret);
    expect(browser.headers.get('etag')).toBe(etag);
    expect(((await browser.json()) as Json).timeline).toBeUndefined();

    const unchanged = await read(id, { 'if-none-match': etag });
    expect(unchanged.status).toBe(304);
    expect(unchanged.headers.get('etag')).toBe(etag);
    expect(await unchanged.text()).toBe('');
    // RFC 9110 §13.1.2: weak comparison, a list, or * all match.
    for (const condition of [etag.slice(2), `W/"x", ${etag}`, '*']) {
      expect((await read(id, { 'if-none-match': condition }, clientSecret)).status).toBe(304);
    }
    const other = await read(id, { 'if-none-match': 'W/"somethingelse"' });
    expect(other.status).toBe(200);
    expect(other.headers.get('etag')).toBe(etag);
  });

  it('a token poll changes neither the ETag nor updatedAt (it only adds to the timeline)', async () => {
    const { id } = await awaitingCheckout();
    const before = await read(id);
    const etag = before.headers.get('etag') ?? '';
    const checkout = (await before.json()) as Json;
    const polls = (c: Json) => c.timeline.filter((e: Json) => e.step === 'token_poll').length;
    // The sandbox bank acknowledged a 1-second interval: more polls are recorded while we wait.
    const after = await eventually(
      async () => {
        const res = await read(id);
        const body = (await res.json()) as Json;
        return polls(body) >= polls(checkout) + 2 ? { res, body } : undefined;
      },
      15_000,
      'two more token polls',
    );
    expect(after.body.status).toBe('awaiting_approval');
    expect(after.body.updatedAt).toBe(checkout.updatedAt);
    expect(after.res.headers.get('etag')).toBe(etag);
  });
});

describe('held read (If-None-Match + Prefer: wait)', () => {
  it('answers 200 with the new checkout and ETag when the worker changes it during the wait', async () => {
    const { id, clientSecret, login, authReqId } = await awaitingCheckout();
    const etag = (await read(id, {}, clientSecret)).headers.get('etag') ?? '';
    const held = read(id, { 'if-none-match': etag, prefer: 'wait=25' }, clientSecret);
    await decideInBankApp(login, authReqId, 'approve');
    const res = await held;
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=25');
    const body = (await res.json()) as Json;
    expect(['authorized', 'succeeded']).toContain(body.status);
    expect(body.timeline).toBeUndefined();
    expect(res.headers.get('etag')).not.toBe(etag);
    expect(res.headers.get('etag')).toMatch(/^W\//);
  });

  it('answers 304 once N seconds passed without a change, with Preference-Applied', async () => {
    const { id } = await awaitingCheckout();
    const etag = (await read(id)).headers.get('etag') ?? '';
    const started = Date.now();
    const res = await read(id, { 'if-none-match': etag, prefer: 'wait=1' });
    expect(res.status).toBe(304);
    // It was held (token polls happened meanwhile and did not wake it with a 200).
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(res.headers.get('preference-applied')).toBe('wait=1');
    expect(res.headers.get('etag')).toBe(etag);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
  });

  it('a non-matching ETag answers at once, whatever the wait', async () => {
    const { id } = await awaitingCheckout();
    const started = Date.now();
    const res = await read(id, { 'if-none-match': 'W/"not-this-state"', prefer: 'wait=30' });
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBeNull();
    // Not held: a held read would have answered after 30 s.
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('clamps a wait above 30 s to 30 (Preference-Applied says so); a cancel ends it with 200', async () => {
    const { id } = await awaitingCheckout();
    const etag = (await read(id)).headers.get('etag') ?? '';
    const held = read(id, { 'if-none-match': etag, prefer: 'respond-async, wait=3600; x=1' });
    await new Promise((r) => setTimeout(r, 200));
    expect((await http.post(`/v1/checkouts/${id}/cancel`)).status).toBe(200);
    const res = await held;
    expect(res.status).toBe(200);
    expect(res.headers.get('preference-applied')).toBe('wait=30');
    const body = (await res.json()) as Json;
    expect(body.status).toBe('canceled');
    // The merchant's answer has the timeline, as the plain read's.
    expect(body.timeline.at(-1)).toMatchObject({ step: 'cancel', outcome: 'canceled' });
  });

  it('If-None-Match without Prefer, or with a wait it cannot read, answers 304 at once', async () => {
    const { id } = await awaitingCheckout();
    const etag = (await read(id)).headers.get('etag') ?? '';
    for (const prefer of [undefined, 'wait=soon', 'wait=0', 'return=minimal']) {
      const res = await read(id, { 'if-none-match': etag, ...(prefer ? { prefer } : {}) });
      expect(res.status).toBe(304);
      expect(res.headers.get('preference-applied')).toBeNull();
    }
  });

  it('per clientSecret, at most LIVE_MAX_PER_CLIENT_SECRET held reads at once: 429 live_limit_reached', async () => {
    const { id, clientSecret } = await awaitingCheckout();
    const etag = (await read(id)).headers.get('etag') ?? '';
    const hold = (wait: number) => read(id, { 'if-none-match': etag, prefer: `wait=${wait}` }, clientSecret);
    const held = [hold(20), hold(20)];
    // Let both arrive first (a probe sent with them could take a slot before one of them).
    await new Promise((r) => setTimeout(r, 500));
    // Once both are held, a third is refused (until then it is held for 1 s and answered 304).
    const refused = await eventually(
      async () => {
        const res = await hold(1);
        return res.status === 429 ? res : undefined;
      },
      10_000,
      'a refused held read',
    );
    const problem = await expectProblem(refused, 429, 'live_limit_reached');
    expect(problem.title).toBe('Too many open streams or held reads');
    expect(refused.headers.get('retry-after')).toBe('5');
    // The merchant key is another credential: not refused.
    expect((await read(id, { 'if-none-match': etag, prefer: 'wait=1' })).status).toBe(304);
    // A change answers the held ones; their slots are free again.
    await http.post(`/v1/checkouts/${id}/cancel`);
    for (const res of await Promise.all(held)) expect(res.status).toBe(200);
    const now = (await read(id)).headers.get('etag') ?? '';
    expect((await read(id, { 'if-none-match': now, prefer: 'wait=1' }, clientSecret)).status).toBe(304);
  });
});

describe('the stream (Server-Sent Events)', () => {
  it('sends the checkout first, then each change in order, succeeded last; then the stream ends', async () => {
    const login = await newBankCustomer();
    const created = (await (await http.createCheckout(checkoutBody(login))).json()) as Created;
    // A browser: EventSource with the clientSecret in the URL.
    const stream = followStream(streamUrl(created.id, created.clientSecret));
    try {
      const first = await stream.event(() => true);
      expect(['pending', 'awaiting_approval']).toContain(first.checkout.status);
      expect(first.checkout.id).toBe(created.id);
      expect(first.checkout.timeline).toBeUndefined();
      const request = await pendingInBankApp(login);
      await decideInBankApp(login, request.authReqId, 'approve');
      await stream.event((e) => e.checkout.status === 'succeeded');
      // The server ended the stream; the EventSource reconnected with the last id, was answered
      // 204 (it has the terminal state) and stopped for good.
      await stream.closed();
      // In the order of the state machine; a status may come twice when the checkout changed
      // within it (updatedAt moves when the payment request is recorded), never the same state twice.
      const statuses = stream.events.map((e) => e.checkout.status);
      const order = ['pending', 'awaiting_approval', 'authorized', 'succeeded'];
      const ranks = statuses.map((s) => order.indexOf(s));
      expect(ranks).toEqual([...ranks].sort((a, b) => a - b));
      expect(ranks).not.toContain(-1);
      expect(new Set(stream.events.map((e) => e.id)).size).toBe(stream.events.length);
      expect(statuses.at(-1)).toBe('succeeded');
      expect(statuses).toContain('awaiting_approval');
      // Each id is the ETag of that state, as the plain read has it.
      const etag = (await read(created.id)).headers.get('etag');
      expect(etag).toBe(`W/"${stream.events.at(-1)?.id}"`);
    } finally {
      stream.close();
    }
  });

  it('the response: text/event-stream, no-store, request id; it ends after a terminal checkout', async () => {
    const { id } = await awaitingCheckout();
    await http.post(`/v1/checkouts/${id}/cancel`);
    const raw = await readRaw(streamUrl(id), { authorization: `Bearer ${system().apiKey}` });
    expect(raw.status).toBe(200);
    expect(raw.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    expect(raw.headers.get('cache-control')).toBe('no-store');
    expect(raw.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(raw.headers.get('x-content-type-options')).toBe('nosniff');
    await raw.ended;
    expect(raw.events.map((e) => e.checkout.status)).toEqual(['canceled']);
  });

  it('resumes with Last-Event-ID: nothing repeated while unchanged, the current checkout once it changed', async () => {
    const { id, clientSecret } = await awaitingCheckout();
    const etag = (await read(id)).headers.get('etag') ?? '';
    const version = etag.slice(3, -1);
    const resumed = await readRaw(streamUrl(id, clientSecret), { 'last-event-id': version });
    const stale = await readRaw(streamUrl(id, clientSecret), { 'last-event-id': 'an-older-state' });
    try {
      await stale.until(() => stale.events.length === 1);
      expect(stale.events[0]).toMatchObject({ id: version, checkout: { status: 'awaiting_approval' } });
      // The resumed one opens with a comment and repeats nothing.
      await resumed.until(() => resumed.comments.length > 0);
      expect(resumed.events).toEqual([]);
      await http.post(`/v1/checkouts/${id}/cancel`);
      await resumed.ended;
      expect(resumed.events.map((e) => e.checkout.status)).toEqual(['canceled']);
      // Resuming from the terminal state: 204, nothing more will come.
      const last = resumed.events[0]?.id ?? '';
      const done = await fetch(streamUrl(id, clientSecret), { headers: { 'last-event-id': last } });
      expect(done.status).toBe(204);
    } finally {
      resumed.abort();
      stale.abort();
    }
  });

  it('sends a comment line while idle (LIVE_HEARTBEAT_MS)', async () => {
    const { id, clientSecret } = await awaitingCheckout();
    const raw = await readRaw(streamUrl(id, clientSecret));
    try {
      await raw.until(() => raw.events.length === 1 && raw.comments.length >= 2);
      expect(raw.events).toHaveLength(1);
    } finally {
      raw.abort();
    }
  });

  it("refuses another checkout's clientSecret as the plain read does (404), in the URL or the header", async () => {
    const mine = await awaitingCheckout();
    const other = await awaitingCheckout();
    await expectProblem(await fetch(streamUrl(mine.id, other.clientSecret)), 404, 'checkout_not_found');
    await expectProblem(
      await fetch(streamUrl(mine.id), { headers: { authorization: `Bearer ${other.clientSecret}` } }),
      404,
      'checkout_not_found',
    );
    await expectProblem(await read(mine.id, {}, other.clientSecret), 404, 'checkout_not_found');
    // Without a credential: 401, as the plain read.
    await expectProblem(await fetch(streamUrl(mine.id)), 401, 'unauthorized');
    // No HEAD on a stream (headers alone would leave nothing to follow).
    expect((await fetch(streamUrl(mine.id, mine.clientSecret), { method: 'HEAD' })).status).toBe(404);
  });

  it('takes ?client_secret= on the stream only, and never a merchant key in the URL', async () => {
    const { id, clientSecret } = await awaitingCheckout();
    // The plain read does not read the query: no credential there.
    await expectProblem(
      await fetch(`${system().url}/v1/checkouts/${id}?client_secret=${clientSecret}`),
      401,
      'unauthorized',
    );
    const keyInUrl = await expectProblem(await fetch(streamUrl(id, system().apiKey)), 401, 'unauthorized');
    expect(keyInUrl.detail).toMatch(/never accepted in the URL/);
  });

  it('per clientSecret, at most LIVE_MAX_PER_CLIENT_SECRET open streams: 429 live_limit_reached', async () => {
    const { id, clientSecret } = await awaitingCheckout();
    const open = [await readRaw(streamUrl(id, clientSecret)), await readRaw(streamUrl(id, clientSecret))];
    try {
      for (const s of open) expect(s.status).toBe(200);
      await expectProblem(await fetch(streamUrl(id, clientSecret)), 429, 'live_limit_reached');
      // A merchant key is another credential.
      const merchant = await readRaw(streamUrl(id), { authorization: `Bearer ${system().apiKey}` });
      expect(merchant.status).toBe(200);
      merchant.abort();
      // A stream the browser closes gives its slot back.
      open[0]?.abort();
      const again = await eventually(
        async () => {
          const res = await readRaw(streamUrl(id, clientSecret));
          if (res.status === 200) return res;
          res.abort();
          return undefined;
        },
        5_000,
        'a free slot',
      );
      again.abort();
    } finally {
      for (const s of open) s.abort();
    }
  });
});
