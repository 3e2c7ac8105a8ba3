/**
 * `npm run worker`: consumes the job queue and polls the banks' token endpoints for the checkouts
 * awaiting approval. Scale out by running more. On SIGTERM/SIGINT it stops taking work, lets the
 * running jobs and token requests finish, and exits; a job cut short by a crash is picked up again
 * by another worker once its lock lapses (every job is safe to run twice), a token poll once its
 * claim lapses, and the reconciler re-creates jobs the queue lost.
 */
import pino from 'pino';
import { ConfigError, loadConfig } from './config.ts';
import { createKeyRing } from './infra/crypto.ts';
import { createDatabase, createSqlPool } from './infra/database.ts';
import { loggerOptions } from './infra/logging.ts';
import { createQueueInfra } from './infra/queue.ts';
import { createBankClients } from './integrations/bank.client.ts';
import { startWorkerRuntime } from './jobs/runtime.ts';
import { createRepositories } from './repositories.ts';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    console.error(`configuration error: ${error.message}`);
    process.exit(78); // EX_CONFIG
  }
  throw error;
}

const log = pino(loggerOptions(config.logLevel, 'bankpay-worker'));
const sql = createSqlPool(config.databaseUrl, { poolSize: 20 });
const db = createDatabase(config.databaseUrl, { pool: sql });
const queue = createQueueInfra(config.queue, config.databaseUrl);
const banks = createBankClients(config.banks, { timeoutMs: config.worker.bankTimeoutMs });
const keys = createKeyRing(config.tokenEncryptionKeys);
const runtime = await startWorkerRuntime(
  { config, ...createRepositories(db, sql), queue: queue.queue, keys, banks, log },
  queue,
);
log.info(
  {
    backend: queue.backend,
    banks: config.banks.map((b) => b.id),
    concurrency: config.worker.concurrency,
    pollConcurrency: config.worker.pollConcurrency,
  },
  'worker started',
);

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  log.info({ signal }, 'shutting down: finishing running jobs and token requests');
  const force = setTimeout(() => {
    log.error('shutdown took longer than 30 s, exiting; unfinished jobs will be retried');
    process.exit(1);
  }, 30_000);
  force.unref();
  await runtime.close();
  await queue.close();
  await Promise.all([...banks.values()].map((b) => b.close()));
  await db.$disconnect();
  await sql.end();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
