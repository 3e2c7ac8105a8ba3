/**
 * The scope list and the route declarations: every /v1/ route says which scope a merchant key
 * needs (or that it is public), or the app does not start, so a new route cannot be left open by
 * forgetting; the scope a route declares is what its OpenAPI operation documents.
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import { merchantAuth } from '../../src/http/auth.ts';
import { allows, InvalidScopesError, parseScopes, SCOPES, type Scope } from '../../src/infra/api-keys.ts';
import type { Database } from '../../src/infra/database.ts';

describe('parseScopes', () => {
  it.each([
    ['checkouts:read', ['checkouts:read']],
    ['checkouts:read,checkouts:create', ['checkouts:create', 'checkouts:read']],
    [' checkouts:cancel , checkouts:cancel,', ['checkouts:cancel']],
    ['webhooks:manage', ['webhooks:manage']],
  ])('%j → %j (deduplicated, in list order)', (text, scopes) => {
    expect(parseScopes(text)).toEqual(scopes);
  });

  it.each([
    ['checkouts:write', 'unknown scope "checkouts:write"'],
    ['checkouts:read,Checkouts:Create', 'unknown scope "Checkouts:Create"'],
    ['*', 'unknown scope "*"'],
    ['', 'no scope given'],
    [' , ', 'no scope given'],
  ])('%j is refused: %s', (text, message) => {
    expect(() => parseScopes(text)).toThrow(InvalidScopesError);
    expect(() => parseScopes(text)).toThrow(message);
  });

  it('null is full access; a list grants only what it names', () => {
    for (const scope of SCOPES) expect(allows(null, scope)).toBe(true);
    expect(allows(['checkouts:read'], 'checkouts:read')).toBe(true);
    expect(allows(['checkouts:read'], 'checkouts:cancel')).toBe(false);
    expect(allows([], 'checkouts:read')).toBe(false);
  });
});

/** Never reached: no request is sent, only routes declared. */
const db = new Proxy({}, { get: () => expect.unreachable('no key lookup') }) as Database;

async function appWith(declare: (app: FastifyInstance) => void): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(merchantAuth, { db });
  await app.register(async (child) => declare(child));
  await app.ready();
  return app;
}

describe('route declarations', () => {
  it('a /v1/ route that declares neither a scope nor public stops the app at start', async () => {
    await expect(appWith((app) => app.get('/v1/things', async () => ({})))).rejects.toThrow(
      'GET /v1/things declares no scope',
    );
  });

  it('so does a route that documents the merchant key without a scope, wherever it is', async () => {
    await expect(
      appWith((app) =>
        app.get('/elsewhere', { schema: { security: [{ merchantKey: [] }] } }, async () => ({})),
      ),
    ).rejects.toThrow('GET /elsewhere declares no scope');
  });

  it('an unknown scope, or a scope on a public route, stops it too', async () => {
    await expect(
      // A scope the type refuses, as plain JavaScript could declare it.
      appWith((app) =>
        app.get('/v1/things', { config: { scope: 'checkouts:write' as unknown as Scope } }, async () => ({})),
      ),
    ).rejects.toThrow('"checkouts:write" is not a known scope');
    await expect(
      appWith((app) =>
        app.get('/v1/things', { config: { scope: 'checkouts:read', public: true } }, async () => ({})),
      ),
    ).rejects.toThrow('contradict');
  });

  it('public routes and routes outside /v1/ need no declaration', async () => {
    const app = await appWith((app) => {
      app.get('/v1/public', { config: { public: true } }, async () => ({ ok: true }));
      app.get('/health/live', async () => ({ ok: true }));
    });
    expect((await app.inject({ method: 'GET', url: '/v1/public' })).statusCode).toBe(200);
    await app.close();
  });

  it('a declared scope is documented: the security requirement names it, 403 is a response', async () => {
    const app = Fastify();
    const seen: unknown[] = [];
    await app.register(merchantAuth, { db });
    app.addHook('onRoute', (route) => {
      if (route.method === 'GET') seen.push(route.schema);
    });
    app.get(
      '/v1/things',
      {
        config: { scope: 'checkouts:read' },
        schema: { description: 'Things.', response: { 200: { type: 'object' } } },
      },
      async () => ({}),
    );
    await app.ready();
    expect(seen[0]).toMatchObject({
      security: [{ merchantKey: ['checkouts:read'] }],
      description: expect.stringMatching(
        /^Things\. Needs a merchant API key with the `checkouts:read` scope/,
      ),
      response: {
        200: { type: 'object' },
        // A problem document, described by its one code.
        403: expect.objectContaining({
          description: expect.stringContaining('`insufficient_scope`'),
          content: {
            'application/problem+json': expect.objectContaining({
              examples: { insufficient_scope: expect.objectContaining({ value: expect.anything() }) },
            }),
          },
        }),
      },
    });
    // Without a credential: 401 with the challenge, before the key store is ever asked.
    const res = await app.inject({ method: 'GET', url: '/v1/things' });
    expect(res.statusCode).toBe(401);
    expect(res.headers['www-authenticate']).toBe('Bearer realm="bankpay"');
    await app.close();
  });
});
