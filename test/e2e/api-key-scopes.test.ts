/**
 * Restricted API keys: a key made with scopes can do only what they name, on every route, and is
 * refused with 403 problem+json `insufficient_scope` (RFC 6750 §3.1) before anything is stored or
 * changed. Full-access keys (no scopes: every key made before scopes existed) and a browser's
 * clientSecret are unaffected. In process (`app.inject`), without a worker: checkouts stay pending.
 */
import { randomUUID } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, type Scope } from '../../src/infra/api-keys.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import { checkoutBody } from '../support/system.ts';

let api: ApiApp;
beforeAll(async () => {
  api = await startApiApp({ rateLimit: { max: 100_000, timeWindowMs: 60_000 } });
});
afterAll(async () => {
  await api?.close();
});

const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

async function keyWith(...scopes: Scope[]): Promise<{ id: string; key: string }> {
  return createApiKey(api.db, `restricted-${randomUUID()}`, scopes);
}

function create(key: string, idempotencyKey = randomUUID()): Promise<LightMyRequestResponse> {
  return api.app.inject({
    method: 'POST',
    url: '/v1/checkouts',
    headers: { ...bearer(key), 'idempotency-key': idempotencyKey },
    payload: checkoutBody('alice'),
  });
}
const read = (key: string, id: string) =>
  api.app.inject({ method: 'GET', url: `/v1/checkouts/${id}`, headers: bearer(key) });
const list = (key: string) => api.app.inject({ method: 'GET', url: '/v1/checkouts', headers: bearer(key) });
const cancel = (key: string, id: string) =>
  api.app.inject({ method: 'POST', url: `/v1/checkouts/${id}/cancel`, headers: bearer(key) });

/** A checkout made with the full-access key of the app. */
async function aCheckout(): Promise<{ id: string; clientSecret: string }> {
  const res = await create(api.apiKey);
  expect(res.statusCode, res.body).toBe(202);
  return res.json() as { id: string; clientSecret: string };
}

function expectInsufficientScope(res: LightMyRequestResponse, scope: Scope): void {
  expect(res.statusCode, res.body).toBe(403);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.json()).toMatchObject({
    status: 403,
    code: 'insufficient_scope',
    title: 'Insufficient scope',
    type: 'https://bankpay.dev/problems/insufficient_scope',
    detail: expect.stringContaining(scope),
    requestId: res.headers['x-request-id'],
  });
  expect(res.headers['www-authenticate']).toBe(
    `Bearer realm="bankpay", error="insufficient_scope", scope="${scope}"`,
  );
}

describe('a read-only key (checkouts:read)', () => {
  it('cannot create a checkout: 403, no checkout and no Idempotency-Key record stored, every time', async () => {
    const { id, key } = await keyWith('checkouts:read');
    const idempotencyKey = randomUUID();
    // The second attempt is answered from the remembered key (src/infra/api-keys.ts): still refused.
    expectInsufficientScope(await create(key, idempotencyKey), 'checkouts:create');
    expectInsufficientScope(await create(key, idempotencyKey), 'checkouts:create');
    expect(await api.db.checkout.count({ where: { apiKeyId: id } })).toBe(0);
    expect(await api.db.idempotencyRecord.count({ where: { apiKeyId: id } })).toBe(0);
  });

  it('cannot cancel a checkout: 403 and the checkout is unchanged', async () => {
    const { key } = await keyWith('checkouts:read');
    const checkout = await aCheckout();
    const before = await api.db.checkout.findUniqueOrThrow({ where: { id: checkout.id } });
    expectInsufficientScope(await cancel(key, checkout.id), 'checkouts:cancel');
    const after = await api.db.checkout.findUniqueOrThrow({ where: { id: checkout.id } });
    expect(after).toEqual(before);
    expect(after.status).toBe('pending');
  });

  it('reads one checkout and lists them', async () => {
    const { key } = await keyWith('checkouts:read');
    const checkout = await aCheckout();
    const one = await read(key, checkout.id);
    expect(one.statusCode, one.body).toBe(200);
    expect(one.json()).toMatchObject({ id: checkout.id, status: 'pending' });
    const page = await list(key);
    expect(page.statusCode, page.body).toBe(200);
    expect((page.json() as { data: Array<{ id: string }> }).data.map((c) => c.id)).toContain(checkout.id);
  });
});

describe('a create-only key (checkouts:create), as a storefront server holds', () => {
  it('creates, but cannot list, read (not even its own checkout) or cancel', async () => {
    const { id: apiKeyId, key } = await keyWith('checkouts:create');
    const made = await create(key);
    expect(made.statusCode, made.body).toBe(202);
    const { id } = made.json() as { id: string };
    expect(await api.db.checkout.count({ where: { apiKeyId } })).toBe(1);

    expectInsufficientScope(await list(key), 'checkouts:read');
    expectInsufficientScope(await read(key, id), 'checkouts:read');
    expectInsufficientScope(await cancel(key, id), 'checkouts:cancel');
    expect((await api.db.checkout.findUniqueOrThrow({ where: { id } })).status).toBe('pending');
  });

  it("leaves the browser's clientSecret read of its checkout as it was", async () => {
    const { key } = await keyWith('checkouts:create');
    const { id, clientSecret } = (await create(key)).json() as { id: string; clientSecret: string };
    const res = await read(clientSecret, id);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id });
  });
});

describe('other keys', () => {
  it('a cancel-only key cancels, and reads nothing', async () => {
    const { key } = await keyWith('checkouts:cancel');
    const checkout = await aCheckout();
    const res = await cancel(key, checkout.id);
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ id: checkout.id, status: 'canceled' });
    expectInsufficientScope(await read(key, checkout.id), 'checkouts:read');
  });

  it('a key holding only the reserved webhooks:manage scope can do nothing with checkouts', async () => {
    const { key } = await keyWith('webhooks:manage');
    const checkout = await aCheckout();
    expectInsufficientScope(await create(key), 'checkouts:create');
    expectInsufficientScope(await read(key, checkout.id), 'checkouts:read');
    expectInsufficientScope(await list(key), 'checkouts:read');
    expectInsufficientScope(await cancel(key, checkout.id), 'checkouts:cancel');
  });

  it('a full-access key (no scopes, as every key made before scopes) still does everything', async () => {
    const { key } = await createApiKey(api.db, `full-${randomUUID()}`);
    const made = await create(key);
    expect(made.statusCode, made.body).toBe(202);
    const { id } = made.json() as { id: string };
    expect((await read(key, id)).statusCode).toBe(200);
    expect((await list(key)).statusCode).toBe(200);
    const canceled = await cancel(key, id);
    expect(canceled.statusCode, canceled.body).toBe(200);
    expect(canceled.json()).toMatchObject({ status: 'canceled' });
  });

  it('a key with every scope is a full-access key in all but name', async () => {
    const { key } = await keyWith('checkouts:create', 'checkouts:read', 'checkouts:cancel');
    const { id } = (await create(key)).json() as { id: string };
    expect((await read(key, id)).statusCode).toBe(200);
    expect((await list(key)).statusCode).toBe(200);
    expect((await cancel(key, id)).statusCode).toBe(200);
  });

  it('a wrong or missing key is still 401, whatever the scope of the route', async () => {
    const checkout = await aCheckout();
    for (const res of [
      await create('bpk_wrong'),
      await read('bpk_wrong', checkout.id),
      await list('bpk_wrong'),
      await cancel('bpk_wrong', checkout.id),
      await api.app.inject({ method: 'GET', url: '/v1/checkouts' }),
    ]) {
      expect(res.statusCode, res.body).toBe(401);
      expect(res.json()).toMatchObject({ code: 'unauthorized' });
      expect(res.headers['www-authenticate']).toBe('Bearer realm="bankpay"');
    }
  });
});

describe('the OpenAPI document', () => {
  it('names the scope each merchant-key operation needs and documents its 403', async () => {
    const doc = (await api.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
      paths: Record<
        string,
        Record<
          string,
          {
            security?: Array<Record<string, string[]>>;
            responses: Record<string, unknown>;
            description?: string;
          }
        >
      >;
    };
    const needs = {
      'post /v1/checkouts': 'checkouts:create',
      'get /v1/checkouts': 'checkouts:read',
      'get /v1/checkouts/{id}': 'checkouts:read',
      'post /v1/checkouts/{id}/cancel': 'checkouts:cancel',
    };
    for (const [operation, scope] of Object.entries(needs)) {
      const [method, path] = operation.split(' ') as [string, string];
      const op = doc.paths[path]?.[method];
      expect(op?.security, operation).toEqual([{ merchantKey: [scope] }]);
      expect(op?.responses, operation).toHaveProperty('403');
      expect(op?.description, operation).toContain(`\`${scope}\``);
    }
    expect(doc.paths['/v1/banks']?.get?.security).toBeUndefined();
  });
});
