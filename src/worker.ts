/**
 * `npm run worker`: consumes the job queue. Scale out by running more. On SIGTERM/SIGINT it stops
 * taking jobs, lets the running ones finish, and exits; a job cut short by a crash is picked up
 * again by another worker once its lock lapses (every job is safe to run twice), and the
 * reconciler re-creates jobs the queue lost.
 */
import pino from 'pino';
import { ConfigError, loadConfig } from './config.ts';
import { createKeyRing } from './infra/crypto.ts';
import { createDatabase } from './infra/database.ts';
import { loggerOptions } from './infra/logging.ts';
import { createQueueInfra } from './infra/queue.ts';
import { createBankClients } from './integrations/bank.client.ts';
import { createJobProcessor } from './jobs/index.ts';
import { scheduleReconciler } from './jobs/reconcile.job.ts';

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
const db = createDatabase(config.databaseUrl, { poolSize: Math.min(20, config.worker.concurrency) });
const queue = createQueueInfra(config.queue, config.databaseUrl);
const banks = createBankClients(config.banks, { timeoutMs: config.worker.bankTimeoutMs });
const keys = createKeyRing(config.tokenEncryptionKeys);
const ctx = { config, db, queue: queue.queue, keys, banks, log };
const worker = queue.createWorker(createJobProcessor(ctx), {
  concurrency: config.worker.concurrency,
  lockDuration: config.worker.lockDurationMs,
  stalledInterval: Math.min(config.worker.lockDurationMs, 5_000),
  maxStalledCount: 1_000, // a job whose worker died is retried, not failed: the job is idempotent
});
worker.on('error', (err) => log.error({ err: err.message }, 'worker error'));
worker.on('failed', (job, err) =>
  log.warn({ jobId: job?.id, job: job?.name, err: err.message }, 'job failed'),
);

// The schedule lives in the queue; re-register it now and then so a Redis that lost its data
// gets it back without a restart.
const refreshSchedule = () =>
  scheduleReconciler(ctx).catch((err: Error) =>
    log.warn({ err: err.message }, 'could not register the reconciler schedule'),
  );
await refreshSchedule();
const scheduleTimer = setInterval(
  refreshSchedule,
  Math.max(1_000, Math.min(60_000, config.worker.reconcileEveryMs * 3)),
);
scheduleTimer.unref();
log.info(
  { backend: queue.backend, banks: config.banks.map((b) => b.id), concurrency: config.worker.concurrency },
  'worker started',
);

let closing = false;
async function shutdown(signal: string): Promise<void> {
  if (closing) return;
  closing = true;
  clearInterval(scheduleTimer);
  log.info({ signal }, 'shutting down: finishing running jobs');
  const force = setTimeout(() => {
    log.error('shutdown took longer than 30 s, exiting; unfinished jobs will be retried');
    process.exit(1);
  }, 30_000);
  force.unref();
  await queue.close();
  await Promise.all([...banks.values()].map((b) => b.close()));
  await db.$disconnect();
  log.info('stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
