/**
 * One local stack for `npm run dev`, the tests, `npm run chaos` and `npm run bench`: the
 * development certificates, an embedded PostgreSQL (migrated), the queue (a local Redis, or
 * BullMQ's PostgreSQL backend), the sandbox bank, and the banks file and environment that point
 * Bankpay at them. Callers say what differs (where data lives, ports, durability, the queue, the
 * bank's settings); what starts, in which order, with which files, is the same for all, so what
 * a test or a benchmark ran against is what `npm run dev` runs.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { SandboxBank } from '../sandbox/bank.ts';
import { applyMigrations } from '../src/infra/migrations.ts';
import {
  DEV_CLIENT_PFX_PASSPHRASE,
  DEV_CLIENT_PFX_PASSPHRASE_ENV,
  type DevCertificates,
  ensureDevCertificates,
} from './certificates.ts';
import {
  appEnvironment,
  DEV_MERCHANT,
  loadSecrets,
  type Merchant,
  newApiKey,
  type QueueBackend,
  saveSecrets,
} from './environment.ts';
import { freePort } from './ports.ts';
import { type EmbeddedDatabase, startEmbeddedDatabase } from './postgres.service.ts';
import { findRedisServer, type LocalRedis, startLocalRedis } from './redis.service.ts';
import { startDevSandbox, writeSandboxBanksFile } from './sandbox.service.ts';

export interface DevStackPorts {
  postgres: number;
  redis: number;
  /** The sandbox bank's HTTPS port, and its bank app's (0: chosen when it listens). */
  bank: number;
  bankApp: number;
}

export interface DevStackOptions {
  /**
   * Where the data lives (postgres/, redis/, banks.json, kept secrets), kept after stop(). Without
   * it, a fresh temporary folder that stop() removes.
   */
  dataDir?: string;
  /** Names the temporary folder (bankpay-<name>-…), for whoever finds one left over. */
  name?: string;
  /** The development PKI's folder; default <dataDir>/certs. */
  certsDir?: string;
  database: string;
  /** PostgreSQL without fsync: for data that never outlives the run. */
  ephemeral?: boolean;
  /** PostgreSQL server settings (`-c name=value`). */
  postgresSettings?: Record<string, string>;
  /** Apply the migrations (default true). */
  migrate?: boolean;
  /** Fixed ports; the others are chosen free. */
  ports?: Partial<DevStackPorts>;
  /**
   * `redis` requires redis-server on this machine; `redis-when-installed` falls back to BullMQ's
   * PostgreSQL backend on the same database; `postgres` always uses that backend.
   */
  queue: 'redis' | 'redis-when-installed' | 'postgres';
  /** Redis with its append-only file, as in production: queued jobs survive a restart. */
  persistentRedis?: boolean;
  /**
   * The sandbox bank's settings. `persistent` (default true) keeps its state (pending requests,
   * grants, tokens, customers, payments, keys) in the schema `sandbox_bank` of the embedded
   * PostgreSQL, so a restarted `npm run dev` keeps what it promised.
   */
  sandbox?: {
    testMode?: boolean;
    defaultInterval?: number;
    merchantName?: string;
    persistent?: boolean;
    /** The API's CIBA notification endpoint: registers the sandbox's ping-mode client (sandbox/ping.ts). */
    notificationEndpoint?: string;
  };
  /** Members of the sandbox's banks-file entry to change (e.g. `requestedExpiry`). */
  bankEntry?: Record<string, unknown>;
  /**
   * How the banks file names the client certificate: the PEM pair (default), or the PKCS#12
   * bundle with its passphrase in the environment, as a bank's admin console hands it out.
   */
  clientCertificate?: 'pem' | 'pfx';
  /** Default: Acme Shop, DE89370400440532013000. */
  merchant?: Merchant;
  /** Keep the token encryption key (and the API key) in dataDir across runs. */
  keepSecrets?: boolean;
  /** Make a merchant API key with this name (once, when secrets are kept). */
  apiKeyName?: string;
  /** Progress: `step` for each stage, `detail` for what the migrations report. */
  log?: { step(text: string): void; detail(text: string): void };
}

export interface DevStack {
  dataDir: string;
  certsDir: string;
  certificates: DevCertificates;
  /** The running PostgreSQL; a new one (same port, data and URL) after restartPostgres(). */
  readonly postgres: EmbeddedDatabase;
  /** The running Redis; null when the queue runs on PostgreSQL. A new one after restartRedis(). */
  readonly redis: LocalRedis | null;
  queue: QueueBackend;
  bank: SandboxBank;
  banksFile: string;
  apiKey: string | null;
  /** What the API and the worker need to run on this stack (add ports, log level, tuning). */
  env: Record<string, string>;
  /** Stops Redis, waits `downMs`, starts it again on the same port and data. */
  restartRedis(downMs?: number): Promise<void>;
  /**
   * Stops PostgreSQL (a fast shutdown: open connections are cut, committed work is kept), waits
   * `downMs`, starts it again on the same port and data, as an operator's restart does. Clients
   * see their connections dropped and reconnect on their own.
   */
  restartPostgres(downMs?: number): Promise<void>;
  /** Stops what the stack started, last started first; removes a temporary data folder. */
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startDevStack(o: DevStackOptions): Promise<DevStack> {
  const step = o.log?.step ?? (() => {});
  const temporary = o.dataDir === undefined;
  const dataDir =
    o.dataDir === undefined
      ? mkdtempSync(join(tmpdir(), `bankpay-${o.name ?? 'stack'}-`))
      : resolve(o.dataDir);
  // PostgreSQL runs as its own user when we run as root: it must be able to enter the folder.
  if (temporary) chmodSync(dataDir, 0o755);
  else mkdirSync(dataDir, { recursive: true });
  const stops: Array<() => Promise<void> | void> = [];
  if (temporary) stops.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const stopAll = async () => {
    for (const stop of stops.splice(0).reverse()) await Promise.resolve(stop()).catch(() => {});
  };

  try {
    const certsDir = resolve(o.certsDir ?? join(dataDir, 'certs'));
    step('development certificates');
    ensureDevCertificates(certsDir);

    step('starting embedded PostgreSQL');
    const postgresPort = o.ports?.postgres ?? (await freePort());
    const postgresOptions = {
      dataDir: join(dataDir, 'postgres'),
      port: postgresPort,
      database: o.database,
      ...(o.ephemeral ? { ephemeral: true } : {}),
      ...(o.postgresSettings ? { settings: o.postgresSettings } : {}),
    };
    let postgres = await startEmbeddedDatabase(postgresOptions);
    stops.push(() => postgres.stop());
    step(`PostgreSQL ready at 127.0.0.1:${postgresPort}`);
    if (o.migrate ?? true) {
      const migrations = await applyMigrations(postgres.url, { log: o.log?.detail ?? (() => {}) });
      step(`migrations: ${migrations.applied.length} applied, ${migrations.alreadyApplied} already applied`);
    }

    const redisBinary = o.queue === 'postgres' ? null : findRedisServer();
    if (o.queue === 'redis' && !redisBinary)
      throw new Error('redis-server is not installed (apt-get install -y redis-server)');
    const redisOptions = redisBinary
      ? {
          port: o.ports?.redis ?? (await freePort()),
          dataDir: join(dataDir, 'redis'),
          persistent: o.persistentRedis ?? false,
          binary: redisBinary,
        }
      : null;
    let redis = redisOptions ? await startLocalRedis(redisOptions) : null;
    stops.push(() => redis?.stop());
    const queue: QueueBackend = redis ? { backend: 'redis', redisUrl: redis.url } : { backend: 'postgres' };
    step(
      redis
        ? `Redis ready at ${redis.url}`
        : o.queue === 'postgres'
          ? "the queue runs on BullMQ's PostgreSQL backend, as asked (no Redis started)"
          : "no redis-server installed: the queue runs on BullMQ's PostgreSQL backend (install redis-server to use Redis)",
    );

    step('starting the sandbox bank');
    const { persistent = true, ...sandboxSettings } = o.sandbox ?? {};
    const sandbox = await startDevSandbox({
      certsDir,
      ...sandboxSettings,
      ...(persistent ? { database: { url: postgres.url } } : {}),
      port: o.ports?.bank ?? 0,
      appPort: o.ports?.bankApp ?? 0,
    });
    stops.push(() => sandbox.bank.close());
    const banksFile = join(dataDir, 'banks.json');
    const pfx = o.clientCertificate === 'pfx';
    writeSandboxBanksFile(banksFile, sandbox, {
      ...(pfx
        ? {
            tlsClientCertFile: undefined,
            tlsClientKeyFile: undefined,
            tlsClientPfxFile: sandbox.certificates.clientPfx,
            tlsClientPfxPassphraseEnv: DEV_CLIENT_PFX_PASSPHRASE_ENV,
          }
        : {}),
      ...o.bankEntry,
    });

    const keptIn = o.keepSecrets ? dataDir : null;
    const secrets = loadSecrets(keptIn);
    if (o.apiKeyName && !secrets.apiKey) {
      secrets.apiKey = await newApiKey(postgres.url, o.apiKeyName);
      if (keptIn) saveSecrets(keptIn, secrets);
    }

    return {
      dataDir,
      certsDir,
      certificates: sandbox.certificates,
      get postgres() {
        return postgres;
      },
      get redis() {
        return redis;
      },
      queue,
      bank: sandbox.bank,
      banksFile,
      apiKey: o.apiKeyName ? (secrets.apiKey ?? null) : null,
      env: {
        ...appEnvironment({
          databaseUrl: postgres.url,
          queue,
          banksFile,
          merchant: o.merchant ?? DEV_MERCHANT,
          secrets,
        }),
        ...(pfx ? { [DEV_CLIENT_PFX_PASSPHRASE_ENV]: DEV_CLIENT_PFX_PASSPHRASE } : {}),
      },
      async restartRedis(downMs = 0) {
        if (!redis || !redisOptions) throw new Error('this stack runs its queue on PostgreSQL');
        await redis.stop();
        await sleep(downMs);
        redis = await startLocalRedis(redisOptions);
      },
      async restartPostgres(downMs = 0) {
        await postgres.stop();
        await sleep(downMs);
        postgres = await startEmbeddedDatabase(postgresOptions);
      },
      stop: stopAll,
    };
  } catch (error) {
    await stopAll();
    throw error;
  }
}
