/**
 * Renders the OpenAPI document from the app's own routes, without connecting to anything: the
 * app is built with dependencies that are never called, then asked for its document.
 */
import { buildApp } from './app.ts';
import type { Config } from './config.ts';
import type { Database } from './infra/database.ts';
import type { QueueInfra } from './infra/queue.ts';

const unused = new Proxy(
  {},
  {
    get() {
      throw new Error('not available while rendering the OpenAPI document');
    },
  },
);

const documentConfig: Config = {
  databaseUrl: 'postgresql://unused',
  queue: { backend: 'postgres' },
  host: '127.0.0.1',
  port: 0,
  logLevel: 'silent',
  merchant: { name: 'Example Shop', iban: 'DE89370400440532013000' },
  tokenEncryptionKeys: [Buffer.alloc(32)],
  clientSecretKeys: [Buffer.alloc(32)],
  banks: [],
  banksFile: 'unused',
  publicUrl: null,
  http: {
    rateLimit: { max: 1_000, timeWindowMs: 10_000 },
    trustProxy: false,
    corsOrigins: [],
    notifyRateLimitMax: 10_000,
  },
  webhooks: { timeoutMs: 10_000, concurrency: 1, perEndpointConcurrency: 1, retryScheduleSeconds: [30] },
  live: {
    maxStreams: 1,
    maxHeldReads: 1,
    maxPerApiKey: 1,
    maxPerClientSecret: 1,
    heartbeatMs: 15_000,
    recheckMs: 5_000,
  },
  worker: {
    concurrency: 1,
    lockDurationMs: 15_000,
    pollConcurrency: 1,
    bankTimeoutMs: 10_000,
    reconcileEveryMs: 10_000,
    reconcileGraceMs: 30_000,
    pauseAfterTokenAnswerStoredMs: 0,
  },
};

export async function renderOpenApiYaml(): Promise<string> {
  const app = await buildApp({
    config: documentConfig,
    db: unused as Database,
    queue: { queue: unused } as unknown as QueueInfra,
  });
  await app.ready();
  const yaml = app.swagger({ yaml: true });
  await app.close();
  return yaml.endsWith('\n') ? yaml : `${yaml}\n`;
}
