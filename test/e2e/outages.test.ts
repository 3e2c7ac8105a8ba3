/**
 * Redis and PostgreSQL go away and come back, on instances of this test file's own (the shared
 * ones serve other tests): accepted checkouts are never lost and nothing needs a restart.
 *
 * Decision: with Redis down, POST /v1/checkouts still answers 202. The checkout is committed to
 * PostgreSQL (the source of truth) and the reconciler enqueues it once Redis is back.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { type EmbeddedDatabase, startEmbeddedDatabase } from '../../devstack/postgres.service.ts';
import { findRedisServer, type LocalRedis, startLocalRedis } from '../../devstack/redis.service.ts';
import { applyMigrations } from '../../src/infra/migrations.ts';
import {
  approveAllInBankApp,
  checkoutBody,
  decideInBankApp,
  newBankCustomer,
  pendingInBankApp,
  useSystem,
} from '../support/system.ts';

const dir = mkdtempSync(join(tmpdir(), 'bankpay-outage-'));
chmodSync(dir, 0o755);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const FAST_RECONCILER = { RECONCILE_EVERY_MS: '500', RECONCILE_GRACE_MS: '1000' };

// Needs redis-server (CI installs it); without it the whole run uses the PostgreSQL queue.
describe.skipIf(!findRedisServer())('Redis outage', () => {
  let redis: LocalRedis;
  let redisPort: number;

  beforeAll(async () => {
    redisPort = await freePort();
    redis = await startLocalRedis({ port: redisPort, dataDir: join(dir, 'redis'), persistent: false });
  });
  afterAll(async () => {
    await redis?.stop();
  });
  // Registered after Redis's hooks: started after Redis, closed before it.
  const { http, system } = useSystem(() => ({
    QUEUE_BACKEND: 'redis',
    REDIS_URL: redis.url,
    ...FAST_RECONCILER,
  }));

  it('accepts checkouts while Redis is down and completes them once it is back', async () => {
    await redis.stop();
    const login = await newBankCustomer();
    const started = Date.now();
    const res = await http.createCheckout(checkoutBody(login));
    expect(res.status).toBe(202);
    expect(Date.now() - started).toBeLessThan(3_000);
    const { id } = (await res.json()) as { id: string };
    const ready = await fetch(`${system().url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(ready.headers.get('retry-after')).toBeTruthy();

    redis = await startLocalRedis({ port: redisPort, dataDir: join(dir, 'redis'), persistent: false });
    const request = await pendingInBankApp(login, 30_000);
    await decideInBankApp(login, request.authReqId, 'approve');
    expect((await http.waitForStatus(id, ['succeeded', 'failed'], 30_000)).status).toBe('succeeded');
  }, 60_000);

  it('re-creates the jobs Redis lost (FLUSHALL while a customer is deciding)', async () => {
    const login = await newBankCustomer();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await http.waitForStatus(id, ['awaiting_approval']);
    const client = new Redis(redis.url);
    await client.flushall();
    client.disconnect();
    await decideInBankApp(login, request.authReqId, 'approve');
    expect((await http.waitForStatus(id, ['succeeded', 'failed'], 30_000)).status).toBe('succeeded');
  }, 60_000);
});

describe('PostgreSQL outage', () => {
  let db: EmbeddedDatabase;
  let port: number;

  beforeAll(async () => {
    port = await freePort();
    db = await startEmbeddedDatabase({ dataDir: join(dir, 'pg'), port, database: 'outage', ephemeral: true });
    await applyMigrations(db.url);
  });
  afterAll(async () => {
    await db?.stop();
  });
  // Registered after the database's hooks: started after it, closed before it.
  const { http, system } = useSystem(() => ({ DATABASE_URL: db.url, ...FAST_RECONCILER }));

  it('answers 503 problem+json with Retry-After while PostgreSQL is down, and recovers without a restart', async () => {
    const login = await newBankCustomer();
    const before = await http.createCheckout(checkoutBody(login));
    expect(before.status).toBe(202);
    const { id } = (await before.json()) as { id: string };

    await db.stop();
    for (const res of [
      await http.get(`/v1/checkouts/${id}`),
      await http.createCheckout(checkoutBody(login)),
      await http.get('/v1/checkouts'),
    ]) {
      expect(res.status).toBe(503);
      expect(res.headers.get('content-type')).toMatch(/^application\/problem\+json/);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(await res.json()).toMatchObject({ code: 'dependency_unavailable', status: 503 });
    }
    expect((await fetch(`${system().url}/health/ready`)).status).toBe(503);

    db = await startEmbeddedDatabase({ dataDir: join(dir, 'pg'), port, database: 'outage', ephemeral: true });
    const after = await http.get(`/v1/checkouts/${id}`);
    expect(after.status).toBe(200);
    // The checkout accepted before the outage completes. (Had the outage cut between the bank's
    // acknowledgement and its record, the bank would hold a second request: approve what shows.)
    await approveAllInBankApp(login);
    expect((await http.waitForStatus(id, ['succeeded', 'failed'], 30_000)).status).toBe('succeeded');
  }, 60_000);
});
