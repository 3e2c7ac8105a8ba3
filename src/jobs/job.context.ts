/**
 * What every job gets: the database, the queue, the key ring, one bank client per configured bank
 * (each with its own pooled mTLS connections), the configuration and a logger.
 */
import { DelayedError, type Job, type Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { KeyRing } from '../infra/crypto.ts';
import type { Database } from '../infra/database.ts';
import type { BankClient } from '../integrations/bank.client.ts';

export interface JobContext {
  config: Config;
  db: Database;
  queue: Queue;
  keys: KeyRing;
  banks: ReadonlyMap<string, BankClient>;
  log: Logger;
  now?: () => number;
}

/**
 * "Not a failure, run me again at `at`": the job goes back to the delayed set with its attempt
 * count untouched (BullMQ's moveToDelayed + DelayedError). The next run makes the next request.
 */
export async function runAgainAt(job: Job, token: string | undefined, at: number): Promise<never> {
  await job.moveToDelayed(Math.ceil(at), token);
  throw new DelayedError();
}

/** Exponential backoff with jitter for a bank that did not answer: 1 s, 2 s, 4 s … capped at 60 s. */
export function backoffMs(consecutiveErrors: number): number {
  const base = Math.min(60_000, 1_000 * 2 ** Math.max(0, consecutiveErrors - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}
