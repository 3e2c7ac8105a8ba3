/**
 * What the API does for its own protection: a rate limit per credential (problem+json 429 with
 * Retry-After), security headers and no caching on every API answer, a 16 KiB body limit, unknown
 * fields refused. (A clientSecret opening only its own checkout is in checkout-api.test.ts.)
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../src/app.ts';
import { createApiKey } from '../../src/infra/api-keys.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import { checkoutBody } from '../support/system.ts';

const LIMIT = { max: 3, timeWindowMs: 60_000 } as const;

let limited: ApiApp;
let open: ApiApp;

beforeAll(async () => {
  // One app with a small limit for the rate-limit tests, one with a large one for the rest.
  [limited, open] = await Promise.all([
    startApiApp({ rateLimit: LIMIT }),
    startApiApp({ rateLimit: { max: 10_000, timeWindowMs: 60_000 } }),
  ]);
});
afterAll(async () => {
  await Promise.all([limited?.close(), open?.close()]);
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function expectProblem(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({ status, code, type: expect.stringMatching(/^https:\/\//) });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  expect(body.requestId).toBe(res.headers['x-request-id']);
  return body;
}

function expectApiSecurityHeaders(res: LightMyRequestResponse): void {
  expect(res.headers['x-content-type-options']).toBe('nosniff');
  expect(res.headers['x-frame-options']).toBe('DENY');
  expect(res.headers['referrer-policy']).toBe('no-referrer');
  expect(res.headers['content-security-policy']).toBe("default-src 'none';frame-ancestors 'none'");
  expect(res.headers['strict-transport-security']).toMatch(/max-age=\d+/);
  expect(res.headers['cache-control']).toBe('no-store');
}

describe('rate limit per credential', () => {
  it('limits one merchant key without limiting another; 429 is problem+json with Retry-After', async () => {
    const { app, db } = limited;
    const { key: first } = await createApiKey(db, `first-${randomUUID()}`);
    const { key: second } = await createApiKey(db, `second-${randomUUID()}`);
    const list = (key: string) => app.inject({ method: 'GET', url: '/v1/checkouts', headers: bearer(key) });

    for (let i = 0; i < LIMIT.max; i++) {
      const ok = await list(first);
      expect(ok.statusCode).toBe(200);
      expect(ok.headers['x-ratelimit-limit']).toBe(String(LIMIT.max));
      expect(ok.headers['x-ratelimit-remaining']).toBe(String(LIMIT.max - 1 - i));
    }
    const refused = await list(first);
    const problem = expectProblem(refused, 429, 'rate_limited');
    expect(problem.title).toBe('Too many requests');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(LIMIT.timeWindowMs / 1000);
    expectApiSecurityHeaders(refused);
    // Any route with that key is refused, a body not even read.
    expectProblem(
      await app.inject({
        method: 'POST',
        url: '/v1/checkouts',
        headers: { ...bearer(first), 'idempotency-key': randomUUID() },
        payload: checkoutBody('alice'),
      }),
      429,
      'rate_limited',
    );

    // Another key of the same client address is not affected.
    expect((await list(second)).statusCode).toBe(200);
  });

  it("counts a checkout's clientSecret apart from the merchant key that created it", async () => {
    const { app, db } = limited;
    const { key } = await createApiKey(db, `merchant-${randomUUID()}`);
    const created = await app.inject({
      method: 'POST',
      url: '/v1/checkouts',
      headers: { ...bearer(key), 'idempotency-key': randomUUID() },
      payload: checkoutBody('alice'),
    });
    expect(created.statusCode).toBe(202);
    const { id, clientSecret } = created.json() as { id: string; clientSecret: string };
    const read = (token: string) =>
      app.inject({ method: 'GET', url: `/v1/checkouts/${id}`, headers: bearer(token) });
    for (let i = 1; i < LIMIT.max; i++) expect((await read(key)).statusCode).toBe(200);
    expectProblem(await read(key), 429, 'rate_limited');
    // The browser following the checkout has its own allowance.
    for (let i = 0; i < LIMIT.max; i++) expect((await read(clientSecret)).statusCode).toBe(200);
    expectProblem(await read(clientSecret), 429, 'rate_limited');
  });

  it('does not limit health checks or the API documentation', async () => {
    const { app } = limited;
    for (let i = 0; i < LIMIT.max * 3; i++) {
      expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
      expect((await app.inject({ method: 'GET', url: '/docs/json' })).statusCode).toBe(200);
    }
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.headers['x-ratelimit-limit']).toBeUndefined();
  });

  it('counts failed authentications per client address: past the budget, made-up keys are refused unread', async () => {
    const { app } = limited;
    const address = '198.51.100.7';
    const from = (token: string, remoteAddress = address) =>
      app.inject({ method: 'GET', url: '/v1/checkouts', headers: bearer(token), remoteAddress });
    // Each made-up key is a new per-credential bucket, so the failures count per address.
    for (let i = 0; i < LIMIT.max; i++) expectProblem(await from(`bpk_madeup${i}`), 401, 'unauthorized');
    expectProblem(await from('bpk_yet-another'), 429, 'rate_limited');
    // Other addresses are not affected.
    expectProblem(await from('bpk_madeup-elsewhere', '198.51.100.8'), 401, 'unauthorized');
  });
});

describe('failed authentications never lock out a valid credential', () => {
  const spendFailureBudget = async (from: (token: string) => Promise<LightMyRequestResponse>) => {
    let refused = false;
    for (let i = 0; i < LIMIT.max + 2 && !refused; i++) {
      refused = (await from(`bpk_madeup-${randomUUID()}`)).statusCode === 429;
    }
    expect(refused, 'made-up keys refused once the budget is spent').toBe(true);
  };

  it('serves a merchant key from an address whose failure budget is spent', async () => {
    const { app, db } = limited;
    const shared = '198.51.100.30';
    const { key } = await createApiKey(db, `victim-${randomUUID()}`);
    const list = (token: string) =>
      app.inject({ method: 'GET', url: '/v1/checkouts', headers: bearer(token), remoteAddress: shared });
    expect((await list(key)).statusCode).toBe(200);
    // Someone behind the same address (a NAT, a shared proxy) tries made-up keys.
    await spendFailureBudget(list);
    expect((await list(key)).statusCode).toBe(200);
    const created = await app.inject({
      method: 'POST',
      url: '/v1/checkouts',
      headers: { ...bearer(key), 'idempotency-key': randomUUID() },
      payload: checkoutBody('alice'),
      remoteAddress: shared,
    });
    expect(created.statusCode, created.body).toBe(202);
    // Still counted per credential only: the key's own limit (3) is what refuses it next.
    expectProblem(await list(key), 429, 'rate_limited');
    expect((await list(key)).json().detail).toMatch(/with this credential/);
  });

  it('serves a genuine clientSecret issued by another API process, whatever the failures from its address', async () => {
    // Two API processes of one installation: same database, same keys. A checkout made on one,
    // its browser behind the same address (a carrier NAT) as someone failing on the other.
    const second = await startApiApp({ rateLimit: LIMIT, env: limited.env });
    try {
      const { key } = await createApiKey(limited.db, `shop-${randomUUID()}`);
      const created = await limited.app.inject({
        method: 'POST',
        url: '/v1/checkouts',
        headers: { ...bearer(key), 'idempotency-key': randomUUID() },
        payload: checkoutBody('alice'),
      });
      const { id, clientSecret } = created.json() as { id: string; clientSecret: string };
      const shared = '203.0.113.9';
      for (let i = 0; i <= LIMIT.max; i++) {
        await second.app.inject({
          method: 'GET',
          url: `/v1/checkouts/${id}`,
          headers: bearer(`bpk_${randomBytes(32).toString('base64url')}`),
          remoteAddress: shared,
        });
      }
      const res = await second.app.inject({
        method: 'GET',
        url: `/v1/checkouts/${id}`,
        headers: bearer(clientSecret),
        remoteAddress: shared,
      });
      expect(res.statusCode, res.body).toBe(200);
    } finally {
      await second.close();
    }
  });

  it("counts wrong clientSecrets as failures; the checkout's own clientSecret still works", async () => {
    const { app, db } = limited;
    const { key } = await createApiKey(db, `shop-${randomUUID()}`);
    const create = async () => {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/checkouts',
        headers: { ...bearer(key), 'idempotency-key': randomUUID() },
        payload: checkoutBody('alice'),
        remoteAddress: '203.0.113.20',
      });
      expect(res.statusCode, res.body).toBe(202);
      return res.json() as { id: string; clientSecret: string };
    };
    const [mine, other] = [await create(), await create()];
    const read = (id: string, token: string, remoteAddress: string) =>
      app.inject({ method: 'GET', url: `/v1/checkouts/${id}`, headers: bearer(token), remoteAddress });
    const guess = () => `${mine.id}_secret_${randomBytes(32).toString('base64url')}`;

    const browser = '198.51.100.40';
    expect((await read(mine.id, mine.clientSecret, browser)).statusCode).toBe(200);
    // Guessing answers 404 (DESIGN.md §2) and spends the address's failure budget.
    for (let i = 0; i < LIMIT.max; i++)
      expectProblem(await read(mine.id, guess(), browser), 404, 'checkout_not_found');
    expectProblem(await read(mine.id, guess(), browser), 429, 'rate_limited');
    // The right clientSecret is served, and so is one issued but not used yet.
    expect((await read(mine.id, mine.clientSecret, browser)).statusCode).toBe(200);
    expect((await read(other.id, other.clientSecret, browser)).statusCode).toBe(200);

    // A clientSecret of another checkout is a failure too (still answered 404).
    const elsewhere = '198.51.100.41';
    expectProblem(await read(mine.id, other.clientSecret, elsewhere), 404, 'checkout_not_found');
    for (let i = 1; i < LIMIT.max; i++)
      expectProblem(await read(mine.id, guess(), elsewhere), 404, 'checkout_not_found');
    expectProblem(await read(mine.id, guess(), elsewhere), 429, 'rate_limited');
  });

  describe('behind proxies named in TRUST_PROXY', () => {
    const PROXY = '10.0.0.2';
    const ATTACKER = '198.51.100.66';
    const MERCHANT = '203.0.113.10';
    let proxied: ApiApp;
    beforeAll(async () => {
      proxied = await startApiApp({ rateLimit: LIMIT, env: { TRUST_PROXY: '10.0.0.0/8' } });
    });
    afterAll(async () => {
      await proxied?.close();
    });
    const via = (forwardedFor: string, token: string, remoteAddress = PROXY) =>
      proxied.app.inject({
        method: 'GET',
        url: '/v1/checkouts',
        headers: { ...bearer(token), 'x-forwarded-for': forwardedFor },
        remoteAddress,
      });

    it('counts failures against the address the proxy saw, not the leftmost entry the client wrote', async () => {
      // The attacker writes the merchant server's address; the proxy appends the attacker's.
      for (let i = 0; i < LIMIT.max; i++) {
        expectProblem(await via(`${MERCHANT}, ${ATTACKER}`, `bpk_madeup${i}`), 401, 'unauthorized');
      }
      expectProblem(await via(`${MERCHANT}, ${ATTACKER}`, 'bpk_more'), 429, 'rate_limited');
      // The merchant server's own address has no failures: even a key it has not used yet is looked up.
      expectProblem(await via(MERCHANT, 'bpk_typo'), 401, 'unauthorized');
      expect((await via(MERCHANT, proxied.apiKey)).statusCode).toBe(200);
      // A client that reaches the API directly is its own address, whatever it writes.
      const direct = '198.51.100.67';
      for (let i = 0; i < LIMIT.max; i++) {
        expectProblem(await via(MERCHANT, `bpk_direct${i}`, direct), 401, 'unauthorized');
      }
      expectProblem(await via(MERCHANT, 'bpk_direct-more', direct), 429, 'rate_limited');
      expectProblem(await via(MERCHANT, 'bpk_typo2'), 401, 'unauthorized');
    });

    it('limits an attacker who rotates the spoofed entries', async () => {
      const attacker = '198.51.100.68';
      for (let i = 0; i < LIMIT.max; i++) {
        expectProblem(await via(`192.0.2.${i}, ${attacker}`, `bpk_rotating${i}`), 401, 'unauthorized');
      }
      expectProblem(await via(`192.0.2.200, ${attacker}`, 'bpk_rotating-more'), 429, 'rate_limited');
    });
  });
});

describe('two Authorization headers', () => {
  it('are refused with 400 invalid_request before either is read (a proxy might read the other)', async () => {
    const res = await open.app.inject({
      method: 'GET',
      url: '/v1/checkouts',
      // light-my-request sends each value of an array as its own header line.
      headers: { authorization: ['Bearer bpk_first', 'Bearer bpk_second'] as unknown as string },
    });
    const problem = expectProblem(res, 400, 'invalid_request');
    expect(problem.detail).toMatch(/one Authorization header/);
    // One is fine (401 for this made-up key).
    expectProblem(
      await open.app.inject({ method: 'GET', url: '/v1/checkouts', headers: bearer('bpk_x') }),
      401,
      'unauthorized',
    );
  });
});

describe('request ids', () => {
  const logs: string[] = [];
  let logged: ApiApp;
  beforeAll(async () => {
    logged = await startApiApp({
      env: { LOG_LEVEL: 'info' },
      logStream: { write: (line: string) => void logs.push(line) },
    });
  });
  afterAll(async () => {
    await logged?.close();
  });
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
  const linesOf = (requestId: string) =>
    logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.reqId === requestId);
  const call = (clientRequestId: string) =>
    logged.app.inject({ method: 'GET', url: '/v1/checkouts', headers: { 'x-request-id': clientRequestId } });

  it('are always ours: a long client id is neither echoed nor logged', async () => {
    const long = 'x'.repeat(3_000);
    const res = await call(long);
    const problem = expectProblem(res, 401, 'unauthorized');
    expect(res.headers['x-request-id']).toMatch(UUID);
    expect(problem.requestId).toMatch(UUID);
    expect(linesOf(String(res.headers['x-request-id'])).length).toBeGreaterThan(0);
    expect(logs.some((l) => l.includes('x'.repeat(129)))).toBe(false);
  });

  it('are unique even when clients repeat theirs; a valid client id is logged beside ours', async () => {
    const [first, second] = [await call('order-42'), await call('order-42')];
    const ours = [first, second].map((r) => String(r.headers['x-request-id']));
    for (const id of ours) {
      expect(id).toMatch(UUID);
      const lines = linesOf(id);
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(line.clientRequestId).toBe('order-42');
    }
    expect(ours[0]).not.toBe(ours[1]);
    // Not printable ASCII, or over 128 characters: dropped.
    for (const bad of ['a'.repeat(129), 'two words', 'caf\u00e9']) {
      const id = String((await call(bad)).headers['x-request-id']);
      expect(id).toMatch(UUID);
      for (const line of linesOf(id)) expect(line).not.toHaveProperty('clientRequestId');
    }
  });
});

describe('security headers', () => {
  it('are on API answers, problem answers and unknown routes, with Cache-Control: no-store', async () => {
    const { app, apiKey } = open;
    const banks = await app.inject({ method: 'GET', url: '/v1/banks' });
    expect(banks.statusCode).toBe(200);
    expectApiSecurityHeaders(banks);

    const created = await app.inject({
      method: 'POST',
      url: '/v1/checkouts',
      headers: { ...bearer(apiKey), 'idempotency-key': randomUUID() },
      payload: checkoutBody('alice'),
    });
    expect(created.statusCode).toBe(202);
    expect(created.json().clientSecret).toBeTruthy();
    expectApiSecurityHeaders(created);

    const unauthorized = await app.inject({ method: 'GET', url: '/v1/checkouts' });
    expectProblem(unauthorized, 401, 'unauthorized');
    expectApiSecurityHeaders(unauthorized);

    const unknown = await app.inject({ method: 'GET', url: '/v1/nothing-here' });
    expectProblem(unknown, 404, 'not_found');
    expectApiSecurityHeaders(unknown);

    expectApiSecurityHeaders(await app.inject({ method: 'GET', url: '/health/ready' }));
  });

  it('are on the answers to URLs the router refuses (malformed encoding, overlong id)', async () => {
    const { app, apiKey } = open;
    const malformed = await app.inject({
      method: 'GET',
      url: '/v1/checkouts/%E0%A4%A',
      headers: bearer(apiKey),
    });
    expectProblem(malformed, 400, 'invalid_request');
    expectApiSecurityHeaders(malformed);
    const long = await app.inject({
      method: 'POST',
      url: `/v1/checkouts/chk_${'a'.repeat(200)}/cancel`,
      headers: bearer(apiKey),
    });
    expectProblem(long, 414, 'uri_too_long');
    expectApiSecurityHeaders(long);
  });

  it('leave Swagger UI working: /docs has a CSP that allows its own scripts and styles', async () => {
    const { app } = open;
    const ui = await app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    const csp = String(ui.headers['content-security-policy']);
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("style-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain("default-src 'none'");
    expect(ui.headers['x-content-type-options']).toBe('nosniff');
    // The scripts the page loads are served.
    for (const src of ui.body.matchAll(/<script src="\.\/([^"]+)"/g)) {
      const asset = await app.inject({ method: 'GET', url: `/docs/${src[1]}` });
      expect(asset.statusCode, src[1]).toBe(200);
    }
    const doc = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(doc.statusCode).toBe(200);
    expect(doc.json()).toMatchObject({ openapi: '3.1.0' });
  });
});

describe('request bodies', () => {
  it('refuses a body over 16 KiB with 413 problem+json body_too_large, storing nothing', async () => {
    const { app, apiKey, db } = open;
    const idempotencyKey = randomUUID();
    const reference = `order-${randomUUID()}`;
    const payload = JSON.stringify(checkoutBody('alice', { reference, description: 'x'.repeat(17 * 1024) }));
    expect(Buffer.byteLength(payload)).toBeGreaterThan(BODY_LIMIT_BYTES);
    const res = await app.inject({
      method: 'POST',
      url: '/v1/checkouts',
      headers: { ...bearer(apiKey), 'idempotency-key': idempotencyKey, 'content-type': 'application/json' },
      payload,
    });
    expectProblem(res, 413, 'body_too_large');
    expectApiSecurityHeaders(res);
    expect(await db.checkout.count({ where: { reference } })).toBe(0);
    // The Idempotency-Key was not used up.
    const retry = await app.inject({
      method: 'POST',
      url: '/v1/checkouts',
      headers: { ...bearer(apiKey), 'idempotency-key': idempotencyKey },
      payload: checkoutBody('alice', { reference }),
    });
    expect(retry.statusCode).toBe(202);
  });

  it('refuses unknown fields (not stripped) with 400 naming the field, storing nothing', async () => {
    const { app, apiKey, db } = open;
    const reference = `order-${randomUUID()}`;
    for (const extra of [{ colour: 'red' }, { __proto__extra: 1 }, { amount_minor: 4990 }]) {
      const res = await app.inject({
        method: 'POST',
        url: '/v1/checkouts',
        headers: { ...bearer(apiKey), 'idempotency-key': randomUUID() },
        payload: checkoutBody('alice', { reference, ...extra }),
      });
      const problem = expectProblem(res, 400, 'invalid_request');
      expect(problem.errors).toEqual([
        { pointer: `/body/${Object.keys(extra)[0]}`, detail: 'unknown field' },
      ]);
    }
    expect(await db.checkout.count({ where: { reference } })).toBe(0);
  });
});
