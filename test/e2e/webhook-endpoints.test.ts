/**
 * The webhook endpoints and events API under hostile input (DESIGN.md §7.3), in process
 * (`app.inject`) against the real app and a database of its own, logging at trace level into
 * memory: every refusal is 400 problem+json (RFC 9457) with a stable code and stores nothing;
 * secrets (whsec_…) appear in the create and rotate answers only, never in another answer, the
 * events API or a log line; at most 16 endpoints, however many creations race; the events API
 * pages, filters and refuses as documented; restricted keys get exactly their scopes.
 */
import { randomUUID } from 'node:crypto';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { DestinationStream } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey, type Scope } from '../../src/infra/api-keys.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { createWebhookDeliveriesRepository } from '../../src/notifications/webhook-deliveries.repository.ts';
import { MAX_WEBHOOK_ENDPOINTS } from '../../src/notifications/webhook-endpoints.repository.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import { checkoutBody, createSystemDatabase } from '../support/system.ts';

const lines: string[] = [];
const logStream: DestinationStream = {
  write(line: string) {
    lines.push(line);
  },
};

let api: ApiApp;
let sql: SqlPool;
/** Every secret an answer showed: none may appear anywhere else. */
const secrets: string[] = [];

beforeAll(async () => {
  // Its own database: endpoints are per installation, and the limit is counted over all of them.
  api = await startApiApp({
    env: { LOG_LEVEL: 'trace', DATABASE_URL: await createSystemDatabase() },
    logStream,
    rateLimit: { max: 1_000_000, timeWindowMs: 60_000 },
  });
  sql = createSqlPool(api.config.databaseUrl, { poolSize: 2 });
});
afterAll(async () => {
  await sql?.end();
  await api?.close();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function call(
  method: 'GET' | 'POST' | 'DELETE',
  url: string,
  options: { body?: unknown; raw?: string; contentType?: string; key?: string } = {},
): Promise<LightMyRequestResponse> {
  const request: InjectOptions = { method, url, headers: bearer(options.key ?? api.apiKey) };
  if (options.raw !== undefined || options.body !== undefined) {
    request.headers = { ...request.headers, 'content-type': options.contentType ?? 'application/json' };
    request.payload = options.raw ?? JSON.stringify(options.body);
  }
  const res = await api.app.inject(request);
  // No answer but the create and rotate ones carries a secret.
  const carriesSecret = /whsec_/.test(res.body);
  const mayCarry =
    res.statusCode < 300 &&
    (/rotate_secret$/.test(url) || (method === 'POST' && url === '/v1/webhook_endpoints'));
  if (carriesSecret && !mayCarry) throw new Error(`${method} ${url} answered a secret: ${res.body}`);
  for (const secret of secrets) {
    if (res.body.includes(secret.slice('whsec_'.length)) && !mayCarry) {
      throw new Error(`${method} ${url} answered a secret`);
    }
  }
  return res;
}

function expectProblem(res: LightMyRequestResponse, status: number, code: string): Record<string, unknown> {
  expect(res.statusCode, res.body).toBe(status);
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  const body = res.json() as Record<string, unknown>;
  expect(body).toMatchObject({
    type: `https://bankpay.dev/problems/${code}`,
    status,
    code,
    title: expect.any(String),
    detail: expect.any(String),
    requestId: res.headers['x-request-id'],
  });
  return body;
}

type Endpoint = { id: string; url: string; events: string[]; secret: string; description: string | null };

async function createEndpoint(body: Record<string, unknown>, key = api.apiKey): Promise<Endpoint> {
  const res = await call('POST', '/v1/webhook_endpoints', { body, key });
  expect(res.statusCode, res.body).toBe(201);
  const endpoint = res.json() as Endpoint;
  secrets.push(endpoint.secret);
  return endpoint;
}

const endpointCount = () => api.db.webhookEndpoint.count();

async function deleteAllEndpoints(): Promise<void> {
  for (const { id } of await api.db.webhookEndpoint.findMany({ select: { id: true } })) {
    expect((await call('DELETE', `/v1/webhook_endpoints/${id}`)).statusCode).toBe(200);
  }
}

describe('registering an endpoint: bad input is 400 problem+json, and nothing is stored', () => {
  it.each([
    ['http://10.0.0.5/hooks', /10\.0\.0\.5 is not a public address/],
    ['https://192.168.0.1/', /not a public address/],
    ['https://169.254.169.254/latest/meta-data/', /cloud metadata address/],
    ['https://2852039166/', /cloud metadata address/],
    ['https://metadata.google.internal/', /cloud metadata name/],
    ['http://2130706433.example/', /http to a host that is not loopback/],
    ['https://0.0.0.0/', /0\.0\.0\.0 is not a public address/],
    ['https://0x0a.1/', /10\.0\.0\.1 is not a public address/],
    ['https://[::]/', /:: is not a public address/],
    ['https://[::ffff:10.0.0.1]/', /not a public address/],
    ['https://[fd00::1]/', /not a public address/],
    ['https://[::10.0.0.1]/', /not a public address/],
    ['http://[64:ff9b::127.0.0.1]/', /not a public address/],
    ['https://user:hunter2@shop.example/', /user name or password/],
    ['https://:hunter2@shop.example/', /user name or password/],
    ['http://shop.example/hooks', /plain http|http to a host that is not loopback/],
    ['ftp://shop.example/', /uses ftp/],
    ['javascript:alert(1)', /uses javascript/],
    ['file:///etc/passwd', /uses file/],
    ['shop.example/hooks', /not an absolute URL/],
    ['https://münchen.de/', /xn--mnchen-3ya\.de/],
    ['https://shop.example/#frag', /fragment/],
    ['https://shop.example/ hooks', /percent-encode/],
  ])('url %j: %s', async (url, detail) => {
    const before = await endpointCount();
    const res = await call('POST', '/v1/webhook_endpoints', { body: { url } });
    const problem = expectProblem(res, 400, 'invalid_request');
    expect(problem.detail).toMatch(detail);
    expect(problem.errors).toEqual([{ pointer: '/body/url', detail: expect.stringMatching(detail) }]);
    // A password in the URL is never repeated back.
    expect(res.body).not.toContain('hunter2');
    expect(await endpointCount()).toBe(before);
  });

  it.each([
    ['an 8 KiB url', { url: `https://shop.example/${'a'.repeat(8 * 1024)}` }, 'invalid_request'],
    ['an empty url', { url: '' }, 'invalid_request'],
    ['a url that is a number', { url: 42 }, 'invalid_request'],
    ['a url that is an array', { url: ['https://shop.example/'] }, 'invalid_request'],
    ['a url that is null', { url: null }, 'invalid_request'],
    ['no url', { events: ['checkout.succeeded'] }, 'invalid_request'],
    [
      'an unknown event type',
      { url: 'https://shop.example/', events: ['checkout.refunded'] },
      'invalid_request',
    ],
    [
      'an event type in other case',
      { url: 'https://shop.example/', events: ['Checkout.Succeeded'] },
      'invalid_request',
    ],
    ['no event types', { url: 'https://shop.example/', events: [] }, 'invalid_request'],
    [
      'a type twice',
      { url: 'https://shop.example/', events: ['checkout.succeeded', 'checkout.succeeded'] },
      'invalid_request',
    ],
    [
      'a large events array (within the body limit)',
      { url: 'https://shop.example/', events: Array.from({ length: 600 }, () => 'checkout.failed') },
      'invalid_request',
    ],
    ['events as a string', { url: 'https://shop.example/', events: 'checkout.succeeded' }, 'invalid_request'],
    [
      'a description with a NUL',
      { url: 'https://shop.example/', description: 'a\u0000b' },
      'invalid_request',
    ],
    [
      'a description with ESC',
      { url: 'https://shop.example/', description: '\u001b[31mred' },
      'invalid_request',
    ],
    [
      'a description with NEL (C1)',
      { url: 'https://shop.example/', description: 'a\u0085b' },
      'invalid_request',
    ],
    [
      'a description with a newline',
      { url: 'https://shop.example/', description: 'a\nb' },
      'invalid_request',
    ],
    [
      'a description of 201 characters',
      { url: 'https://shop.example/', description: 'd'.repeat(201) },
      'invalid_request',
    ],
    ['a null description', { url: 'https://shop.example/', description: null }, 'invalid_request'],
    [
      'a secret chosen by the client',
      { url: 'https://shop.example/', secret: 'whsec_AAAA' },
      'invalid_request',
    ],
    ['an id chosen by the client', { url: 'https://shop.example/', id: 'we_mine' }, 'invalid_request'],
    ['a status', { url: 'https://shop.example/', status: 'disabled' }, 'invalid_request'],
  ])('%s: 400 %s', async (_what, body, code) => {
    const before = await endpointCount();
    const res = await call('POST', '/v1/webhook_endpoints', { body });
    expectProblem(res, 400, code);
    expect(await endpointCount()).toBe(before);
  });

  it.each([
    [
      'a name twice (the second a private address)',
      '{"url":"https://shop.example/","url":"http://10.0.0.1/"}',
      400,
      'malformed_json',
    ],
    [
      'a name twice, escaped',
      '{"url":"https://shop.example/","\\u0075rl":"https://shop.example/"}',
      400,
      'malformed_json',
    ],
    ['__proto__', '{"url":"https://shop.example/","__proto__":{"events":[]}}', 400, 'malformed_json'],
    [
      'constructor.prototype',
      '{"url":"https://shop.example/","constructor":{"prototype":{}}}',
      400,
      'malformed_json',
    ],
    ['not JSON', '{"url":', 400, 'malformed_json'],
    ['an array', '[{"url":"https://shop.example/"}]', 400, 'invalid_request'],
    ['a string', '"https://shop.example/"', 400, 'invalid_request'],
    ['null', 'null', 400, 'invalid_request'],
    [
      'a huge events array (over the body limit)',
      JSON.stringify({
        url: 'https://shop.example/',
        events: Array.from({ length: 100_000 }, () => 'checkout.failed'),
      }),
      413,
      'body_too_large',
    ],
  ])('%s: %i %s', async (_what, raw, status, code) => {
    const before = await endpointCount();
    expectProblem(await call('POST', '/v1/webhook_endpoints', { raw }), status, code);
    expect(await endpointCount()).toBe(before);
  });

  it('the URL stored (its normal form) keeps to the rules too: the length', async () => {
    // 2048 characters as sent; `https://a.example?` is stored as `https://a.example/?`, one more.
    const url = `https://a.example?${'q'.repeat(2048 - 'https://a.example?'.length)}`;
    expect(url).toHaveLength(2048);
    expect(new URL(url).href).toHaveLength(2049);
    const problem = expectProblem(
      await call('POST', '/v1/webhook_endpoints', { body: { url } }),
      400,
      'invalid_request',
    );
    expect(problem.detail).toMatch(/longer than 2048 characters/);
    await createEndpoint({ url: url.slice(0, -1) });
    await deleteAllEndpoints();
  });

  it('another media type is 415; no body is 400', async () => {
    expectProblem(
      await call('POST', '/v1/webhook_endpoints', {
        raw: 'url=https://shop.example/',
        contentType: 'application/x-www-form-urlencoded',
      }),
      415,
      'unsupported_media_type',
    );
    expectProblem(await call('POST', '/v1/webhook_endpoints'), 400, 'invalid_request');
    expect(await endpointCount()).toBe(0);
  });
});

describe('an endpoint and its secret', () => {
  it('is stored normalised, with every type by default; its secret is shown on creation and rotation only', async () => {
    const endpoint = await createEndpoint({
      url: 'HTTPS://Shop.Example:443/hooks?x=1',
      description: 'Orders ✓ «ok»',
    });
    expect(endpoint).toMatchObject({
      id: expect.stringMatching(/^we_[A-Za-z0-9_-]{20}$/),
      url: 'https://shop.example/hooks?x=1',
      events: [
        'checkout.awaiting_approval',
        'checkout.succeeded',
        'checkout.declined',
        'checkout.expired',
        'checkout.failed',
        'checkout.canceled',
      ],
      description: 'Orders ✓ «ok»',
      status: 'enabled',
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{43}=$/),
      previousSecretExpiresAt: null,
    });
    // Events in any order are kept in the documented order.
    const ordered = await createEndpoint({
      url: 'https://shop.example/two',
      events: ['checkout.failed', 'checkout.succeeded'],
    });
    expect(ordered.events).toEqual(['checkout.succeeded', 'checkout.failed']);
    expect(ordered.secret).not.toBe(endpoint.secret);

    const get = await call('GET', `/v1/webhook_endpoints/${endpoint.id}`);
    expect(get.statusCode).toBe(200);
    const { secret: _secret, ...view } = endpoint;
    expect(get.json()).toEqual(view);
    const list = await call('GET', '/v1/webhook_endpoints');
    expect((list.json() as { data: unknown[] }).data).toEqual([
      expect.objectContaining({ id: ordered.id }),
      expect.objectContaining({ id: endpoint.id }),
    ]);
    expect(list.body).not.toContain('"secret"');

    const rotated = await call('POST', `/v1/webhook_endpoints/${endpoint.id}/rotate_secret`);
    expect(rotated.statusCode).toBe(200);
    const after = rotated.json() as Endpoint & { previousSecretExpiresAt: string };
    secrets.push(after.secret);
    expect(after.secret).toMatch(/^whsec_/);
    expect(after.secret).not.toBe(endpoint.secret);
    expect(Date.parse(after.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(23.9 * 3_600_000);
    const again = (await call('GET', `/v1/webhook_endpoints/${endpoint.id}`)).json() as Record<
      string,
      unknown
    >;
    expect(again).not.toHaveProperty('secret');
    expect(again.previousSecretExpiresAt).toBe(after.previousSecretExpiresAt);

    // Rotating ignores a body, and refuses an ambiguous one.
    expectProblem(
      await call('POST', `/v1/webhook_endpoints/${endpoint.id}/rotate_secret`, { raw: '{"a":1,"a":2}' }),
      400,
      'malformed_json',
    );
    await deleteAllEndpoints();
  });

  it('deleting twice: 200, then 404; a deleted endpoint cannot be read, rotated or resent to', async () => {
    const endpoint = await createEndpoint({ url: 'https://shop.example/doomed' });
    const first = await call('DELETE', `/v1/webhook_endpoints/${endpoint.id}`);
    expect(first.statusCode).toBe(200);
    expect(first.json()).toEqual({ id: endpoint.id, deleted: true });
    expectProblem(
      await call('DELETE', `/v1/webhook_endpoints/${endpoint.id}`),
      404,
      'webhook_endpoint_not_found',
    );
    expectProblem(
      await call('GET', `/v1/webhook_endpoints/${endpoint.id}`),
      404,
      'webhook_endpoint_not_found',
    );
    expectProblem(
      await call('POST', `/v1/webhook_endpoints/${endpoint.id}/rotate_secret`),
      404,
      'webhook_endpoint_not_found',
    );
    const event = await anEvent();
    expectProblem(
      await call('POST', `/v1/events/${event}/resend`, { body: { endpointId: endpoint.id } }),
      404,
      'webhook_endpoint_not_found',
    );
  });

  it.each([
    ['we_unknown', 404, 'webhook_endpoint_not_found'],
    ['a'.repeat(65), 400, 'invalid_request'],
    ['we_%00', 400, 'invalid_request'],
    ['we_%1B', 400, 'invalid_request'],
    ['%E0%A4%A', 400, 'invalid_request'],
    ['..%2F..%2Fcheckouts', 404, 'webhook_endpoint_not_found'],
    ["we_'%20OR%201=1--", 404, 'webhook_endpoint_not_found'],
  ])('endpoint id %j: %i %s', async (id, status, code) => {
    for (const [method, suffix] of [
      ['GET', ''],
      ['DELETE', ''],
      ['POST', '/rotate_secret'],
    ] as const) {
      expectProblem(await call(method, `/v1/webhook_endpoints/${id}${suffix}`), status, code);
    }
  });
});

describe(`at most ${MAX_WEBHOOK_ENDPOINTS} endpoints`, () => {
  it('the next one is 409 webhook_endpoint_limit_reached, however many creations race', async () => {
    await deleteAllEndpoints();
    const answers = await Promise.all(
      Array.from({ length: MAX_WEBHOOK_ENDPOINTS + 8 }, (_, i) =>
        call('POST', '/v1/webhook_endpoints', { body: { url: `https://shop.example/race/${i}` } }),
      ),
    );
    const created = answers.filter((r) => r.statusCode === 201);
    for (const res of created) secrets.push((res.json() as Endpoint).secret);
    expect(created).toHaveLength(MAX_WEBHOOK_ENDPOINTS);
    for (const refused of answers.filter((r) => r.statusCode !== 201)) {
      expect(expectProblem(refused, 409, 'webhook_endpoint_limit_reached').detail).toMatch(/at most 16/);
    }
    expect(await endpointCount()).toBe(MAX_WEBHOOK_ENDPOINTS);
    expectProblem(
      await call('POST', '/v1/webhook_endpoints', { body: { url: 'https://shop.example/one-more' } }),
      409,
      'webhook_endpoint_limit_reached',
    );
    // Room again once one is deleted.
    const [first] = (await call('GET', '/v1/webhook_endpoints')).json().data as Endpoint[];
    await call('DELETE', `/v1/webhook_endpoints/${first?.id}`);
    await createEndpoint({ url: 'https://shop.example/one-more' });
    await deleteAllEndpoints();
  });
});

/** A checkout made and canceled through the API: its checkout.canceled event id. */
async function anEvent(): Promise<string> {
  const created = await api.app.inject({
    method: 'POST',
    url: '/v1/checkouts',
    headers: { ...bearer(api.apiKey), 'idempotency-key': randomUUID() },
    payload: checkoutBody('alice'),
  });
  expect(created.statusCode, created.body).toBe(202);
  const { id, clientSecret } = created.json() as { id: string; clientSecret: string };
  expect((await call('POST', `/v1/checkouts/${id}/cancel`)).statusCode).toBe(200);
  const event = await api.db.event.findFirstOrThrow({ where: { checkoutId: id } });
  // The events API carries the checkout, never its clientSecret.
  const detail = await call('GET', `/v1/events/${event.id}`);
  expect(detail.body).not.toContain(clientSecret);
  return event.id;
}

/** A checkout that failed straight from pending (the trigger writes checkout.failed). */
async function aFailedEvent(): Promise<string> {
  const created = await api.app.inject({
    method: 'POST',
    url: '/v1/checkouts',
    headers: { ...bearer(api.apiKey), 'idempotency-key': randomUUID() },
    payload: checkoutBody('alice'),
  });
  const { id } = created.json() as { id: string };
  await sql.query(
    `UPDATE checkouts SET status = 'failed', failure_code = 'unknown_user_id', updated_at = now() WHERE id = $1`,
    [id],
  );
  return (await api.db.event.findFirstOrThrow({ where: { checkoutId: id } })).id;
}

describe('the events API', () => {
  let canceled: string[];
  let failed: string[];
  beforeAll(async () => {
    await sql.query('DELETE FROM events');
    canceled = [];
    failed = [];
    for (let i = 0; i < 3; i++) canceled.push(await anEvent());
    for (let i = 0; i < 2; i++) failed.push(await aFailedEvent());
  });

  async function walk(query: string, limit: number) {
    const ids: string[] = [];
    let after: string | undefined;
    for (let pages = 1; pages < 20; pages++) {
      const url = `/v1/events?limit=${limit}${query}${after ? `&starting_after=${after}` : ''}`;
      const res = await call('GET', url);
      expect(res.statusCode, res.body).toBe(200);
      const page = res.json() as { data: Array<{ id: string; type: string }>; has_more: boolean };
      expect(page.data.length).toBeLessThanOrEqual(limit);
      ids.push(...page.data.map((e) => e.id));
      if (!page.has_more) return { ids, pages };
      after = page.data.at(-1)?.id;
    }
    throw new Error('no last page');
  }

  it('pages newest first with a cursor, every event once', async () => {
    const all = [...canceled, ...failed].reverse();
    expect(await walk('', 2)).toEqual({ ids: all, pages: 3 });
    expect(await walk('', 5)).toEqual({ ids: all, pages: 1 });
    expect(await walk('', 100)).toEqual({ ids: all, pages: 1 });
    expect((await walk('', 1)).ids).toEqual(all);
  });

  it('filters by type, across pages', async () => {
    expect(await walk('&type=checkout.failed', 1)).toEqual({ ids: [...failed].reverse(), pages: 2 });
    expect((await walk('&type=checkout.canceled', 2)).ids).toEqual([...canceled].reverse());
    expect((await walk('&type=checkout.succeeded', 2)).ids).toEqual([]);
  });

  it.each([
    ['?starting_after=evt_unknown', '/querystring/starting_after'],
    ['?starting_after=', undefined],
    [`?starting_after=${'e'.repeat(65)}`, undefined],
    ['?starting_after=evt%00', undefined],
    ['?type=checkout.refunded', undefined],
    ['?type=', undefined],
    ['?limit=0', undefined],
    ['?limit=101', undefined],
    ['?limit=abc', undefined],
    ['?limit=1.5', undefined],
    ['?unknown=1', undefined],
  ])('GET /v1/events%s: 400 invalid_request', async (query, pointer) => {
    const problem = expectProblem(await call('GET', `/v1/events${query}`), 400, 'invalid_request');
    if (pointer) expect(problem.errors).toEqual([{ pointer, detail: expect.any(String) }]);
  });

  it('an unknown event is 404 event_not_found, to read and to resend', async () => {
    expectProblem(await call('GET', '/v1/events/evt_unknown'), 404, 'event_not_found');
    expectProblem(await call('POST', '/v1/events/evt_unknown/resend'), 404, 'event_not_found');
    expectProblem(
      await call('POST', '/v1/events/evt_unknown/resend', { body: { endpointId: 'we_unknown' } }),
      404,
      'event_not_found',
    );
    expectProblem(await call('GET', `/v1/events/${'e'.repeat(65)}`), 400, 'invalid_request');
  });

  it('resend: to every subscribed endpoint, or one; refused where nobody would receive it', async () => {
    const [event] = failed;
    expectProblem(await call('POST', `/v1/events/${event}/resend`), 409, 'no_webhook_endpoint');
    const onlyCanceled = await createEndpoint({
      url: 'https://shop.example/canceled',
      events: ['checkout.canceled'],
    });
    const every = await createEndpoint({ url: 'https://shop.example/every' });
    // An endpoint that does not subscribe to the type is refused by name.
    const notSubscribed = expectProblem(
      await call('POST', `/v1/events/${event}/resend`, { body: { endpointId: onlyCanceled.id } }),
      409,
      'no_webhook_endpoint',
    );
    expect(notSubscribed.detail).toMatch(/does not subscribe to checkout\.failed/);
    for (const body of [undefined, null, {}]) {
      const res = await call('POST', `/v1/events/${event}/resend`, body === undefined ? {} : { body });
      expect(res.statusCode, res.body).toBe(202);
      expect((res.json() as { deliveries: Array<{ endpointId: string; state: string }> }).deliveries).toEqual(
        [expect.objectContaining({ endpointId: every.id, state: 'pending', attempts: 0 })],
      );
    }
    const one = await call('POST', `/v1/events/${canceled[0]}/resend`, {
      body: { endpointId: onlyCanceled.id },
    });
    expect(one.statusCode).toBe(202);
    expect(
      (one.json() as { deliveries: Array<{ endpointId: string }> }).deliveries.map((d) => d.endpointId),
    ).toEqual([onlyCanceled.id]);
    for (const [raw, status, code] of [
      ['{"endpointId":1}', 400, 'invalid_request'],
      ['{"endpointId":""}', 400, 'invalid_request'],
      ['{"endpointId":"we_\\u0000"}', 400, 'invalid_request'],
      ['{"endpointId":null}', 400, 'invalid_request'],
      ['{"x":1}', 400, 'invalid_request'],
      ['[]', 400, 'invalid_request'],
      [`{"endpointId":"${every.id}","endpointId":"${onlyCanceled.id}"}`, 400, 'malformed_json'],
    ] as const) {
      expectProblem(await call('POST', `/v1/events/${event}/resend`, { raw }), status, code);
    }
    await deleteAllEndpoints();
  });

  it('an event past the 30 days is purged: no longer listed, 404 to read and resend', async () => {
    const [old] = canceled;
    await sql.query(`UPDATE events SET created_at = now() - interval '31 days' WHERE id = $1`, [old]);
    expect(await createWebhookDeliveriesRepository(sql).purgeExpiredEvents(1_000)).toBe(1);
    expectProblem(await call('GET', `/v1/events/${old}`), 404, 'event_not_found');
    expectProblem(await call('POST', `/v1/events/${old}/resend`), 404, 'event_not_found');
    expect((await walk('', 100)).ids).not.toContain(old);
    // A cursor that was purged is refused, not taken for the start.
    expectProblem(await call('GET', `/v1/events?starting_after=${old}`), 400, 'invalid_request');
  });
});

describe('restricted keys', () => {
  const keyWith = async (...scopes: Scope[]) =>
    (await createApiKey(api.db, `wh-${randomUUID()}`, scopes)).key;

  function expectInsufficient(res: LightMyRequestResponse, scope: Scope): void {
    expectProblem(res, 403, 'insufficient_scope');
    expect(res.headers['www-authenticate']).toBe(
      `Bearer realm="bankpay", error="insufficient_scope", scope="${scope}"`,
    );
  }

  it('checkouts:create cannot manage endpoints or read events; nothing is stored', async () => {
    const key = await keyWith('checkouts:create');
    const endpoint = await createEndpoint({ url: 'https://shop.example/scoped' });
    const event = await anEvent();
    const before = await endpointCount();
    expectInsufficient(
      await call('POST', '/v1/webhook_endpoints', { body: { url: 'https://evil.example/' }, key }),
      'webhooks:manage',
    );
    expectInsufficient(await call('GET', '/v1/webhook_endpoints', { key }), 'webhooks:manage');
    expectInsufficient(await call('GET', `/v1/webhook_endpoints/${endpoint.id}`, { key }), 'webhooks:manage');
    expectInsufficient(
      await call('DELETE', `/v1/webhook_endpoints/${endpoint.id}`, { key }),
      'webhooks:manage',
    );
    expectInsufficient(
      await call('POST', `/v1/webhook_endpoints/${endpoint.id}/rotate_secret`, { key }),
      'webhooks:manage',
    );
    expectInsufficient(await call('GET', '/v1/events', { key }), 'checkouts:read');
    expectInsufficient(await call('GET', `/v1/events/${event}`, { key }), 'checkouts:read');
    expectInsufficient(await call('POST', `/v1/events/${event}/resend`, { key }), 'webhooks:manage');
    expect(await endpointCount()).toBe(before);
    const row = await api.db.webhookEndpoint.findUniqueOrThrow({ where: { id: endpoint.id } });
    expect(row.previousSecretSealed).toBeNull();
  });

  it('checkouts:read reads events but cannot resend them nor see endpoints', async () => {
    const key = await keyWith('checkouts:read');
    const event = await anEvent();
    expect((await call('GET', '/v1/events', { key })).statusCode).toBe(200);
    expect((await call('GET', `/v1/events/${event}`, { key })).statusCode).toBe(200);
    expectInsufficient(await call('POST', `/v1/events/${event}/resend`, { key }), 'webhooks:manage');
    expectInsufficient(await call('GET', '/v1/webhook_endpoints', { key }), 'webhooks:manage');
  });

  it('webhooks:manage manages endpoints but does not read events', async () => {
    const key = await keyWith('webhooks:manage');
    const endpoint = await createEndpoint({ url: 'https://shop.example/managed' }, key);
    expect((await call('GET', `/v1/webhook_endpoints/${endpoint.id}`, { key })).statusCode).toBe(200);
    expectInsufficient(await call('GET', '/v1/events', { key }), 'checkouts:read');
    expect((await call('DELETE', `/v1/webhook_endpoints/${endpoint.id}`, { key })).statusCode).toBe(200);
    await deleteAllEndpoints();
  });
});

describe('logs', () => {
  it('carry no secret, and no password from a refused URL, at trace level', () => {
    const all = lines.join('');
    expect(lines.length).toBeGreaterThan(50);
    expect(all).toMatch(/POST \/v1\/webhook_endpoints 201/);
    expect(secrets.length).toBeGreaterThan(MAX_WEBHOOK_ENDPOINTS);
    for (const secret of secrets) expect(all).not.toContain(secret.slice('whsec_'.length));
    expect(all).not.toMatch(/whsec_/);
    expect(all).not.toContain('hunter2');
  });
});
