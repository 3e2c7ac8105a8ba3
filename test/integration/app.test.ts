import { readFileSync } from 'node:fs';
import { Validator } from '@seriousme/openapi-schema-validator';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { freePort } from '../../devstack/ports.ts';
import { buildApp } from '../../src/app.ts';
import { loadConfig } from '../../src/config.ts';
import { PROBLEMS, type ProblemCode } from '../../src/http/problem.ts';
import { createDatabase, type Database } from '../../src/infra/database.ts';
import { createQueueInfra, type QueueInfra } from '../../src/infra/queue.ts';
import { DOCS_TITLE } from '../../src/infra/swagger.ts';
import { renderOpenApiYaml } from '../../src/openapi.ts';
import { testEnv } from '../support/env.ts';

async function appWith(env: Record<string, string>) {
  const config = loadConfig(env);
  const db = createDatabase(config.databaseUrl);
  const queue = createQueueInfra(config.queue, config.databaseUrl);
  const app = await buildApp({ config, db, queue });
  return { app, db, queue };
}

describe('the HTTP app', () => {
  let app: FastifyInstance;
  let db: Database;
  let queue: QueueInfra;

  beforeAll(async () => {
    ({ app, db, queue } = await appWith(testEnv()));
  });
  afterAll(async () => {
    await app.close();
    await queue.close();
    await db.$disconnect();
  });

  it('answers liveness and readiness when Postgres and the queue are up', async () => {
    const live = await app.inject({ method: 'GET', url: '/health/live' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
    const ready = await app.inject({ method: 'GET', url: '/health/ready' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', checks: { database: 'ok', queue: 'ok' } });
  });

  it('answers an unknown route with problem+json and a stable code', async () => {
    const res = await app.inject({ method: 'GET', url: '/v1/nothing-here?x=1' });
    expect(res.statusCode).toBe(404);
    expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
    const body = res.json();
    expect(body).toMatchObject({
      status: 404,
      code: 'not_found',
      title: 'Not found',
      detail: 'No route for GET /v1/nothing-here',
    });
    expect(body.requestId).toBe(res.headers['x-request-id']);
    expect(body.type).toMatch(/^https:\/\//);
  });

  it("serves our client's public signing keys for banks that take a jwks_uri, cacheable, never a private part", async () => {
    const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/jwk-set\+json/);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    const { keys } = res.json() as { keys: Array<Record<string, unknown>> };
    // The test banks file signs request objects with the sandbox's RSA key (PS256).
    expect(keys).toEqual([
      expect.objectContaining({
        kty: 'RSA',
        alg: 'PS256',
        use: 'sig',
        kid: expect.any(String),
        n: expect.any(String),
      }),
    ]);
    for (const key of keys)
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(key).not.toHaveProperty(secret);
  });

  it('serves Swagger UI at /docs and the OpenAPI document behind it', async () => {
    const ui = await app.inject({ method: 'GET', url: '/docs/' });
    expect(ui.statusCode).toBe(200);
    expect(ui.headers['content-type']).toMatch(/text\/html/);
    expect(ui.body).toContain('swagger');
    expect(ui.body).toContain(`<title>${DOCS_TITLE}</title>`);
    // The UI's own scripts and styles load under the CSP /docs answers with.
    expect(ui.headers['content-security-policy']).toMatch(/script-src 'self'/);
    const init = await app.inject({ method: 'GET', url: '/docs/static/swagger-initializer.js' });
    expect(init.statusCode).toBe(200);
    expect(init.body).toContain('"layout":"BaseLayout"');
    const doc = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(doc.json()).toMatchObject({ openapi: '3.1.0', info: { title: 'Bankpay API' } });
    expect(Object.keys(doc.json().paths)).toEqual(expect.arrayContaining(['/health/live', '/health/ready']));
  });

  it('redirects the root to Swagger UI, which the OpenAPI document does not list', async () => {
    const res = await app.inject({ method: 'GET', url: '/' });
    expect(res.statusCode).toBe(302);
    expect(res.headers.location).toBe('/docs');
    const doc = await app.inject({ method: 'GET', url: '/docs/json' });
    expect(Object.keys(doc.json().paths)).not.toContain('/');
  });

  it('openapi.yaml at the root is the document generated from the routes (npm run openapi)', async () => {
    const committed = readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8');
    expect(committed, 'openapi.yaml is stale: run npm run openapi').toBe(await renderOpenApiYaml());
  });

  it('openapi.yaml is a valid OpenAPI 3.1 document, every operation named, tagged and summarised', async () => {
    const validator = new Validator();
    const result = await validator.validate(new URL('../../openapi.yaml', import.meta.url).pathname);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
    const doc = validator.resolveRefs() as {
      paths: Record<
        string,
        Record<
          string,
          { operationId?: string; tags?: string[]; summary?: string; responses: Record<string, unknown> }
        >
      >;
    };
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        expect(op.operationId, `${method} ${path}`).toBeTruthy();
        expect(op.tags?.length, `${method} ${path}`).toBeGreaterThan(0);
        expect(op.summary, `${method} ${path}`).toBeTruthy();
      }
    }
  });

  it('openapi.yaml describes every response and gives a real example, no placeholder', async () => {
    const doc = parse(readFileSync(new URL('../../openapi.yaml', import.meta.url), 'utf8')) as {
      paths: Record<string, Record<string, { responses: Record<string, Response> }>>;
    };
    interface Media {
      example?: unknown;
      examples?: Record<string, { value: Record<string, unknown> }>;
    }
    interface Response {
      description?: string;
      content?: Record<string, Media>;
    }
    let responses = 0;
    for (const [path, operations] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(operations)) {
        for (const [status, response] of Object.entries(op.responses)) {
          const where = `${method} ${path} ${status}`;
          responses++;
          expect(response.description, where).toBeTruthy();
          expect(response.description, where).not.toBe('Default Response');
          // 204 and 304 have no content (RFC 9110 §15.3.5, §15.4.5): a description alone.
          if (status === '204' || status === '304') {
            expect(response.content, where).toBeUndefined();
            continue;
          }
          const media = Object.values(response.content ?? {});
          expect(media.length, where).toBeGreaterThan(0);
          // Errors are documented with the media type they are sent with (RFC 9457 §3).
          if (Number(status) >= 400)
            expect(Object.keys(response.content ?? {}), where).toEqual(['application/problem+json']);
          for (const m of media) {
            const examples = m.examples ? Object.values(m.examples).map((e) => e.value) : [m.example];
            expect(examples.length, where).toBeGreaterThan(0);
            for (const example of examples) {
              expect(example, where).toBeDefined();
              const text = JSON.stringify(example);
              expect(text, where).not.toMatch(/example\.com|"string"|"status":0\b/);
            }
            if (Number(status) >= 400) {
              // One example per code the description names, each as the API sends it.
              const codes = [...(response.description ?? '').matchAll(/`([a-z_]+)`/g)].map((c) => c[1]);
              expect(codes.length, where).toBeGreaterThan(0);
              expect(Object.keys(m.examples ?? {}), where).toEqual(codes);
              for (const code of codes as ProblemCode[]) {
                expect(m.examples?.[code]?.value, where).toMatchObject({
                  type: `https://bankpay.dev/problems/${code}`,
                  title: PROBLEMS[code].title,
                  status: Number(status),
                  code,
                  detail: expect.any(String),
                  requestId: expect.any(String),
                });
                expect(PROBLEMS[code].status, where).toBe(Number(status));
              }
            }
          }
        }
      }
    }
    expect(responses).toBeGreaterThan(20);
  });
});

describe('readiness with a dependency down', () => {
  it('answers 503 problem+json with Retry-After when the queue is unreachable', async () => {
    const env = testEnv();
    const dead = `redis://127.0.0.1:${await freePort()}`;
    const { app, db, queue } = await appWith({ ...env, QUEUE_BACKEND: 'redis', REDIS_URL: dead });
    try {
      const res = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.headers['retry-after']).toBe('5');
      expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
      expect(res.json()).toMatchObject({ code: 'dependency_unavailable', detail: 'queue unreachable' });
      expect((await app.inject({ method: 'GET', url: '/health/live' })).statusCode).toBe(200);
    } finally {
      await app.close();
      await queue.close();
      await db.$disconnect();
    }
  });

  it('answers 503 when Postgres is unreachable', async () => {
    const env = testEnv();
    const { app, db, queue } = await appWith({
      ...env,
      DATABASE_URL: `postgresql://x:y@127.0.0.1:${await freePort()}/none`,
    });
    try {
      const res = await app.inject({ method: 'GET', url: '/health/ready' });
      expect(res.statusCode).toBe(503);
      expect(res.json().detail).toMatch(/^database/);
    } finally {
      await app.close();
      await queue.close();
      await db.$disconnect();
    }
  });
});
