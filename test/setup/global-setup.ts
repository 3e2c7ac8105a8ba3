/**
 * Provisions the real services the tests run against, once per `npm test`: an embedded
 * PostgreSQL (migrated), Redis from the machine's redis-server (BullMQ's PostgreSQL backend when
 * none is installed, with a warning: CI installs Redis), the development certificates and the
 * sandbox bank in test mode. Test files reach them through `inject(...)` and over the network.
 */
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startSandboxBank } from '../../sandbox/bank.ts';
import { ensureDevCertificates } from '../../scripts/certs.ts';
import { freePort } from '../../scripts/services/ports.ts';
import { startEmbeddedDatabase } from '../../scripts/services/postgres.ts';
import { findRedisServer, startLocalRedis } from '../../scripts/services/redis.ts';
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
  const workDir = mkdtempSync(join(tmpdir(), 'bankpay-test-'));
  chmodSync(workDir, 0o755); // PostgreSQL runs as its own user when tests run as root
  const certs = join(workDir, 'certs');
  ensureDevCertificates(certs);

  const db = await startEmbeddedDatabase({
    dataDir: join(workDir, 'postgres'),
    port: await freePort(),
    database: 'bankpay_test',
    ephemeral: true,
  });
  await applyMigrations(db.url);
  const template = 'bankpay_template';
  const templateUrl = db.url.replace(/\/[^/]+$/, `/${template}`);
  const admin = new pg.Client({ connectionString: db.url.replace(/\/[^/]+$/, '/postgres') });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${template}`);
  await admin.end();
  await applyMigrations(templateUrl);

  let redis: Awaited<ReturnType<typeof startLocalRedis>> | null = null;
  if (findRedisServer()) {
    redis = await startLocalRedis({
      port: await freePort(),
      dataDir: join(workDir, 'redis'),
      persistent: false,
    });
  } else if (process.env.CI) {
    throw new Error(
      'redis-server is not installed: CI must exercise real Redis (apt-get install -y redis-server)',
    );
  } else {
    console.warn(
      "[test] redis-server not found: using BullMQ's PostgreSQL backend (apt-get install -y redis-server for Redis)",
    );
  }

  // A 1-second acknowledged interval (instead of the CIBA default of 5 s) keeps flows quick.
  const bank = await startSandboxBank({
    certsDir: certs,
    port: 0,
    appPort: 0,
    testMode: true,
    defaultInterval: 1,
  });

  project.provide('databaseUrl', db.url);
  project.provide('postgresAdminUrl', db.url.replace(/\/[^/]+$/, '/postgres'));
  project.provide('templateDatabase', template);
  project.provide('redisUrl', redis?.url ?? null);
  project.provide('certsDir', certs);
  project.provide('bank', {
    issuer: bank.issuer,
    paymentsApiUrl: bank.paymentsApiUrl,
    appUrl: bank.appUrl,
    controlUrl: bank.controlUrl ?? '',
    clientId: bank.clients.tlsClientAuth,
  });
  console.log(`[test] services ready in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  return async () => {
    await bank.close();
    await redis?.stop();
    await db.stop();
    rmSync(workDir, { recursive: true, force: true });
  };
}
