/**
 * What every job and the token poller get: the repositories, the queue, the key ring, one bank
 * client per configured bank (each with its own pooled mTLS connections), the configuration and
 * a logger.
 */
import type { Queue } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { KeyRing } from '../infra/crypto.ts';
import type { BankClient } from '../integrations/bank.client.ts';
import type { Repositories } from '../repositories.ts';

export interface JobContext extends Repositories {
  config: Config;
  queue: Queue;
  keys: KeyRing;
  banks: ReadonlyMap<string, BankClient>;
  log: Logger;
}
