/**
 * The environment the API and the worker run with on a local stack, built in one place so that
 * `npm run dev`, chaos and the benchmarks configure Bankpay alike: the database, the queue, the
 * banks file, the merchant and the token encryption key, plus a merchant API key when asked.
 *
 * A stack whose data is kept (`npm run dev`) keeps its secrets beside it: tokens stored encrypted
 * in one run must decrypt in the next, and the printed API key must stay the one that works.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createApiKey } from '../src/infra/api-keys.ts';
import { createDatabase } from '../src/infra/database.ts';

export interface DevSecrets {
  tokenEncryptionKey: string;
  clientSecretKey: string;
  apiKey?: string;
}

const SECRETS_FILE = 'dev-secrets.json';

/** The secrets kept in `dataDir` (made on first use), or fresh ones when `dataDir` is null. */
export function loadSecrets(dataDir: string | null): DevSecrets {
  const fresh = {
    tokenEncryptionKey: randomBytes(32).toString('base64'),
    clientSecretKey: randomBytes(32).toString('base64'),
  };
  if (!dataDir) return fresh;
  const file = join(dataDir, SECRETS_FILE);
  if (existsSync(file)) {
    // A file from before a secret existed gets it added; the others are kept.
    const stored = JSON.parse(readFileSync(file, 'utf8')) as Partial<DevSecrets>;
    const kept = { ...fresh, ...stored };
    if (!stored.tokenEncryptionKey || !stored.clientSecretKey) saveSecrets(dataDir, kept);
    return kept;
  }
  saveSecrets(dataDir, fresh);
  return fresh;
}

export function saveSecrets(dataDir: string, secrets: DevSecrets): void {
  writeFileSync(join(dataDir, SECRETS_FILE), JSON.stringify(secrets, null, 2), { mode: 0o600 });
}

/** A new merchant API key named `name`, as `npm run apikey` makes one. */
export async function newApiKey(databaseUrl: string, name: string): Promise<string> {
  const db = createDatabase(databaseUrl, { poolSize: 1 });
  try {
    return (await createApiKey(db, name)).key;
  } finally {
    await db.$disconnect();
  }
}

export interface Merchant {
  name: string;
  iban: string;
}

export const DEV_MERCHANT: Merchant = { name: 'Acme Shop', iban: 'DE89370400440532013000' };

export type QueueBackend = { backend: 'redis'; redisUrl: string } | { backend: 'postgres' };

/** The variables src/config.ts reads for the services of a stack (no ports, no log level). */
export function appEnvironment(o: {
  databaseUrl: string;
  queue: QueueBackend;
  banksFile: string;
  merchant: Merchant;
  secrets: DevSecrets;
}): Record<string, string> {
  return {
    DATABASE_URL: o.databaseUrl,
    ...(o.queue.backend === 'redis'
      ? { QUEUE_BACKEND: 'redis', REDIS_URL: o.queue.redisUrl }
      : { QUEUE_BACKEND: 'postgres' }),
    BANKS_FILE: o.banksFile,
    MERCHANT_NAME: o.merchant.name,
    MERCHANT_IBAN: o.merchant.iban,
    TOKEN_ENCRYPTION_KEYS: o.secrets.tokenEncryptionKey,
    CLIENT_SECRET_KEYS: o.secrets.clientSecretKey,
  };
}
