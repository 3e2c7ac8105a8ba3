/**
 * Provisions the real services the tests run against, once per `npm test`: an embedded
 * PostgreSQL (migrated), Redis from the machine's redis-server (BullMQ's PostgreSQL backend when
 * none is installed, with a warning: CI installs Redis), the development certificates and the
 * sandbox bank in test mode. Test files reach them through `inject(...)` and over the network.
 * They are devstack's local stack, started as `npm run dev` starts it, in a temporary folder.
 */
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startDevStack } from '../../devstack/devstack.ts';
import { findRedisServer } from '../../devstack/redis.service.ts';
import { applyMigrations } from '../../src/infra/migrations.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    databaseUrl: string;
    /** Superuser-less admin URL on the same server, for creating scratch databases. */
    postgresAdminUrl: string;
    /** A migrated database nobody connects to: each test system runs on a copy of it. */
    templateDatabase: string;
    redisUrl: string | null;
    certsDir: string;
    bank: { issuer: string; paymentsApiUrl: string; appUrl: string; controlUrl: string; clientId: string };
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const started = Date.now();
  if (!findRedisServer() && process.env.CI) {
    throw new Error(
      'redis-server is not installed: CI must exercise real Redis (apt-get install -y redis-server)',
    );
  }
  // A 1-second acknowledged interval (instead of the CIBA default of 5 s) keeps flows quick.
  const stack = await startDevStack({
    name: 'test',
    database: 'bankpay_test',
    ephemeral: true,
    queue: 'redis-when-installed',
    sandbox: { testMode: true, defaultInterval: 1 },
  });
  if (!stack.redis) {
    console.warn(
      "[test] redis-server not found: using BullMQ's PostgreSQL backend (apt-get install -y redis-server for Redis)",
    );
  }
  const db = stack.postgres;
  const template = 'bankpay_template';
  const templateUrl = db.url.replace(/\/[^/]+$/, `/${template}`);
  const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${template}`);
  await admin.end();
  await applyMigrations(templateUrl);

  const { bank } = stack;
  project.provide('databaseUrl', db.url);
  project.provide('postgresAdminUrl', db.url.replace(/\/[^/]+$/, '/postgres'));
  project.provide('templateDatabase', template);
  project.provide('redisUrl', stack.redis?.url ?? null);
  project.provide('certsDir', stack.certsDir);
  project.provide('bank', {
    issuer: bank.issuer,
    paymentsApiUrl: bank.paymentsApiUrl,
    appUrl: bank.appUrl,
    controlUrl: bank.controlUrl ?? '',
    clientId: bank.clients.tlsClientAuth,
  });
  console.log(`[test] services ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  return () => stack.stop();
}
