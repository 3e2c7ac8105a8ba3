/**
 * A local Redis for development and tests, run as a child process of ours from the machine's
 * redis-server (no npm package ships a Redis binary). Stops with us.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Redis } from 'ioredis';

export interface LocalRedis {
  url: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export function findRedisServer(): string | null {
  try {
    return execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
}

export async function startLocalRedis(o: {
  port: number;
  dataDir: string;
  persistent: boolean;
  binary?: string;
}): Promise<LocalRedis> {
  const binary = o.binary ?? findRedisServer();
  if (!binary)
    throw new Error('redis-server was not found on PATH (Debian/Ubuntu: apt-get install -y redis-server)');
  const dir = resolve(o.dataDir);
  mkdirSync(dir, { recursive: true });
  const args = [
    '--port',
    String(o.port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    // BullMQ requires that Redis never evicts keys.
    '--maxmemory-policy',
    'noeviction',
    ...(o.persistent ? ['--appendonly', 'yes', '--save', '60 1'] : ['--appendonly', 'no', '--save', '']),
  ];
  // detached: its own process group, so a terminal's Ctrl-C does not stop it before its clients.
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const killOnExit = () => child.exitCode === null && child.kill('SIGKILL');
  process.once('exit', killOnExit);
  let output = '';
  child.stdout?.on('data', (d) => {
    output = (output + d).slice(-4000);
  });
  child.stderr?.on('data', (d) => {
    output = (output + d).slice(-4000);
  });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `redis://127.0.0.1:${o.port}`;
  const deadline = Date.now() + 10_000;
  for (;;) {
    const early = await Promise.race([exited, new Promise((r) => setTimeout(() => r('wait'), 100))]);
    if (early !== 'wait')
      throw new Error(`redis-server exited at start (port ${o.port} in use?):\n${output.trim()}`);
    const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      if ((await client.ping()) === 'PONG') {
        client.disconnect();
        break;
      }
    } catch {
      client.disconnect();
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`redis-server did not answer on ${url} within 10 s:\n${output.trim()}`);
    }
  }
  return {
    url,
    port: o.port,
    process: child,
    async stop() {
      process.off('exit', killOnExit);
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 5_000))]);
      if (child.exitCode === null) child.kill('SIGKILL');
    },
  };
}
