/**
 * The child processes of a benchmark run (the API, the worker, the bare reference server, the
 * naive client), kept in one set so that every exit path, a failure or Ctrl-C included, stops
 * them all.
 */
import { join } from 'node:path';
import { freePort } from '../devstack/ports.ts';
import { type Child, spawnTsx, waitForHttp } from './lib.ts';

export interface Api {
  child: Child;
  url: string;
}

export interface Processes {
  /** `file` (relative to the repository) as `node --import tsx`, with the run's environment. */
  startChild(file: string, extra: Record<string, string>, nodeArgs?: string[], args?: string[]): Child;
  stopChild(child: Child): Promise<void>;
  /** `src/server.ts` on a free port, once it answers. */
  startApi(extra?: Record<string, string>, nodeArgs?: string[]): Promise<Api>;
  stopAll(): Promise<void>;
}

export function trackProcesses(root: string, env: Record<string, string>): Processes {
  const children = new Set<Child>();
  const startChild = (
    file: string,
    extra: Record<string, string>,
    nodeArgs: string[] = [],
    args: string[] = [],
  ) => {
    const child = spawnTsx(join(root, file), { ...env, ...extra }, nodeArgs, args);
    children.add(child);
    return child;
  };
  return {
    startChild,
    async stopChild(child) {
      await child.stop();
      children.delete(child);
    },
    async startApi(extra = {}, nodeArgs = []) {
      const port = extra.PORT ? Number(extra.PORT) : await freePort();
      const child = startChild('src/server.ts', { ...extra, PORT: String(port) }, nodeArgs);
      const url = `http://127.0.0.1:${port}`;
      await waitForHttp(`${url}/health/live`, child);
      return { child, url };
    },
    async stopAll() {
      await Promise.all([...children].map((c) => c.stop('SIGKILL', 2_000)));
    },
  };
}

/** The API next to the bare Fastify reference, as (a), (b) and the API profiles load them. */
export interface HttpTargets {
  bare: Child;
  bareUrl: string;
  /** Replaced when a profiled API takes its place. */
  api: Api;
}

export async function startHttpTargets(processes: Processes): Promise<HttpTargets> {
  const barePort = await freePort();
  const bare = processes.startChild('bench/bare-server.ts', { PORT: String(barePort) });
  const bareUrl = `http://127.0.0.1:${barePort}`;
  await waitForHttp(`${bareUrl}/bare/x`, bare);
  const api = await processes.startApi({ QUEUE_PREFIX: 'ab' });
  return { bare, bareUrl, api };
}
