/**
 * `npm run worker`: consumes the job queue. Scale out by running more. On SIGTERM/SIGINT it stops
 * taking jobs, lets the running ones finish, and exits; a job cut short by a crash is picked up
 * again (every job is safe to run twice).
 */
import pino from 'pino';
import { ConfigError, loadConfig } from './config.ts';
import { createKeyRing } from './infra/crypto.ts';
import { createDatabase } from './infra/database.ts';
import { loggerOptions } from './infra/logging.ts';
import { createQueueInfra } from './infra/queue.ts';
import { createBankClients } from './integrations/bank.client.ts';
import { createJobProcessor } from './jobs/index.ts';

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
const db = createDatabase(config.databaseUrl);
const queue = createQueueInfra(config.queue, config.databaseUrl);
const banks = createBankClients(config.banks);
const keys = createKeyRing(config.tokenEncryptionKeys);
const worker = queue.createWorker(createJobProcessor({ config, db, queue: queue.queue, keys, banks, log }), {
  concurrency: 50,
  autorun: true,
});
worker.on('error', (err) => log.error({ err }, 'worker error'));
worker.on('failed', (job, err) =>
  log.warn({ jobId: job?.id, job: job?.name, err: err.message }, 'job failed'),
);
log.info({ backend: queue.backend, banks: config.banks.map((b) => b.id) }, 'worker started');

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  log.info({ signal }, 'shutting down: finishing running jobs');
  const force = setTimeout(() => {
    log.error('shutdown took longer than 20 s, exiting; unfinished jobs will be retried');
    process.exit(1);
  }, 20_000);
  force.unref();
  await queue.close();
  await Promise.all([...banks.values()].map((b) => b.close()));
  await db.$disconnect();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
