/**
 * `npm run dev` as a newcomer runs it: everything comes up (embedded PostgreSQL, the queue, the
 * sandbox bank, API and worker), Swagger UI and the bank app answer, and Ctrl-C stops it all.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { npmScript } from '../support/npm-script.ts';

async function runDev(extraEnv: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'bankpay-dev-'));
  chmodSync(dir, 0o755);
  const ports = {
    DEV_PORT: await freePort(),
    DEV_BANK_PORT: await freePort(),
    DEV_BANK_APP_PORT: await freePort(),
    DEV_PG_PORT: await freePort(),
    DEV_REDIS_PORT: await freePort(),
  };
  const env = {
    ...process.env,
    ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])),
    DEV_DATA_DIR: join(dir, 'data'),
    DEV_CERTS_DIR: join(dir, 'certs'),
    ...extraEnv,
  };
  // Its own process group, as in a terminal: Ctrl-C there signals the whole group.
  const dev = npmScript('dev');
  const child = spawn(dev.file, dev.args, {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout.on('data', (d) => {
    output += d;
  });
  child.stderr.on('data', (d) => {
    output += d;
  });
  const deadline = Date.now() + 60_000;
  while (!output.includes('Ctrl-C stops everything') && child.exitCode === null && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
  }
  return { child, ports, output: () => output, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

describe('npm run dev', () => {
  it.each([
    ['Redis', {}, /Queue\s+redis:\/\/127\.0\.0\.1/],
    ['BullMQ on PostgreSQL (no redis-server)', { DEV_QUEUE: 'postgres' }, /Queue\s+PostgreSQL/],
  ])(
    'starts everything with %s, serves Swagger UI and the bank app, and stops on Ctrl-C',
    async (_name, extraEnv, queueLine) => {
      const dev = await runDev(extraEnv);
      try {
        const out = dev.output();
        expect(out, out).toContain(`Swagger UI     http://127.0.0.1:${dev.ports.DEV_PORT}/docs`);
        expect(out).toMatch(queueLine);
        expect(out).toMatch(/API key\s+bpk_/);

        const docs = await fetch(`http://127.0.0.1:${dev.ports.DEV_PORT}/docs/`);
        expect(docs.status).toBe(200);
        expect(await docs.text()).toContain('swagger');
        const ready = await fetch(`http://127.0.0.1:${dev.ports.DEV_PORT}/health/ready`);
        expect(await ready.json()).toEqual({ status: 'ok', checks: { database: 'ok', queue: 'ok' } });
        const bankApp = await fetch(`http://127.0.0.1:${dev.ports.DEV_BANK_APP_PORT}/`);
        expect(bankApp.status).toBe(200);
        expect(await bankApp.text()).toContain('name="viewport"');
        const discovery = out.match(/Bank issuer\s+(\S+)/)?.[1];
        expect(discovery).toBe(`https://localhost:${dev.ports.DEV_BANK_PORT}/master`);

        process.kill(-dev.child.pid!, 'SIGINT'); // Ctrl-C: the whole process group
        const [code] = await once(dev.child, 'exit');
        expect(code).toBe(0);
        expect(dev.output()).toContain('[dev] stopped');
        expect(dev.output()).not.toMatch(/ERROR/);
        // Everything it started is gone: the ports are free again.
        for (const port of [dev.ports.DEV_PORT, dev.ports.DEV_PG_PORT, dev.ports.DEV_BANK_PORT]) {
          await expect(fetch(`http://127.0.0.1:${port}/`)).rejects.toThrow();
        }
      } finally {
        try {
          process.kill(-dev.child.pid!, 'SIGKILL');
        } catch {}
        dev.cleanup();
      }
    },
    90_000,
  );
});
