/**
 * The real HTTP app (buildApp with the run's PostgreSQL and queue) without a listener or a worker,
 * for tests that drive it in process with `app.inject()` and need to set what startSystem does not
 * (rate limits, where the logs go).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { type AppDependencies, buildApp } from '../../src/app.ts';
import { type Config, loadConfig } from '../../src/config.ts';
import { createApiKey } from '../../src/infra/api-keys.ts';
import { createDatabase, type Database } from '../../src/infra/database.ts';
import { createQueueInfra, type QueueInfra } from '../../src/infra/queue.ts';
import { testEnv } from './env.ts';

export interface ApiApp {
  app: FastifyInstance;
  config: Config;
  db: Database;
  queue: QueueInfra;
  env: Record<string, string>;
  /** A fresh merchant API key, and its id. */
  apiKey: string;
  apiKeyId: string;
  close(): Promise<void>;
}

export async function startApiApp(
  options: Pick<AppDependencies, 'rateLimit' | 'logStream'> & { env?: Record<string, string> } = {},
): Promise<ApiApp> {
  // Its own queue namespace, so that no test's worker picks up the jobs this app enqueues.
  const env = testEnv({ QUEUE_PREFIX: `t${randomBytes(4).toString('hex')}`, ...options.env });
  const config = loadConfig(env);
  const db = createDatabase(config.databaseUrl);
  const queue = createQueueInfra(config.queue, config.databaseUrl);
  const app = await buildApp({
    config,
    db,
    queue,
    ...(options.rateLimit ? { rateLimit: options.rateLimit } : {}),
    ...(options.logStream ? { logStream: options.logStream } : {}),
  });
  await app.ready();
  const { key, id } = await createApiKey(db, `test-${randomUUID()}`);
  return {
    app,
    config,
    db,
    queue,
    env,
    apiKey: key,
    apiKeyId: id,
    async close() {
      await app.close();
      await queue.close();
      await db.$disconnect();
    },
  };
}
