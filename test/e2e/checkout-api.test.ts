/** The public API's contract: authentication, Idempotency-Key, validation, pagination, banks. */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/infra/api-keys.ts';
import { checkoutBody, newBankCustomer, useSystem } from '../support/system.ts';

// No worker: these tests are about the API's answers, not the bank.
const { http, system } = useSystem({}, { worker: false });

// biome-ignore lint/suspicious/noExplicitAny: test assertions read JSON freely
const json = (res: Response): Promise<any> => res.json();

async function expectProblem(res: Response, status: number, code: string) {
  expect(res.status).toBe(status);
  expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
  const body = (await res.json()) as Record<string, unknown>;
  expect(body).toMatchObject({ status, code });
  expect(typeof body.title).toBe('string');
  expect(typeof body.detail).toBe('string');
  expect(body.requestId).toBe(res.headers.get('x-request-id'));
  return body;
}

describe('Idempotency-Key', () => {
  it('the same key and body replays the first response: one checkout', async () => {
    const key = randomUUID();
    const body = checkoutBody('alice');
    const first = await http.createCheckout(body, { idempotencyKey: key });
    const second = await http.createCheckout({ ...body }, { idempotencyKey: key });
    expect(first.status).toBe(202);
    expect(second.status).toBe(202);
    expect(second.headers.get('idempotent-replayed')).toBe('true');
    const a = await json(first);
    const b = await json(second);
    expect(b).toEqual(a);
    expect(await system().db.checkout.count({ where: { reference: body.reference as string } })).toBe(1);
  });

  it('key order in the body does not make it another body', async () => {
    const key = randomUUID();
    const body = checkoutBody('alice');
    await http.createCheckout(body, { idempotencyKey: key });
    const reordered = Object.fromEntries(Object.entries(body).reverse());
    expect((await http.createCheckout(reordered, { idempotencyKey: key })).status).toBe(202);
  });

  it('the same key with another body → 422 idempotency_key_reused', async () => {
    const key = randomUUID();
    await http.createCheckout(checkoutBody('alice', { amount: 100 }), { idempotencyKey: key });
    await expectProblem(
      await http.createCheckout(checkoutBody('alice', { amount: 200 }), { idempotencyKey: key }),
      422,
      'idempotency_key_reused',
    );
  });

  it('the same key while the first request is still running → 409 with Retry-After', async () => {
    const key = randomUUID();
    const apiKey = await createApiKey(system().db, 'in-flight');
    const apiKeyId = apiKey.id;
    const body = checkoutBody('alice');
    // The state a request leaves while it runs: its claim on the key, no response yet.
    const { requestFingerprint } = await import('../../src/checkout/idempotency.repository.ts');
    await system().db.idempotencyRecord.create({
      data: {
        apiKeyId,
        key,
        requestHash: requestFingerprint('POST', '/v1/checkouts', body),
        state: 'in_flight',
        expiresAt: new Date(Date.now() + 60_000),
      },
    });
    const res = await http.createCheckout(body, { key: apiKey.key, idempotencyKey: key });
    await expectProblem(res, 409, 'idempotency_key_in_use');
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('a claim left by a crashed request is taken over after a minute', async () => {
    const key = randomUUID();
    const apiKey = await createApiKey(system().db, 'stale');
    const body = checkoutBody('alice');
    const { requestFingerprint } = await import('../../src/checkout/idempotency.repository.ts');
    await system().db.idempotencyRecord.create({
      data: {
        apiKeyId: apiKey.id,
        key,
        requestHash: requestFingerprint('POST', '/v1/checkouts', body),
        state: 'in_flight',
        createdAt: new Date(Date.now() - 120_000),
        expiresAt: new Date(Date.now() + 60_000),
      },
    });
    expect((await http.createCheckout(body, { key: apiKey.key, idempotencyKey: key })).status).toBe(202);
  });

  it('concurrent duplicates create exactly one checkout', async () => {
    const key = randomUUID();
    const body = checkoutBody('alice');
    const answers = await Promise.all(
      Array.from({ length: 8 }, () => http.createCheckout(body, { idempotencyKey: key })),
    );
    const statuses = answers.map((r) => r.status);
    expect(statuses.every((s) => s === 202 || s === 409)).toBe(true);
    expect(statuses).toContain(202);
    expect(await system().db.checkout.count({ where: { reference: body.reference as string } })).toBe(1);
  });

  it('a missing key → 400 idempotency_key_missing; an overlong one → 400', async () => {
    await expectProblem(
      await http.createCheckout(checkoutBody('alice'), { idempotencyKey: null }),
      400,
      'idempotency_key_missing',
    );
    await expectProblem(
      await http.createCheckout(checkoutBody('alice'), { idempotencyKey: 'k'.repeat(256) }),
      400,
      'invalid_idempotency_key',
    );
  });

  it('keys are per API key: another merchant key with the same value is another request', async () => {
    const key = randomUUID();
    const other = await createApiKey(system().db, 'other');
    const a = await json(await http.createCheckout(checkoutBody('alice'), { idempotencyKey: key }));
    const b = await json(
      await http.createCheckout(checkoutBody('alice'), { idempotencyKey: key, key: other.key }),
    );
    expect(a.id).not.toBe(b.id);
  });
});

describe('authentication', () => {
  it('no key or a wrong key → 401 with WWW-Authenticate', async () => {
    const res = await http.createCheckout(checkoutBody('alice'), { key: 'bpk_wrong' });
    await expectProblem(res, 401, 'unauthorized');
    expect(res.headers.get('www-authenticate')).toMatch(/^Bearer/);
    await expectProblem(await fetch(`${system().url}/v1/checkouts`), 401, 'unauthorized');
  });

  it('a clientSecret reads its own checkout and nothing else', async () => {
    const a = (await json(await http.createCheckout(checkoutBody('alice')))) as {
      id: string;
      clientSecret: string;
    };
    const b = (await json(await http.createCheckout(checkoutBody('alice')))) as { id: string };
    expect((await http.get(`/v1/checkouts/${a.id}`, a.clientSecret)).status).toBe(200);
    await expectProblem(await http.get(`/v1/checkouts/${b.id}`, a.clientSecret), 404, 'checkout_not_found');
    // Not the list, not cancel.
    await expectProblem(await http.get('/v1/checkouts', a.clientSecret), 401, 'unauthorized');
    await expectProblem(
      await http.post(`/v1/checkouts/${a.id}/cancel`, undefined, a.clientSecret),
      401,
      'unauthorized',
    );
    // A tampered secret is no secret.
    await expectProblem(
      await http.get(`/v1/checkouts/${a.id}`, `${a.clientSecret.slice(0, -2)}xx`),
      404,
      'checkout_not_found',
    );
  });

  it('a clientSecret stops reading its checkout a day after it ended; the merchant key still reads it', async () => {
    const a = (await json(await http.createCheckout(checkoutBody('alice')))) as {
      id: string;
      clientSecret: string;
    };
    expect((await http.post(`/v1/checkouts/${a.id}/cancel`)).status).toBe(200);
    expect((await http.get(`/v1/checkouts/${a.id}`, a.clientSecret)).status).toBe(200);
    // Ended just over a day ago.
    await system().db.checkout.update({
      where: { id: a.id },
      data: { updatedAt: new Date(Date.now() - 24 * 3600 * 1000 - 60_000) },
    });
    await expectProblem(await http.get(`/v1/checkouts/${a.id}`, a.clientSecret), 404, 'checkout_not_found');
    expect((await http.get(`/v1/checkouts/${a.id}`)).status).toBe(200);
  });

  it('a clientSecret is signed with CLIENT_SECRET_KEYS: the token-encryption keys do not open it', async () => {
    const a = (await json(await http.createCheckout(checkoutBody('alice')))) as {
      id: string;
      clientSecret: string;
    };
    const { createKeyRing } = await import('../../src/infra/crypto.ts');
    const { verifyClientSecret } = await import('../../src/checkout/client-secret.ts');
    const config = system().config;
    expect(verifyClientSecret(createKeyRing(config.clientSecretKeys), a.id, a.clientSecret)).toBe(true);
    expect(verifyClientSecret(createKeyRing(config.tokenEncryptionKeys), a.id, a.clientSecret)).toBe(false);
  });

  it('an unknown checkout → 404', async () => {
    await expectProblem(await http.get('/v1/checkouts/chk_nope'), 404, 'checkout_not_found');
  });
});

describe('validation', () => {
  it.each([
    ['a missing amount', { amount: undefined }, '/body/amount'],
    ['a fractional amount', { amount: 49.9 }, '/body/amount'],
    ['a zero amount', { amount: 0 }, '/body/amount'],
    ['a negative amount', { amount: -1 }, '/body/amount'],
    ['an amount beyond 2^53', { amount: 2 ** 60 }, '/body/amount'],
    ['a string amount', { amount: '4990' }, '/body/amount'],
    ['a lower-case currency', { currency: 'eur' }, '/body/currency'],
    ['an unknown currency', { currency: 'ZZZ' }, '/body/currency'],
    ['a metal as currency', { currency: 'XAU' }, '/body/currency'],
    ['a control character in the reference', { reference: 'order\u0000-1' }, '/body/reference'],
    ['an unknown field', { colour: 'red' }, '/body/colour'],
    ['an overlong reference', { reference: 'r'.repeat(141) }, '/body/reference'],
  ])('%s → 400 invalid_request naming the field', async (_label, override, pointer) => {
    const body = { ...checkoutBody('alice'), ...override };
    const problem = await expectProblem(await http.createCheckout(body), 400, 'invalid_request');
    expect((problem.errors as Array<{ pointer: string }>).map((e) => e.pointer)).toContain(pointer);
  });

  it('an unknown bank → 422 unknown_bank', async () => {
    await expectProblem(
      await http.createCheckout(checkoutBody('alice', { bankId: 'nobank' })),
      422,
      'unknown_bank',
    );
  });

  it('malformed JSON → 400 malformed_json', async () => {
    const res = await fetch(`${system().url}/v1/checkouts`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${system().apiKey}`,
        'idempotency-key': randomUUID(),
      },
      body: '{"amount": 49',
    });
    await expectProblem(res, 400, 'malformed_json');
  });

  it('JPY has no minor unit and BHD three: the amount is taken as given', async () => {
    const jpy = await json(
      await http.createCheckout(checkoutBody('alice', { amount: 500, currency: 'JPY' })),
    );
    expect(jpy).toMatchObject({ amount: 500, currency: 'JPY' });
    const bhd = await json(
      await http.createCheckout(checkoutBody('alice', { amount: 1234, currency: 'BHD' })),
    );
    expect(bhd).toMatchObject({ amount: 1234, currency: 'BHD' });
  });
});

/** Sends `text` as an application/json body, byte for byte as written (JSON.stringify cannot repeat a name). */
function postJsonText(path: string, text: string, idempotencyKey: string = randomUUID()): Promise<Response> {
  return fetch(`${system().url}${path}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${system().apiKey}`,
      'idempotency-key': idempotencyKey,
    },
    body: text,
  });
}

/** A checkout body as JSON text with `extra` members written after the valid ones. */
function checkoutText(body: Record<string, unknown>, extra: string): string {
  return `${JSON.stringify(body).slice(0, -1)},${extra}}`;
}

describe('a body means one thing: duplicate member names are refused on every JSON route (RFC 7493 §2.3)', () => {
  const create: Array<[string, (body: Record<string, unknown>) => string, string]> = [
    ['a top-level duplicate with another value', (b) => checkoutText(b, '"amount":200'), '"amount"'],
    ['a top-level duplicate with the same value', (b) => checkoutText(b, `"amount":${b.amount}`), '"amount"'],
    [
      'a duplicate written with an escape (the same name once unescaped)',
      (b) => checkoutText(b, '"\\u0061mount":200'),
      '"amount"',
    ],
    [
      'a duplicate of a text member with another value',
      (b) => checkoutText(b, `"reference":"${b.reference}-2"`),
      '"reference"',
    ],
    [
      'a nested duplicate',
      (b) => checkoutText(b, '"metadata":{"note":"a","note":"b"}'),
      '"note" appears more than once in the object at /metadata',
    ],
    [
      'a duplicate in an object inside an array',
      (b) => checkoutText(b, '"items":[{"sku":"a"},{"sku":"b","qty":1,"sku":"b"}]'),
      '"sku" appears more than once in the object at /items/1',
    ],
  ];

  it.each(create)(
    'POST /v1/checkouts, %s → 400 malformed_json naming it; nothing stored',
    async (_label, text, named) => {
      const key = randomUUID();
      const body = checkoutBody('alice', { amount: 100 });
      const problem = await expectProblem(
        await postJsonText('/v1/checkouts', text(body), key),
        400,
        'malformed_json',
      );
      expect(problem.detail).toContain(named);
      expect(problem.detail).toMatch(/RFC 7493/);
      // Nothing stored: no checkout, and the Idempotency-Key was not even claimed.
      expect(
        await system().db.checkout.count({ where: { reference: { startsWith: body.reference as string } } }),
      ).toBe(0);
      expect(await system().db.idempotencyRecord.count({ where: { key } })).toBe(0);
      // The same key with the body meant once then works: the refusal claimed nothing.
      expect((await postJsonText('/v1/checkouts', JSON.stringify(body), key)).status).toBe(202);
    },
  );

  const cancel: Array<[string, string, string]> = [
    [
      'a top-level duplicate with another value',
      '{"reason":"a","reason":"b"}',
      '"reason" appears more than once in the top-level object',
    ],
    [
      'a top-level duplicate with the same value',
      '{"reason":"a","reason":"a"}',
      '"reason" appears more than once in the top-level object',
    ],
    [
      'a nested duplicate',
      '{"context":{"by":"a","by":"a"}}',
      '"by" appears more than once in the object at /context',
    ],
  ];

  it.each(cancel)(
    'POST /v1/checkouts/{id}/cancel, %s → 400 malformed_json; nothing canceled',
    async (_label, text, named) => {
      const { id } = await json(await http.createCheckout(checkoutBody('alice')));
      const eventsBefore = await system().db.checkoutEvent.count({ where: { checkoutId: id } });
      const problem = await expectProblem(
        await postJsonText(`/v1/checkouts/${id}/cancel`, text),
        400,
        'malformed_json',
      );
      expect(problem.detail).toContain(named);
      const row = await system().db.checkout.findUniqueOrThrow({ where: { id } });
      expect(row.status).toBe('pending');
      expect(await system().db.checkoutEvent.count({ where: { checkoutId: id } })).toBe(eventsBefore);
      // The same body without the duplicate is taken (the route ignores what the body says).
      expect((await postJsonText(`/v1/checkouts/${id}/cancel`, '{"reason":"a"}')).status).toBe(200);
    },
  );

  it('a member named __proto__ (or constructor.prototype) is refused, saying so', async () => {
    const body = checkoutBody('alice');
    for (const [extra, named] of [
      ['"__proto__":{"admin":true}', 'A member named "__proto__" is not accepted'],
      [
        '"metadata":{"__pro\\u0074o__":{"admin":true}}',
        'A member named "__proto__" is not accepted (in the object at /metadata)',
      ],
      [
        '"constructor":{"prototype":{"admin":true}}',
        'A member named "prototype" inside a member named "constructor"',
      ],
    ] as const) {
      const problem = await expectProblem(
        await postJsonText('/v1/checkouts', checkoutText(body, extra)),
        400,
        'malformed_json',
      );
      expect(problem.detail).toContain(named);
      expect(problem.detail).not.toMatch(/not valid JSON/);
    }
    expect(await system().db.checkout.count({ where: { reference: body.reference as string } })).toBe(0);
  });

  it('the name is shown escaped and shortened: never raw control or bidi characters, never the whole input', async () => {
    const nasty = JSON.stringify('\u202e"\u0007\\');
    const problem = await expectProblem(
      await postJsonText('/v1/checkouts', `{${nasty}:1,${nasty}:2}`),
      400,
      'malformed_json',
    );
    expect(problem.detail).toContain('"\\u202e\\"\\u0007\\\\"');
    // Two 7,000-character names fit the body limit; the detail repeats 64 characters of one.
    const long = JSON.stringify(`\u202e${'x'.repeat(7_000)}`);
    const longProblem = await expectProblem(
      await postJsonText('/v1/checkouts', `{${long}:1,${long}:1}`),
      400,
      'malformed_json',
    );
    expect(longProblem.detail).toContain(`"\\u202e${'x'.repeat(63)}…"`);
    expect((longProblem.detail as string).length).toBeLessThan(300);
    // Printable ASCII, and our own "…" and "§": nothing of the client's raw text beyond that.
    for (const detail of [problem.detail, longProblem.detail]) expect(detail).toMatch(/^[ -~…§]*$/);
  });

  it('an empty body, text that is not JSON, and a byte order mark keep their answers', async () => {
    const empty = await expectProblem(await postJsonText('/v1/checkouts', ''), 400, 'malformed_json');
    expect(empty.detail).toMatch(/empty/);
    const broken = await expectProblem(
      await postJsonText('/v1/checkouts', '{"amount":1,'),
      400,
      'malformed_json',
    );
    expect(broken.detail).toMatch(/not valid JSON/);
    // A leading byte order mark was ignored before, and still is.
    expect(
      (await postJsonText('/v1/checkouts', `\uFEFF${JSON.stringify(checkoutBody('alice'))}`)).status,
    ).toBe(202);
    // Over the body limit: 413 as before, before any parsing.
    const huge = JSON.stringify(checkoutBody('alice', { description: 'x'.repeat(17 * 1024) }));
    await expectProblem(await postJsonText('/v1/checkouts', huge), 413, 'body_too_large');
  });

  it('the same name in different objects is no duplicate', async () => {
    const body = checkoutBody('alice');
    const text = `[${JSON.stringify(body)},${JSON.stringify(body)}]`;
    // An array is not a checkout: the schema refuses it, the parser did not.
    await expectProblem(await postJsonText('/v1/checkouts', text), 400, 'invalid_request');
  });
});

describe('listing', () => {
  it('pages newest first with starting_after and has_more, and filters by status', async () => {
    const login = await newBankCustomer();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await json(await http.createCheckout(checkoutBody(login)))).id);
    const seen: string[] = [];
    let after: string | undefined;
    for (;;) {
      const page = await json(
        await http.get(`/v1/checkouts?limit=2${after ? `&starting_after=${after}` : ''}`),
      );
      seen.push(...page.data.map((c: { id: string }) => c.id));
      if (!page.has_more || seen.includes(ids[0]!)) break;
      after = page.data.at(-1).id;
    }
    // Newest first: our five appear in reverse creation order, each once.
    const ours = seen.filter((id) => ids.includes(id));
    expect(ours).toEqual([...ids].reverse());
    const canceled = await http.post(`/v1/checkouts/${ids[2]}/cancel`);
    expect(canceled.status).toBe(200);
    const filtered = await json(await http.get('/v1/checkouts?status=canceled&limit=100'));
    expect(filtered.data.every((c: { status: string }) => c.status === 'canceled')).toBe(true);
    expect(filtered.data.map((c: { id: string }) => c.id)).toContain(ids[2]);
  });

  it('rejects a bad limit and an unknown cursor', async () => {
    await expectProblem(await http.get('/v1/checkouts?limit=1000'), 400, 'invalid_request');
    await expectProblem(await http.get('/v1/checkouts?starting_after=chk_unknown'), 400, 'invalid_request');
  });
});

describe('banks', () => {
  it('lists the configured banks for a picker', async () => {
    const res = await fetch(`${system().url}/v1/banks`);
    expect(await res.json()).toEqual({
      data: [
        { id: 'sandbox', name: 'Sandbox Bank' },
        { id: 'sandbox-short', name: 'Sandbox Bank (3 s expiry)' },
        { id: 'sandbox-no-details', name: 'Sandbox Bank (no details)' },
      ],
    });
  });
});
