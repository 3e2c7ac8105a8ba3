/**
 * Property-based fuzzing of every route of the public API, in process (`app.inject`) against the
 * real app, PostgreSQL and queue: mutated and arbitrary bodies, malformed JSON, bodies that repeat a
 * member name, odd paths, queries and headers. Whatever is sent: never a 5xx; every 4xx is
 * problem+json whose `status` is the HTTP status; every 2xx has the documented shape; a JSON body
 * that is not JSON or repeats a member name at any depth (RFC 7493 §2.3) is 400 malformed_json and
 * changes nothing; and nothing stored is harmed (the merchant's checkouts grow by exactly the
 * checkouts answered 202, and one made before is unchanged). The webhook endpoints and events
 * routes too (DESIGN.md §7.3): an endpoint is stored only when answered 201, and only with a URL
 * that is https or loopback http to a public or loopback address; a secret (whsec_…) is in no
 * answer but the create and rotate ones; a read-only key manages nothing.
 */
import { randomUUID } from 'node:crypto';
import { Ajv } from 'ajv';
import addFormats from 'ajv-formats';
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BODY_LIMIT_BYTES } from '../../src/app.ts';
import { BankListSchema, CheckoutListSchema, CheckoutSchema } from '../../src/checkout/checkout.schemas.ts';
import { ProblemSchema } from '../../src/http/problem.ts';
import { createApiKey } from '../../src/infra/api-keys.ts';
import { EVENT_TYPES } from '../../src/notifications/events.repository.ts';
import { MAX_WEBHOOK_ENDPOINTS } from '../../src/notifications/webhook-endpoints.repository.ts';
import {
  DeletedSchema,
  EventDetailSchema,
  EventListSchema,
  WebhookEndpointListSchema,
  WebhookEndpointSchema,
  WebhookEndpointWithSecretSchema,
} from '../../src/notifications/webhooks.schemas.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';
import { checkoutBody, createSystemDatabase } from '../support/system.ts';

let api: ApiApp;
/** A restricted key (checkouts:read): every create or cancel it sends must be refused, 403. */
let readOnly: { id: string; key: string };
let witness: { id: string; clientSecret: string; body: Record<string, unknown> };
let witnessBefore: string;
let checkoutsBefore: number;
/** Checkouts the fuzzing created (answers 202 that were not replays), with the body sent. */
const created = new Map<string, Record<string, unknown>>();
/** The Idempotency-Key the witness was created with: fuzzed requests reuse it now and then. */
const WITNESS_IDEMPOTENCY_KEY = `fuzz-witness-${randomUUID()}`;

const ajv = new Ajv({ strict: false, allErrors: true });
addFormats.default(ajv);
const isCheckout = ajv.compile(CheckoutSchema);
const isCheckoutList = ajv.compile(CheckoutListSchema);
const isBankList = ajv.compile(BankListSchema);
const isProblem = ajv.compile(ProblemSchema);
const isEndpoint = ajv.compile(WebhookEndpointSchema);
const isEndpointWithSecret = ajv.compile(WebhookEndpointWithSecretSchema);
const isEndpointList = ajv.compile(WebhookEndpointListSchema);
const isDeleted = ajv.compile(DeletedSchema);
const isEventList = ajv.compile(EventListSchema);
const isEventDetail = ajv.compile(EventDetailSchema);

async function storedWitness(): Promise<string> {
  const [row, events, claim] = await Promise.all([
    api.db.checkout.findUnique({ where: { id: witness.id } }),
    api.db.checkoutEvent.findMany({ where: { checkoutId: witness.id }, orderBy: { at: 'asc' } }),
    api.db.idempotencyRecord.findUnique({
      where: { apiKeyId_key: { apiKeyId: api.apiKeyId, key: WITNESS_IDEMPOTENCY_KEY } },
    }),
  ]);
  return JSON.stringify({ row, events, claim }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
}

beforeAll(async () => {
  // A limit no fuzz run reaches: the limiter has its own tests (security.test.ts).
  // A database of its own: webhook endpoints are the installation's, and the fuzzing registers some.
  api = await startApiApp({
    env: { DATABASE_URL: await createSystemDatabase() },
    rateLimit: { max: 1_000_000, timeWindowMs: 60_000 },
  });
  readOnly = await createApiKey(api.db, `fuzz-read-only-${randomUUID()}`, ['checkouts:read']);
  const body = validBody();
  const res = await api.app.inject({
    method: 'POST',
    url: '/v1/checkouts',
    headers: { authorization: `Bearer ${api.apiKey}`, 'idempotency-key': WITNESS_IDEMPOTENCY_KEY },
    payload: body,
  });
  expect(res.statusCode).toBe(202);
  witness = { ...(res.json() as { id: string; clientSecret: string }), body };
  witnessBefore = await storedWitness();
  checkoutsBefore = await api.db.checkout.count({ where: { apiKeyId: api.apiKeyId } });
});
afterAll(async () => {
  await api?.close();
});

// ---------------------------------------------------------------------------------------------
// The property every answer must have.

type Kind =
  | 'create'
  | 'get'
  | 'list'
  | 'cancel'
  | 'banks'
  | 'health'
  | 'none'
  // Webhooks: POST /v1/webhook_endpoints and rotate_secret (the answers with a secret), GET one,
  // the list, DELETE; GET /v1/events; GET /v1/events/{id} and its resend.
  | 'endpoint-secret'
  | 'endpoint'
  | 'endpoint-list'
  | 'endpoint-delete'
  | 'events'
  | 'event';

/** The kinds that need webhooks:manage (a read-only key is refused them). */
const MANAGE_KINDS: ReadonlySet<Kind> = new Set([
  'endpoint-secret',
  'endpoint',
  'endpoint-list',
  'endpoint-delete',
]);
/** Secrets the create and rotate answers showed. */
const shownSecrets = new Set<string>();

interface FuzzRequest {
  kind: Kind;
  method: string;
  url: string;
  headers: Record<string, string | string[]>;
  payload?: string | Buffer;
}

function describeRequest(req: FuzzRequest): string {
  const payload = req.payload === undefined ? '' : String(req.payload).slice(0, 400);
  return `${req.method} ${req.url.slice(0, 400)} ${JSON.stringify(req.headers).slice(0, 400)} ${JSON.stringify(payload)}`;
}

function fail(req: FuzzRequest, res: LightMyRequestResponse, why: string): never {
  throw new Error(
    `${why}\n  request: ${describeRequest(req)}\n  answer: ${res.statusCode} ${res.headers['content-type']} ${res.body.slice(0, 600)}`,
  );
}

function parse(req: FuzzRequest, res: LightMyRequestResponse): Record<string, unknown> {
  try {
    return JSON.parse(res.body) as Record<string, unknown>;
  } catch {
    return fail(req, res, 'the body is not JSON');
  }
}

function sentBody(req: FuzzRequest): Record<string, unknown> {
  return JSON.parse(String(req.payload).replace(/^\uFEFF/, '')) as Record<string, unknown>;
}

const ECHOED = ['amount', 'currency', 'bankId', 'reference'] as const;

function checkSuccess(req: FuzzRequest, res: LightMyRequestResponse): void {
  if (!/^application\/json/.test(String(res.headers['content-type'])))
    fail(req, res, 'a 2xx that is not JSON');
  const body = parse(req, res);
  const schemaError = (ok: boolean, validate: { errors?: unknown }) => {
    if (!ok) fail(req, res, `a 2xx not of the documented shape: ${JSON.stringify(validate.errors)}`);
  };
  switch (req.kind) {
    case 'create': {
      if (res.statusCode !== 202) fail(req, res, 'create answered other than 202');
      schemaError(isCheckout(body), isCheckout);
      if (typeof body.clientSecret !== 'string') fail(req, res, 'no clientSecret in the create answer');
      if (res.headers.location !== `/v1/checkouts/${body.id}`) fail(req, res, 'Location is not the checkout');
      if (res.headers['idempotent-replayed'] === 'true') {
        if (created.has(String(body.id)) || body.id === witness.id) return;
        fail(req, res, 'a replay of a checkout nobody created');
      }
      // What was stored is what was sent.
      const sent = sentBody(req);
      for (const field of ECHOED) {
        if (body[field] !== sent[field]) fail(req, res, `${field} stored differs from the one sent`);
      }
      if (body.description !== (sent.description ?? null)) fail(req, res, 'description differs');
      if (body.status !== 'pending') fail(req, res, 'a new checkout that is not pending');
      created.set(String(body.id), sent);
      return;
    }
    case 'get':
      schemaError(isCheckout(body), isCheckout);
      if ('clientSecret' in body) fail(req, res, 'GET returned the clientSecret');
      // The timeline is the merchant's record: a browser's clientSecret read gets none.
      if (/_secret_/.test(String(req.headers?.authorization ?? ''))) {
        if ('timeline' in body) fail(req, res, 'a clientSecret read returned the timeline');
      } else if (!Array.isArray(body.timeline)) fail(req, res, 'GET without timeline');
      return;
    case 'cancel':
      schemaError(isCheckout(body), isCheckout);
      if (body.status !== 'canceled') fail(req, res, 'cancel answered 200 without canceling');
      if (body.id === witness.id) fail(req, res, 'the witness was canceled');
      return;
    case 'list':
      schemaError(isCheckoutList(body), isCheckoutList);
      for (const c of body.data as Array<Record<string, unknown>>) {
        if ('clientSecret' in c) fail(req, res, 'a list item carries a clientSecret');
      }
      return;
    case 'banks':
      schemaError(isBankList(body), isBankList);
      return;
    case 'health':
      if (body.status !== 'ok') fail(req, res, 'health not ok');
      return;
    case 'none':
      fail(req, res, 'a 2xx from a route that does not exist');
      return;
    case 'endpoint-secret': {
      schemaError(isEndpointWithSecret(body), isEndpointWithSecret);
      if (!/^whsec_[A-Za-z0-9+/]{43}=$/.test(String(body.secret))) fail(req, res, 'not a whsec_ secret');
      shownSecrets.add(String(body.secret));
      if (req.url === '/v1/webhook_endpoints') {
        if (res.statusCode !== 201) fail(req, res, 'an endpoint created with other than 201');
        const sent = String(sentBody(req).url);
        if (body.url !== new URL(sent).href) fail(req, res, 'the stored URL is not the one sent, normalised');
        const why = unsafeWebhookUrl(String(body.url));
        if (why) fail(req, res, `an endpoint was stored with a URL it must not have: ${why}`);
        endpointIds.add(String(body.id));
      }
      return;
    }
    case 'endpoint':
      schemaError(isEndpoint(body), isEndpoint);
      return;
    case 'endpoint-list':
      schemaError(isEndpointList(body), isEndpointList);
      if ((body.data as unknown[]).length > MAX_WEBHOOK_ENDPOINTS)
        fail(req, res, 'more endpoints than allowed');
      return;
    case 'endpoint-delete':
      schemaError(isDeleted(body), isDeleted);
      endpointIds.delete(String(body.id));
      return;
    case 'events':
      schemaError(isEventList(body), isEventList);
      return;
    case 'event':
      schemaError(isEventDetail(body), isEventDetail);
      return;
  }
}

/**
 * Why a stored webhook URL breaks DESIGN.md §7.3, judged apart from the API's own rules: https,
 * or http to loopback; no credentials; an address literal must be public (or loopback). A
 * simplified, independent reading of the address registries: a URL it lets through may still be
 * refused by the API, never the other way round.
 */
function unsafeWebhookUrl(href: string): string | undefined {
  const url = new URL(href);
  if (url.username || url.password) return 'credentials';
  if (url.hash) return 'a fragment';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const v4 = (text: string) => text.split('.').map(Number);
  const mapped = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  const octets = /^\d+\.\d+\.\d+\.\d+$/.test(host)
    ? v4(host)
    : mapped
      ? [...mapped.slice(1, 3).flatMap((h) => [parseInt(h ?? '0', 16) >> 8, parseInt(h ?? '0', 16) & 255])]
      : undefined;
  const loopback = (octets !== undefined && octets[0] === 127 && !host.startsWith('64:')) || host === '::1';
  if (url.protocol === 'http:') {
    const localName = host === 'localhost' || host === 'localhost.' || /\.localhost\.?$/.test(host);
    return loopback || localName ? undefined : 'plain http off loopback';
  }
  if (url.protocol !== 'https:') return `scheme ${url.protocol}`;
  if (octets) {
    const [a = 0, b = 0] = octets;
    if (loopback) return undefined;
    if (a === 0 || a === 10 || a === 127 || a >= 224) return `a non-public address ${host}`;
    if ((a === 169 && b === 254) || (a === 172 && b >= 16 && b < 32) || (a === 192 && b === 168))
      return `a non-public address ${host}`;
    if (a === 100 && b >= 64 && b < 128) return `a shared address ${host}`;
    return undefined;
  }
  if (host.includes(':') && !loopback && !/^[23][0-9a-f]{0,3}:/.test(host))
    return `a non-global IPv6 address ${host}`;
  if (/^(fc|fd|fe[89ab])/.test(host)) return `a private IPv6 address ${host}`;
  return undefined;
}

type Verdict = 'not-json' | 'repeats-a-name' | 'prototype-key' | 'json';

/**
 * What the API must make of a JSON body, judged apart from its parser: in JSON text that
 * JSON.parse accepts, each ':' outside strings introduces one member, so more of them than the
 * parsed value has own keys means that some object repeated a name (JSON.parse kept one of them).
 * Members that reach a prototype when copied (`__proto__`, `constructor.prototype`) are refused too.
 */
function judgeJsonText(text: string): Verdict {
  const unmarked = text.replace(/^\uFEFF/, '');
  let value: unknown;
  try {
    value = JSON.parse(unmarked);
  } catch {
    return 'not-json';
  }
  let keys = 0;
  let prototypeKey = false;
  const todo: unknown[] = [value];
  while (todo.length > 0) {
    const v = todo.pop();
    if (v === null || typeof v !== 'object') continue;
    const children = Array.isArray(v) ? v : Object.values(v);
    if (!Array.isArray(v)) {
      keys += children.length;
      const ctor = (v as { constructor?: unknown }).constructor;
      if (
        Object.hasOwn(v, '__proto__') ||
        (Object.hasOwn(v, 'constructor') &&
          ctor !== null &&
          typeof ctor === 'object' &&
          Object.hasOwn(ctor, 'prototype'))
      )
        prototypeKey = true;
    }
    for (const child of children) todo.push(child);
  }
  const colons = unmarked.replace(/"(?:[^"\\]|\\.)*"/g, '""').split(':').length - 1;
  return colons > keys ? 'repeats-a-name' : prototypeKey ? 'prototype-key' : 'json';
}

/**
 * For a request that reaches a JSON route's parser (application/json, within the body limit):
 * what the parser must make of its body; undefined for any other request.
 */
function jsonVerdict(req: FuzzRequest): Verdict | undefined {
  if (!['create', 'cancel', 'endpoint-secret', 'event'].includes(req.kind) || req.method !== 'POST')
    return undefined;
  if (req.payload === undefined || req.headers['content-type'] !== 'application/json') return undefined;
  // What the server decodes: lone surrogates in a string payload reach it as U+FFFD.
  const bytes = typeof req.payload === 'string' ? Buffer.from(req.payload, 'utf8') : req.payload;
  if (bytes.length > BODY_LIMIT_BYTES) return undefined;
  return judgeJsonText(bytes.toString('utf8'));
}

function checkAnswer(req: FuzzRequest, res: LightMyRequestResponse): void {
  if (res.statusCode >= 500) fail(req, res, 'a 5xx');
  const verdict = jsonVerdict(req);
  if (verdict === 'json' && res.statusCode === 400 && parse(req, res).code === 'malformed_json')
    fail(req, res, 'a JSON body that repeats no name was refused as malformed_json');
  if (verdict !== undefined && verdict !== 'json') {
    if (res.statusCode !== 400) fail(req, res, `a body that is ${verdict} answered other than 400`);
    const problem = parse(req, res);
    if (problem.code !== 'malformed_json') fail(req, res, `a body that is ${verdict} is not malformed_json`);
    // The first refusal in the text wins: a prototype key before the repeated name is named instead.
    if (
      verdict === 'repeats-a-name' &&
      !/appears more than once|__proto__|constructor/.test(String(problem.detail))
    )
      fail(req, res, 'the detail does not name the repeated member');
  }
  if (res.statusCode < 200 || (res.statusCode >= 300 && res.statusCode < 400)) fail(req, res, 'not 2xx/4xx');
  if (req.kind !== 'endpoint-secret' || res.statusCode >= 300) {
    if (/whsec_/.test(res.body)) fail(req, res, 'a secret in an answer other than create or rotate');
    for (const secret of shownSecrets) {
      if (res.body.includes(secret.slice('whsec_'.length))) fail(req, res, 'a shown secret answered again');
    }
  }
  if (
    MANAGE_KINDS.has(req.kind) &&
    req.headers.authorization === `Bearer ${readOnly.key}` &&
    res.statusCode < 300
  )
    fail(req, res, 'a read-only key managed webhook endpoints');
  if (req.method === 'HEAD') return; // no body to judge
  if (res.statusCode < 300) {
    checkSuccess(req, res);
    return;
  }
  if (!/^application\/problem\+json/.test(String(res.headers['content-type']))) {
    fail(req, res, 'a 4xx that is not application/problem+json');
  }
  const problem = parse(req, res);
  if (!isProblem(problem)) fail(req, res, `not a problem document: ${JSON.stringify(isProblem.errors)}`);
  if (problem.status !== res.statusCode) fail(req, res, 'problem status differs from the HTTP status');
  if (problem.requestId !== res.headers['x-request-id']) fail(req, res, 'requestId is not the request id');
  if (!problem.code) fail(req, res, 'empty code');
  if (res.statusCode === 401 && !res.headers['www-authenticate'])
    fail(req, res, '401 without WWW-Authenticate');
  if (
    res.statusCode === 403 &&
    !/error="insufficient_scope", scope="/.test(`${res.headers['www-authenticate']}`)
  )
    fail(req, res, '403 without WWW-Authenticate naming the scope');
}

/** A valid checkout made through the API, for the routes that act on one. */
async function createTarget(): Promise<{ id: string }> {
  const res = await send({
    kind: 'create',
    method: 'POST',
    url: '/v1/checkouts',
    headers: {
      authorization: `Bearer ${api.apiKey}`,
      'idempotency-key': randomUUID(),
      'content-type': 'application/json',
    },
    payload: JSON.stringify(validBody()),
  });
  return res.json() as { id: string };
}

async function merchantCheckouts(): Promise<number> {
  return api.db.checkout.count({ where: { apiKeyId: api.apiKeyId } });
}

async function send(req: FuzzRequest): Promise<LightMyRequestResponse> {
  const options: InjectOptions = { method: req.method as 'GET', url: req.url, headers: req.headers };
  if (req.payload !== undefined) options.payload = req.payload;
  // A refused body changes nothing: no checkout made, none canceled.
  const verdict = jsonVerdict(req);
  const refused = verdict !== undefined && verdict !== 'json';
  const cancelTarget = refused && req.kind === 'cancel' ? req.url.split('/')[3] : undefined;
  const statusBefore = cancelTarget ? await checkoutStatus(cancelTarget) : undefined;
  // An endpoint is stored by a 201 only, and removed by a 200 to DELETE only.
  const webhooks = req.kind.startsWith('endpoint');
  const endpointsBefore = webhooks ? await api.db.webhookEndpoint.count() : 0;
  const res = await api.app.inject(options);
  checkAnswer(req, res);
  if (webhooks) {
    const expected =
      endpointsBefore +
      (req.method === 'POST' && req.url === '/v1/webhook_endpoints' && res.statusCode === 201 ? 1 : 0) -
      (req.kind === 'endpoint-delete' && res.statusCode === 200 ? 1 : 0);
    if ((await api.db.webhookEndpoint.count()) !== expected)
      fail(req, res, 'the endpoints changed other than by this answer');
  }
  if (refused) {
    if ((await merchantCheckouts()) !== checkoutsBefore + created.size)
      fail(req, res, 'a refused body changed the number of checkouts');
    if (cancelTarget && (await checkoutStatus(cancelTarget)) !== statusBefore)
      fail(req, res, 'a refused body changed the checkout');
  }
  return res;
}

async function checkoutStatus(id: string): Promise<string | undefined> {
  return (await api.db.checkout.findUnique({ where: { id: decodeURIComponent(id) } }))?.status;
}

const RUNS = {
  create: 1000,
  malformed: 500,
  arbitrary: 300,
  repeated: 400,
  paths: 800,
  query: 600,
  misc: 400,
  endpoints: 500,
  webhookIds: 300,
  events: 300,
} as const;

/** Endpoint ids the fuzzing knows to exist (created, not yet deleted). */
const endpointIds = new Set<string>();

function property<T>(arb: fc.Arbitrary<T>, toRequest: (value: T) => FuzzRequest) {
  return fc.asyncProperty(arb, async (value) => {
    await send(toRequest(value));
  });
}

// ---------------------------------------------------------------------------------------------
// Arbitraries.

function validBody(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return checkoutBody('alice', { description: 'two shirts', ...overrides });
}

/** Characters that break things: C0/C1 controls, bidi and zero-width marks, surrogates, astral. */
const NASTY_CHARS = [
  ...Array.from({ length: 0x20 }, (_, i) => String.fromCharCode(i)),
  ...Array.from({ length: 0x21 }, (_, i) => String.fromCharCode(0x7f + i)),
  '\u200b', // zero-width space
  '\u200c',
  '\u200d', // zero-width joiner
  '\u200e',
  '\u200f', // right-to-left mark
  '\u202a',
  '\u202e', // right-to-left override
  '\u2066',
  '\u2069',
  '\u2028', // line separator
  '\u2029',
  '\ufeff', // BOM
  '\ufffd',
  '\ufffe',
  '\uffff',
  '\ud800', // lone surrogates
  '\udfff',
  '\u0301', // combining acute
  '\u00a0',
  '😀',
  '𝕏',
  '👩‍👩‍👧',
  'ا',
  'ש',
  '"',
  '\\',
  "'",
  '/',
  '<',
  '%',
  '&',
  ' ',
];
const anyChar = fc.oneof(
  { arbitrary: fc.constantFrom(...NASTY_CHARS), weight: 3 },
  { arbitrary: fc.integer({ min: 0, max: 0x10ffff }).map((cp) => String.fromCodePoint(cp)), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }), weight: 4 },
);
const nastyString = fc.oneof(
  { arbitrary: fc.string({ unit: anyChar, maxLength: 30 }), weight: 8 },
  {
    arbitrary: fc.constantFrom('', ' ', 'x'.repeat(141), 'x'.repeat(256), 'x'.repeat(501), 'é'.repeat(300)),
    weight: 1,
  },
);
/** Printable text (what the API accepts), with the odd but legal characters. */
const printableString = fc.string({
  unit: fc.oneof(
    fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }).filter((c) => c >= ' ' && c !== '\x7f'),
    fc.constantFrom(
      '😀',
      '𝕏',
      '\u200b',
      '\u200f',
      '\u202e',
      'ש',
      'ا',
      '\u0301',
      '\u00a0',
      '\ufeff',
      'é',
      '"',
      '\\',
    ),
  ),
  minLength: 1,
  maxLength: 40,
});

/** JSON text of amounts, some of which JSON.stringify could not write (1e400, -0, NaN). */
const RAW_AMOUNTS = [
  '0',
  '-0',
  '1',
  '-1',
  '-4990',
  '1.5',
  '4990.0',
  '4990.0000001',
  '4.99e3',
  '4990e-0',
  '1e400',
  '-1e400',
  '1e-400',
  '1e21',
  '9007199254740991',
  '9007199254740992',
  '9007199254740993',
  '123456789012345678901234567890',
  '0.1e1',
  '1E3',
  '0x10',
  '01',
  '+1',
  '.5',
  '5.',
  'Infinity',
  'NaN',
  '"4990"',
  '"4990.00"',
  'null',
  'true',
  '[]',
  '[4990]',
  '{}',
  '{"value":4990}',
];

const jsonText = (value: unknown) => JSON.stringify(value) ?? 'null';
const anyJson = fc.jsonValue({ maxDepth: 4, stringUnit: anyChar });
const anyValueText = fc.oneof(
  anyJson.map(jsonText),
  nastyString.map(jsonText),
  fc.double().map((n) => (Number.isFinite(n) ? String(n) : 'null')),
  fc.integer().map(String),
  fc.constantFrom(...RAW_AMOUNTS),
  fc.nat({ max: 3000 }).map((depth) => `${'['.repeat(depth)}${']'.repeat(depth)}`),
);

/** Of anyValueText, the texts that are JSON (not `.5`, `NaN`, `0x10`). */
const jsonValueText = anyValueText.filter((text) => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
});

/** JSON text (of any JSON value) in which some object repeats a member name. */
function repeatedMemberText(): fc.Arbitrary<string> {
  return fc
    .tuple(anyJson, fc.nat(), fc.nat(), fc.option(jsonValueText, { nil: undefined }), fc.boolean())
    .map(([value, object, member, other, escaped]) =>
      withRepeatedMember(value, { object, member, other, escaped }),
    );
}

const FIELDS = ['amount', 'currency', 'bankId', 'loginHint', 'reference', 'description'] as const;
/** A member: its name, its value as JSON text, and the name as JSON text when not JSON.stringify's. */
type Pair = [key: string, valueText: string, keyText?: string];

/** A name spelled with a \\u escape for every UTF-16 unit: the same name once unescaped. */
const escapedName = (name: string) =>
  `"${Array.from({ length: name.length }, (_, i) => `\\u${name.charCodeAt(i).toString(16).padStart(4, '0')}`).join('')}"`;

/**
 * The JSON text of `value` in which one object, at any depth, repeats one of its members: with the
 * same value, or another, the name spelled plainly or escaped. A value with no such object is put
 * in one that repeats it.
 */
function withRepeatedMember(
  value: unknown,
  pick: { object: number; member: number; other: string | undefined; escaped: boolean },
): string {
  const objects: Array<Record<string, unknown>> = [];
  const find = (v: unknown): void => {
    if (Array.isArray(v)) for (const item of v) find(item);
    else if (v !== null && typeof v === 'object') {
      if (Object.keys(v).length > 0) objects.push(v as Record<string, unknown>);
      for (const item of Object.values(v)) find(item);
    }
  };
  find(value);
  const target = objects[pick.object % Math.max(1, objects.length)];
  const nameText = (name: string) => (pick.escaped ? escapedName(name) : JSON.stringify(name));
  const write = (v: unknown): string => {
    if (Array.isArray(v)) return `[${v.map(write).join(',')}]`;
    if (v === null || typeof v !== 'object') return jsonText(v);
    const members = Object.entries(v).map(([k, item]) => `${JSON.stringify(k)}:${write(item)}`);
    if (v === target) {
      const [name, item] = Object.entries(v)[pick.member % members.length] as [string, unknown];
      members.push(`${nameText(name)}:${pick.other ?? write(item)}`);
    }
    return `{${members.join(',')}}`;
  };
  if (target) return write(value);
  return `{${nameText('k')}:${write(value)},${JSON.stringify('k')}:${pick.other ?? write(value)}}`;
}

const mutation: fc.Arbitrary<(pairs: Pair[]) => Pair[]> = fc.oneof(
  fc.constantFrom(...FIELDS).map((field) => (pairs: Pair[]) => pairs.filter(([k]) => k !== field)),
  fc.tuple(fc.constantFrom(...FIELDS), anyValueText).map(
    ([field, text]) =>
      (pairs: Pair[]) =>
        pairs.map(([k, v]): Pair => [k, k === field ? text : v]),
  ),
  fc.tuple(fc.constantFrom(...FIELDS), nastyString).map(
    ([field, s]) =>
      (pairs: Pair[]) =>
        pairs.map(([k, v]): Pair => [k, k === field ? jsonText(s) : v]),
  ),
  fc
    .constantFrom(...RAW_AMOUNTS)
    .map((text) => (pairs: Pair[]) => pairs.map(([k, v]): Pair => [k, k === 'amount' ? text : v])),
  fc
    .tuple(
      fc.oneof(nastyString, fc.constantFrom('__proto__', 'constructor', 'prototype', 'Amount', 'amount ')),
      anyValueText,
    )
    .map(([key, text]) => (pairs: Pair[]) => [...pairs, [key, text] as Pair]),
  // A field sent twice (RFC 7493 §2.3): with the same value or another, its name plain or escaped.
  fc
    .tuple(fc.constantFrom(...FIELDS), fc.option(anyValueText, { nil: undefined }), fc.boolean())
    .map(([field, other, escaped]) => (pairs: Pair[]) => {
      const sent = pairs.find(([k]) => k === field);
      const again: Pair = [field, other ?? sent?.[1] ?? '"again"', escaped ? escapedName(field) : undefined];
      return [...pairs, again];
    }),
  // A member whose value repeats a name deeper down.
  fc
    .tuple(fc.constantFrom('metadata', 'items', 'amount', 'x'), repeatedMemberText())
    .map(([key, text]) => (pairs: Pair[]) => [...pairs, [key, text] as Pair]),
);

const printableBody = fc.record({
  amount: fc.oneof(fc.integer({ min: 1, max: 1_000_000 }), fc.constant(Number.MAX_SAFE_INTEGER)),
  currency: fc.oneof(
    { arbitrary: fc.constantFrom('EUR', 'JPY', 'BHD', 'USD'), weight: 3 },
    { arbitrary: fc.constantFrom('XXX', 'XTS', 'ABC', 'eur', 'EURO', 'XAU', 'CHW', 'E'), weight: 1 },
  ),
  bankId: fc.oneof(
    { arbitrary: fc.constant('sandbox'), weight: 4 },
    { arbitrary: fc.constantFrom('sandbox-short', 'nope', 'SANDBOX', 'sandbox ', ''), weight: 1 },
  ),
  loginHint: printableString,
  reference: printableString,
  description: fc.option(fc.string({ maxLength: 60 }), { nil: undefined }),
});

const bodyText = fc
  .tuple(
    printableBody,
    fc.oneof(
      { arbitrary: fc.constant([]), weight: 1 },
      { arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }), weight: 3 },
    ),
  )
  .map(([body, mutations]) => {
    let pairs: Pair[] = Object.entries(body)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]): Pair => [k, jsonText(v)]);
    for (const mutate of mutations) pairs = mutate(pairs);
    return `{${pairs.map(([k, v, keyText]) => `${keyText ?? JSON.stringify(k)}:${v}`).join(',')}}`;
  });

/** Header values as they can arrive on the wire (visible ASCII, tab, obs-text). */
const wireChar = fc.oneof(
  fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 1 }).filter((c) => c >= ' ' && c !== '\x7f'),
  fc.integer({ min: 0x80, max: 0xff }).map((c) => String.fromCharCode(c)),
  fc.constant('\t'),
);
const wireString = fc.oneof(
  { arbitrary: fc.string({ unit: wireChar, maxLength: 40 }), weight: 6 },
  { arbitrary: fc.constantFrom('x'.repeat(255), 'x'.repeat(256), 'x'.repeat(8000)), weight: 1 },
);

function authorization(): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { arbitrary: fc.constant(`Bearer ${api.apiKey}`), weight: 8 },
    {
      arbitrary: fc.oneof(
        fc.constant(undefined),
        wireString,
        wireString.map((s) => `Bearer ${s}`),
        wireString.map((s) => `Bearer bpk_${s}`),
        fc.constantFrom(
          '',
          'Bearer',
          'Bearer ',
          `bearer ${api.apiKey}`,
          `Bearer  ${api.apiKey}`,
          `Bearer ${api.apiKey} `,
          `Bearer ${api.apiKey}x`,
          `Bearer ${api.apiKey.slice(0, -1)}`,
          `Basic ${Buffer.from(`${api.apiKey}:`).toString('base64')}`,
          `Bearer ${witness.clientSecret}`,
          `Bearer ${readOnly.key}`,
          `Bearer ${witness.clientSecret.replace(/.$/, 'A')}`,
          `Bearer ${'a'.repeat(513)}`,
          `Bearer bpk_${'a'.repeat(300)}`,
        ),
      ),
      weight: 3,
    },
  );
}

function idempotencyKey(): fc.Arbitrary<string | string[] | undefined> {
  return fc.oneof(
    { arbitrary: fc.uuid(), weight: 8 },
    {
      arbitrary: fc.oneof(
        fc.constant(undefined),
        fc.constant(WITNESS_IDEMPOTENCY_KEY),
        wireString,
        fc.constantFrom('', ' ', 'a b', 'clé', 'k'.repeat(255), 'k'.repeat(256)),
        fc.tuple(fc.uuid(), fc.uuid()).map(([a, b]) => [a, b]),
      ),
      weight: 3,
    },
  );
}

function headers(values: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  return Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) as Record<
    string,
    string | string[]
  >;
}

/** In a `u` regular expression, surrogates that do not pair up. */
const LONE_SURROGATE = /\p{Cs}/u;

/** Percent-encodes any string byte by byte (lone surrogates become U+FFFD, as a browser sends). */
const percentEncode = (s: string) =>
  [...Buffer.from(s, 'utf8')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');

/** A path segment for {id}: unicode, broken percent-encoding, long, traversal, real ids. */
function idSegment(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.constant(witness.id),
    fc.constant(witness.id.toUpperCase()),
    fc.constant(`${witness.id}%00`),
    nastyString.map(percentEncode),
    nastyString.filter((s) => !LONE_SURROGATE.test(s)).map(encodeURIComponent),
    fc
      .uint8Array({ minLength: 1, maxLength: 12 })
      .map((bytes) => [...bytes].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')),
    fc.string({ unit: 'grapheme-ascii', maxLength: 30 }).map((s) => s.replace(/[\s/?#%]/g, '_') || '_'),
    fc.nat({ max: 6000 }).map((n) => `chk_${'a'.repeat(n)}`),
    fc.constantFrom(
      '%',
      '%zz',
      '%E0%A4%A',
      '%C0%AF',
      '%ED%A0%80',
      '%00',
      '%2F',
      '..',
      '%2e%2e',
      '.',
      'a'.repeat(64),
      'a'.repeat(65),
      'a'.repeat(100),
      'a'.repeat(101),
      '__proto__',
      'constructor',
      'null',
      '-1',
      '0',
      "'; DROP TABLE checkouts; --",
    ),
  );
}

// ---------------------------------------------------------------------------------------------

describe('fuzzing every route: never a 5xx, every 4xx problem+json, every 2xx as documented', () => {
  it('POST /v1/checkouts with mutated bodies (types, missing, extra, unicode, odd amounts) and headers', async () => {
    await fc.assert(
      property(fc.tuple(bodyText, authorization(), idempotencyKey()), ([payload, auth, key]) => ({
        kind: 'create',
        method: 'POST',
        url: '/v1/checkouts',
        headers: headers({ authorization: auth, 'idempotency-key': key, 'content-type': 'application/json' }),
        payload,
      })),
      { numRuns: RUNS.create },
    );
    // The fuzzing did reach the handler: valid bodies among the mutants created checkouts.
    expect(created.size).toBeGreaterThan(10);
  });

  it('POST /v1/checkouts with arbitrary JSON values', async () => {
    await fc.assert(
      property(fc.tuple(anyJson, authorization()), ([value, auth]) => ({
        kind: 'create',
        method: 'POST',
        url: '/v1/checkouts',
        headers: headers({
          authorization: auth,
          'idempotency-key': randomUUID(),
          'content-type': 'application/json',
        }),
        payload: jsonText(value),
      })),
      { numRuns: RUNS.arbitrary },
    );
  });

  it('POST /v1/checkouts with malformed JSON, odd content types and sizes', async () => {
    const valid = JSON.stringify(validBody());
    const text = fc.oneof(
      fc.nat({ max: valid.length - 1 }).map((n) => valid.slice(0, n)),
      fc.constantFrom(
        valid.replace(/}$/, ',}'),
        valid.replace('{', '{,'),
        `\uFEFF${valid}`,
        `${valid}\uFEFF`,
        `${valid}${valid}`,
        `${valid} trailing`,
        `[${valid}]`,
        valid.replace(/"/g, "'"),
        valid.replace('4990', 'NaN'),
        valid.replace('4990', 'Infinity'),
        valid.replace('4990', '4990 /* minor units */'),
        valid.replace('{', '{"__proto__":{"admin":true},'),
        valid.replace('{', '{"constructor":{"prototype":{"admin":true}},'),
        valid.replace('{', '{"amount":1,'),
        valid.replace('{', '{"\\u0061mount":4990,'),
        valid.replace(/}$/, ',"x":{"a":[{"b":1,"b":1}]}}'),
        '',
        ' ',
        'null',
        'true',
        '"text"',
        '[]',
        '{}',
        '{"amount":',
        '\u0000',
        `${'['.repeat(5000)}${']'.repeat(5000)}`,
        `${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}`,
      ),
      fc.string({ unit: anyChar, maxLength: 80 }),
      fc.nat({ max: 80 * 1024 }).map((n) => JSON.stringify(validBody({ description: 'x'.repeat(n) }))),
    );
    const contentType = fc.constantFrom(
      'application/json',
      'application/json; charset=utf-8',
      'Application/JSON',
      'application/json; charset=latin1',
      'application/json;charset=utf-16',
      'text/plain',
      'text/json',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/problem+json',
      'application/merge-patch+json',
      '*/*',
      'application/json, text/plain',
      '',
      undefined,
    );
    await fc.assert(
      property(
        fc.tuple(text, contentType, fc.boolean()),
        ([payload, type, asBuffer]): FuzzRequest => ({
          kind: 'create',
          method: 'POST',
          url: '/v1/checkouts',
          headers: headers({
            authorization: `Bearer ${api.apiKey}`,
            'idempotency-key': randomUUID(),
            'content-type': type,
          }),
          payload: asBuffer ? Buffer.from(payload, 'utf8') : payload,
        }),
      ),
      { numRuns: RUNS.malformed },
    );
  });

  it('bodies that repeat a member name, at any depth, on every JSON route: 400 malformed_json, nothing stored', async () => {
    const target = await createTarget();
    const jsonHeaders = () => ({
      authorization: `Bearer ${api.apiKey}`,
      'idempotency-key': randomUUID(),
      'content-type': 'application/json',
    });
    const repeatedField = fc
      .tuple(
        printableBody,
        fc.constantFrom(...FIELDS),
        fc.option(jsonValueText, { nil: undefined }),
        fc.boolean(),
      )
      .map(([body, field, other, escaped]) => {
        const pairs = Object.entries({ ...body, [field]: body[field] ?? 'x' })
          .filter(([, v]) => v !== undefined)
          .map(([k, v]) => `${JSON.stringify(k)}:${jsonText(v)}`);
        const again = `${escaped ? escapedName(field) : JSON.stringify(field)}:${other ?? jsonText(body[field] ?? 'x')}`;
        return `{${[...pairs, again].join(',')}}`;
      });
    const request = fc.oneof(
      // A field of the checkout twice.
      repeatedField.map(
        (payload): FuzzRequest => ({
          kind: 'create',
          method: 'POST',
          url: '/v1/checkouts',
          headers: jsonHeaders(),
          payload,
        }),
      ),
      // A valid checkout with a member that repeats a name deeper down.
      fc.tuple(fc.constantFrom('metadata', 'items', 'description'), repeatedMemberText()).map(
        ([key, text]): FuzzRequest => ({
          kind: 'create',
          method: 'POST',
          url: '/v1/checkouts',
          headers: jsonHeaders(),
          payload: `${JSON.stringify(validBody()).slice(0, -1)},${JSON.stringify(key)}:${text}}`,
        }),
      ),
      // Cancel takes any JSON body, and must refuse an ambiguous one before acting on it.
      repeatedMemberText().map(
        (payload): FuzzRequest => ({
          kind: 'cancel',
          method: 'POST',
          url: `/v1/checkouts/${target.id}/cancel`,
          headers: jsonHeaders(),
          payload,
        }),
      ),
    );
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(request, async (req) => {
        // The generator does repeat a name (as judged apart from the API's parser)...
        expect(jsonVerdict(req), String(req.payload).slice(0, 400)).toBe('repeats-a-name');
        // ...and send() checks the 400 malformed_json and that nothing was stored or canceled.
        const res = await send(req);
        if (res.statusCode === 400) refused++;
      }),
      { numRuns: RUNS.repeated },
    );
    expect(refused).toBe(RUNS.repeated);
    expect(await checkoutStatus(target.id)).toBe('pending');
  });

  it('every route that takes a body, those added later too, refuses a repeated member name', async () => {
    // The routes as the OpenAPI document lists them: a route added later is tested without an edit here.
    const document = api.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const target = await createTarget();
    const before = await merchantCheckouts();
    const tried: string[] = [];
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const method of Object.keys(operations).filter((m) =>
        ['post', 'put', 'patch', 'delete'].includes(m),
      )) {
        const url = path.replace(/\{[^}]+\}/g, target.id);
        for (const payload of ['{"a":1,"a":1}', '{"a":{"b":1,"b":2}}', `[{},{"c":[],"c":{}}]`]) {
          const res = await api.app.inject({
            method: method.toUpperCase() as 'POST',
            url,
            headers: {
              authorization: `Bearer ${api.apiKey}`,
              'idempotency-key': randomUUID(),
              'content-type': 'application/json',
            },
            payload,
          });
          expect(res.statusCode, `${method} ${url} ${payload}`).toBe(400);
          expect(res.json(), `${method} ${url} ${payload}`).toMatchObject({ code: 'malformed_json' });
        }
        tried.push(`${method.toUpperCase()} ${path}`);
      }
    }
    expect(tried).toEqual(expect.arrayContaining(['POST /v1/checkouts', 'POST /v1/checkouts/{id}/cancel']));
    expect(await merchantCheckouts()).toBe(before);
    expect(await checkoutStatus(target.id)).toBe('pending');
  });

  it('control characters (U+0000-U+001F, U+007F-U+009F) and lone surrogates in every text field are refused', async () => {
    const controls = [...NASTY_CHARS.slice(0, 0x20 + 0x21), '\ud800', '\udbff', '\udc00', '\udfff'];
    for (const field of ['currency', 'bankId', 'loginHint', 'reference', 'description'] as const) {
      for (const c of controls) {
        const payload = JSON.stringify(validBody({ [field]: field === 'currency' ? `EU${c}` : `a${c}b` }));
        const res = await send({
          kind: 'create',
          method: 'POST',
          url: '/v1/checkouts',
          headers: {
            authorization: `Bearer ${api.apiKey}`,
            'idempotency-key': randomUUID(),
            'content-type': 'application/json',
          },
          payload,
        });
        expect([400, 422], `${field} with U+${c.charCodeAt(0).toString(16)}`).toContain(res.statusCode);
      }
    }
  });

  it('GET /v1/checkouts/{id} and POST /v1/checkouts/{id}/cancel with odd ids and credentials', async () => {
    const createdIds = () => [...created.keys()];
    const request = fc.oneof(
      fc.tuple(idSegment(), authorization(), fc.constantFrom('', '/', '?x=1', '?id=other', '#frag')).map(
        ([id, auth, suffix]): FuzzRequest => ({
          kind: 'get',
          method: 'GET',
          url: `/v1/checkouts/${id}${suffix}`,
          headers: headers({ authorization: auth }),
        }),
      ),
      // Only credentials that must not work may aim at the witness.
      fc.tuple(idSegment(), authorization()).map(
        ([id, auth]): FuzzRequest => ({
          kind: 'cancel',
          method: 'POST',
          url: `/v1/checkouts/${id}/cancel`,
          headers: headers({
            authorization: id === witness.id && auth?.includes(api.apiKey) ? undefined : auth,
          }),
        }),
      ),
      fc.tuple(fc.constantFrom(...createdIds()), authorization(), fc.option(anyJson)).map(
        ([id, auth, body]): FuzzRequest => ({
          kind: 'cancel',
          method: 'POST',
          url: `/v1/checkouts/${id}/cancel`,
          headers: headers({
            authorization: auth,
            'content-type': body === null ? undefined : 'application/json',
          }),
          ...(body === null ? {} : { payload: jsonText(body) }),
        }),
      ),
    );
    await fc.assert(
      property(request, (r) => r),
      { numRuns: RUNS.paths },
    );
  });

  it('GET /v1/checkouts with odd query strings', async () => {
    const value = fc.oneof(
      fc.constantFrom(
        'abc',
        '-1',
        '0',
        '1',
        '100',
        '101',
        '1e3',
        '1.5',
        '',
        '%00',
        '9999999999999999999999',
        'pending',
        'succeeded',
        'PENDING',
        'toString',
        '__proto__',
        witness.id,
        `${witness.id}%00`,
        'a'.repeat(65),
      ),
      nastyString.map(percentEncode),
    );
    const key = fc.oneof(
      { arbitrary: fc.constantFrom('limit', 'starting_after', 'status'), weight: 5 },
      {
        arbitrary: fc.constantFrom('limit[]', 'limit[0]', '__proto__', 'constructor', 'LIMIT', 'unknown', ''),
        weight: 1,
      },
      { arbitrary: nastyString.map(percentEncode), weight: 1 },
    );
    const query = fc.oneof(
      fc
        .array(fc.tuple(key, value), { maxLength: 4 })
        .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&')),
      fc.string({ unit: 'grapheme-ascii', maxLength: 40 }).map((s) => s.replace(/[\s#]/g, '')),
      fc.constantFrom('limit', 'limit=', '&&&', '=', '%', 'limit=1&limit=2', 'status=pending&status=failed'),
    );
    await fc.assert(
      property(fc.tuple(query, authorization()), ([q, auth]) => ({
        kind: 'list',
        method: 'GET',
        url: `/v1/checkouts?${q}`,
        headers: headers({ authorization: auth }),
      })),
      { numRuns: RUNS.query },
    );
  });

  it('GET /v1/banks, health, other methods and odd headers', async () => {
    const target = fc.constantFrom(
      { kind: 'banks', path: '/v1/banks' },
      { kind: 'health', path: '/health/live' },
      { kind: 'health', path: '/health/ready' },
      { kind: 'list', path: '/v1/checkouts' },
      { kind: 'get', path: `/v1/checkouts/${witness.id}` },
    ) as fc.Arbitrary<{ kind: Kind; path: string }>;
    const method = fc.oneof(
      { arbitrary: fc.constant('GET'), weight: 4 },
      { arbitrary: fc.constantFrom('POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), weight: 2 },
    );
    const extra = fc.record({
      'x-request-id': fc.option(wireString, { nil: undefined }),
      accept: fc.option(
        fc.constantFrom('text/html', 'application/xml', '*/*', 'application/problem+json', ''),
        {
          nil: undefined,
        },
      ),
      'accept-encoding': fc.option(fc.constantFrom('gzip', 'br', 'identity;q=0', 'x'), { nil: undefined }),
      'x-forwarded-for': fc.option(wireString, { nil: undefined }),
      'idempotency-key': fc.option(wireString, { nil: undefined }),
    });
    await fc.assert(
      property(
        fc.tuple(target, method, extra, authorization(), fc.constantFrom('', '?', '?x=1', '?limit=abc')),
        ([t, m, more, auth, q]): FuzzRequest => ({
          kind: m === 'GET' || m === 'HEAD' ? t.kind : m === 'POST' && t.kind === 'list' ? 'create' : 'none',
          method: m,
          url: `${t.path}${q}`,
          headers: headers({ ...more, authorization: auth }),
        }),
      ),
      { numRuns: RUNS.misc },
    );
  });

  describe('the webhook endpoints and events routes', () => {
    /** URLs as an attacker writes them: every notation of a private address, credentials, schemes. */
    const NASTY_URLS = [
      'https://shop.example/hooks',
      'https://shop.example./hooks?x=1',
      'HTTPS://SHOP.EXAMPLE/',
      'http://127.0.0.1:3000/h',
      'http://localhost./h',
      'http://[::1]/h',
      'http://2130706433/',
      'http://0x7f.1/',
      'http://017700000001/',
      'http://[::ffff:127.0.0.1]/',
      'http://[64:ff9b::127.0.0.1]/',
      'https://[::]/',
      'https://[fd00::1]/',
      'https://[::10.0.0.1]/',
      'https://[::ffff:10.0.0.1]/',
      'https://[fe80::1%25eth0]/',
      'https://0/',
      'https://0.0.0.0./',
      'https://10.1/',
      'https://0xa9fea9fe/',
      'https://169.254.169.254/latest/meta-data/',
      'https://%31%30.0.0.1/',
      'https://ex%61mple.com/',
      'https://m%C3%BCnchen.de/',
      'https://münchen.de/',
      'https://:pw@shop.example/',
      'https://@shop.example/',
      'https://user@shop.example/',
      'https://shop.example\\@10.0.0.1/',
      'https:shop.example',
      'https:\\\\shop.example',
      'http://shop.example/',
      'ftp://shop.example/',
      'javascript:alert(1)',
      'file:///etc/passwd',
      'gopher://127.0.0.1:6379/_',
      'https://shop.example/#x',
      `https://${'a'.repeat(300)}.example/`,
      `https://shop.example/${'a'.repeat(8 * 1024)}`,
      `https://shop.example/${'a'.repeat(2028)}`,
      '',
      ' ',
    ];
    const urlValue: fc.Arbitrary<unknown> = fc.oneof(
      { arbitrary: fc.constantFrom(...NASTY_URLS), weight: 4 },
      {
        arbitrary: fc.webUrl({
          validSchemes: ['https', 'http'],
          withQueryParameters: true,
          withFragments: true,
          authoritySettings: {
            withIPv4: true,
            withIPv6: true,
            withIPv4Extended: true,
            withUserInfo: true,
            withPort: true,
          },
        }),
        weight: 4,
      },
      { arbitrary: nastyString.map((s) => `https://${s}/`), weight: 1 },
      { arbitrary: nastyString.map((s) => `https://${percentEncode(s)}/`), weight: 1 },
      { arbitrary: anyJson, weight: 1 },
    );
    const eventsValue: fc.Arbitrary<unknown> = fc.oneof(
      { arbitrary: fc.subarray([...EVENT_TYPES]), weight: 4 },
      {
        arbitrary: fc.array(fc.oneof(fc.constantFrom(...EVENT_TYPES), nastyString), { maxLength: 8 }),
        weight: 2,
      },
      {
        arbitrary: fc.nat({ max: 1_200 }).map((n) => Array.from({ length: n }, () => 'checkout.failed')),
        weight: 1,
      },
      { arbitrary: anyJson, weight: 1 },
    );
    const descriptionValue: fc.Arbitrary<unknown> = fc.oneof(printableString, nastyString, anyJson);
    const validEndpoint = fc.record(
      {
        url: fc.webUrl({ validSchemes: ['https'], withQueryParameters: true }),
        events: fc.subarray([...EVENT_TYPES], { minLength: 1 }),
        description: printableString,
      },
      { requiredKeys: ['url'] },
    );
    const hostileEndpoint = fc.record(
      { url: urlValue, events: eventsValue, description: descriptionValue },
      { requiredKeys: [] },
    );
    const endpointBody = fc
      .oneof(
        { arbitrary: validEndpoint, weight: 1 },
        { arbitrary: urlValue.map((url) => ({ url })), weight: 2 },
        { arbitrary: hostileEndpoint, weight: 2 },
      )
      .chain((body) =>
        fc.tuple(
          fc.constant(body),
          fc.oneof(
            { arbitrary: fc.constant([] as Pair[]), weight: 4 },
            {
              arbitrary: fc
                .tuple(
                  fc.oneof(
                    fc.constantFrom('url', 'events', 'description', 'secret', 'id', '__proto__', 'status'),
                    nastyString,
                  ),
                  anyValueText,
                  fc.boolean(),
                )
                .map(([k, v, escaped]): Pair[] => [[k, v, escaped ? escapedName(k) : undefined]]),
              weight: 1,
            },
          ),
        ),
      )
      .map(([body, extra]) => {
        const pairs: Pair[] = Object.entries(body).map(([k, v]): Pair => [k, jsonText(v)]);
        return `{${[...pairs, ...extra].map(([k, v, keyText]) => `${keyText ?? JSON.stringify(k)}:${v}`).join(',')}}`;
      });
    /** Mostly the full-access key; the read-only key and broken credentials often enough to matter. */
    const webhookAuth = () =>
      fc.oneof(
        { arbitrary: fc.constant(`Bearer ${api.apiKey}`), weight: 6 },
        { arbitrary: fc.constant(`Bearer ${readOnly.key}`), weight: 2 },
        { arbitrary: authorization(), weight: 2 },
      );
    const contentType = fc.oneof(
      { arbitrary: fc.constant('application/json'), weight: 8 },
      {
        arbitrary: fc.constantFrom('text/plain', 'application/json; charset=utf-8', '', undefined),
        weight: 1,
      },
    );

    it('POST /v1/webhook_endpoints with hostile URLs, types, descriptions, extra and repeated names', async () => {
      let registered = 0;
      // Each hostile URL on its own, every run; then mixed with everything else.
      for (const url of NASTY_URLS) {
        const res = await send({
          kind: 'endpoint-secret',
          method: 'POST',
          url: '/v1/webhook_endpoints',
          headers: headers({ authorization: `Bearer ${api.apiKey}`, 'content-type': 'application/json' }),
          payload: JSON.stringify({ url }),
        });
        if (res.statusCode === 201) {
          await send({
            kind: 'endpoint-delete',
            method: 'DELETE',
            url: `/v1/webhook_endpoints/${(res.json() as { id: string }).id}`,
            headers: headers({ authorization: `Bearer ${api.apiKey}` }),
          });
        }
      }
      await fc.assert(
        fc.asyncProperty(
          fc.tuple(endpointBody, webhookAuth(), contentType),
          async ([payload, auth, type]) => {
            const res = await send({
              kind: 'endpoint-secret',
              method: 'POST',
              url: '/v1/webhook_endpoints',
              headers: headers({ authorization: auth, 'content-type': type }),
              payload,
            });
            if (res.statusCode !== 201) return;
            registered++;
            // Room kept below the limit, so that every URL the rules let through is stored and judged.
            const [oldest] = endpointIds;
            if (endpointIds.size > MAX_WEBHOOK_ENDPOINTS - 4 && oldest) {
              await send({
                kind: 'endpoint-delete',
                method: 'DELETE',
                url: `/v1/webhook_endpoints/${oldest}`,
                headers: headers({ authorization: `Bearer ${api.apiKey}` }),
              });
            }
          },
        ),
        { numRuns: RUNS.endpoints },
      );
      // The fuzzing reached the handler: endpoints were registered.
      expect(registered).toBeGreaterThan(20);
      expect(await api.db.webhookEndpoint.count()).toBeLessThanOrEqual(MAX_WEBHOOK_ENDPOINTS);
    });

    it('the endpoint, event and resend routes with odd ids, bodies and keys', async () => {
      // Events to act on: checkouts canceled through the API.
      for (let i = 0; i < 3; i++) {
        const target = await createTarget();
        await send({
          kind: 'cancel',
          method: 'POST',
          url: `/v1/checkouts/${target.id}/cancel`,
          headers: headers({ authorization: `Bearer ${api.apiKey}` }),
        });
      }
      const eventIds = (await api.db.event.findMany({ select: { id: true }, take: 20 })).map((e) => e.id);
      expect(eventIds.length).toBeGreaterThan(0);
      // One of the endpoints that exist when the value is drawn (deletes remove them as it goes).
      const knownEndpoint = () =>
        fc.nat().map((n) => [...endpointIds][n % Math.max(1, endpointIds.size)] ?? 'we_none');
      const endpointId = fc.oneof(
        { arbitrary: knownEndpoint(), weight: 3 },
        { arbitrary: idSegment(), weight: 2 },
      );
      const eventId = fc.oneof(
        { arbitrary: fc.constantFrom(...eventIds), weight: 3 },
        { arbitrary: idSegment(), weight: 2 },
      );
      const resendBody = fc.oneof(
        fc.constant(undefined),
        fc.constantFrom('null', '{}', '[]', '""', '{"endpointId":null}', '{"endpointId":1}'),
        knownEndpoint().map((id) => JSON.stringify({ endpointId: id })),
        fc
          .tuple(knownEndpoint(), nastyString)
          .map(([id, s]) => `{"endpointId":${JSON.stringify(id)},"endpointId":${JSON.stringify(s)}}`),
        nastyString.map((s) => JSON.stringify({ endpointId: s })),
        anyJson.map(jsonText),
      );
      const request = fc.oneof(
        fc.tuple(endpointId, webhookAuth(), fc.constantFrom('GET', 'GET', 'DELETE', 'POST')).map(
          ([id, auth, method]): FuzzRequest => ({
            kind: method === 'GET' ? 'endpoint' : method === 'DELETE' ? 'endpoint-delete' : 'endpoint-secret',
            method,
            url: `/v1/webhook_endpoints/${id}${method === 'POST' ? '/rotate_secret' : ''}`,
            headers: headers({ authorization: auth }),
          }),
        ),
        fc.tuple(webhookAuth(), fc.constantFrom('', '?limit=1', '?x=1')).map(
          ([auth, q]): FuzzRequest => ({
            kind: 'endpoint-list',
            method: 'GET',
            url: `/v1/webhook_endpoints${q}`,
            headers: headers({ authorization: auth }),
          }),
        ),
        fc.tuple(eventId, webhookAuth()).map(
          ([id, auth]): FuzzRequest => ({
            kind: 'event',
            method: 'GET',
            url: `/v1/events/${id}`,
            headers: headers({ authorization: auth }),
          }),
        ),
        // Bodies only on ids that reach the route (an id the router refuses never reaches the parser).
        fc
          .tuple(
            fc.oneof(fc.constantFrom(...eventIds), fc.constant('evt_unknown')),
            resendBody,
            webhookAuth(),
          )
          .map(
            ([id, body, auth]): FuzzRequest => ({
              kind: 'event',
              method: 'POST',
              url: `/v1/events/${id}/resend`,
              headers: headers({
                authorization: auth,
                'content-type': body === undefined ? undefined : 'application/json',
              }),
              ...(body === undefined ? {} : { payload: body }),
            }),
          ),
        fc.tuple(eventId, webhookAuth()).map(
          ([id, auth]): FuzzRequest => ({
            kind: 'event',
            method: 'POST',
            url: `/v1/events/${id}/resend`,
            headers: headers({ authorization: auth }),
          }),
        ),
      );
      await fc.assert(
        property(request, (r) => r),
        { numRuns: RUNS.webhookIds },
      );
    });

    it('GET /v1/events with odd query strings', async () => {
      const eventIds = (await api.db.event.findMany({ select: { id: true }, take: 20 })).map((e) => e.id);
      const value = fc.oneof(
        fc.constantFrom(...eventIds),
        fc.constantFrom(...EVENT_TYPES),
        fc.constantFrom(
          '0',
          '1',
          '100',
          '101',
          '-1',
          'abc',
          '1e2',
          '',
          '%00',
          'evt_unknown',
          'CHECKOUT.FAILED',
          'a'.repeat(65),
        ),
        nastyString.map(percentEncode),
      );
      const key = fc.oneof(
        { arbitrary: fc.constantFrom('limit', 'starting_after', 'type'), weight: 5 },
        { arbitrary: fc.constantFrom('type[]', '__proto__', 'ending_before', ''), weight: 1 },
      );
      const query = fc
        .array(fc.tuple(key, value), { maxLength: 4 })
        .map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join('&'));
      await fc.assert(
        property(fc.tuple(query, webhookAuth()), ([q, auth]) => ({
          kind: 'events',
          method: 'GET',
          url: `/v1/events?${q}`,
          headers: headers({ authorization: auth }),
        })),
        { numRuns: RUNS.events },
      );
    });
  });

  it('harmed nothing stored: only the 202 answers added checkouts, and the one made before is unchanged', async () => {
    const after = await api.db.checkout.count({ where: { apiKeyId: api.apiKeyId } });
    expect(after).toBe(checkoutsBefore + created.size);
    // The read-only key created nothing (and canceled nothing: the witness is unchanged).
    expect(await api.db.checkout.count({ where: { apiKeyId: readOnly.id } })).toBe(0);
    expect(await storedWitness()).toBe(witnessBefore);
    // Each checkout the fuzzing created holds what was sent.
    const rows = await api.db.checkout.findMany({ where: { id: { in: [...created.keys()] } } });
    for (const row of rows) {
      const sent = created.get(row.id)!;
      expect({ ...row, amount: Number(row.amount) }).toMatchObject({
        amount: sent.amount,
        currency: sent.currency,
        bankId: sent.bankId,
        // A checkout the fuzzing canceled has ended: its login hint is no longer kept.
        loginHint: row.status === 'canceled' ? null : sent.loginHint,
        reference: sent.reference,
        description: sent.description ?? null,
      });
    }
  });
});
