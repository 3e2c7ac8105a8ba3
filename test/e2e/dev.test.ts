/**
 * `npm run dev` as a newcomer runs it: everything comes up (embedded PostgreSQL, the queue, the
 * sandbox bank, API and worker), Swagger UI and the bank app answer, and Ctrl-C stops it all.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { npmScript } from '../support/npm-script.ts';
import { eventually } from '../support/system.ts';

type DevPorts = Record<
  | 'DEV_PORT'
  | 'DEV_BANK_PORT'
  | 'DEV_BANK_APP_PORT'
  | 'DEV_PG_PORT'
  | 'DEV_REDIS_PORT'
  | 'DEV_WEBHOOK_PORT'
  | 'DEV_SHOP_PORT',
  number
>;

/** `npm run dev` in a folder of its own, or again in the folder and on the ports of an earlier run. */
async function runDev(extraEnv: Record<string, string>, again?: { dir: string; ports: DevPorts }) {
  const dir = again?.dir ?? mkdtempSync(join(tmpdir(), 'bankpay-dev-'));
  chmodSync(dir, 0o755);
  const ports: DevPorts = again?.ports ?? {
    DEV_PORT: await freePort(),
    DEV_BANK_PORT: await freePort(),
    DEV_BANK_APP_PORT: await freePort(),
    DEV_PG_PORT: await freePort(),
    DEV_REDIS_PORT: await freePort(),
    DEV_WEBHOOK_PORT: await freePort(),
    DEV_SHOP_PORT: await freePort(),
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
  return {
    child,
    dir,
    ports,
    output: () => output,
    /** Ctrl-C, as in a terminal (the whole process group); resolves with the exit code. */
    async stop(): Promise<number | null> {
      if (child.exitCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      process.kill(-child.pid!, 'SIGINT');
      return (await exited)[0] as number | null;
    },
    kill() {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {}
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
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

        // The demo shop: its page loads the element from the API, which lets its origin read.
        const shopUrl = `http://127.0.0.1:${dev.ports.DEV_SHOP_PORT}/`;
        expect(out).toContain(`Demo shop      ${shopUrl}`);
        const shop = await fetch(shopUrl);
        expect(shop.status).toBe(200);
        const page = await shop.text();
        expect(page).toContain(`<bankpay-checkout api-base="http://127.0.0.1:${dev.ports.DEV_PORT}"`);
        const element = await fetch(`http://127.0.0.1:${dev.ports.DEV_PORT}/elements/v1/checkout.js`);
        expect(element.status).toBe(200);
        expect(page).toContain(`integrity="${element.headers.get('subresource-integrity')}"`);
        const banks = await fetch(`http://127.0.0.1:${dev.ports.DEV_PORT}/v1/banks`, {
          headers: { origin: shopUrl.slice(0, -1) },
        });
        expect(banks.headers.get('access-control-allow-origin')).toBe(shopUrl.slice(0, -1));
        // Its server part creates the checkout with the development key; the page gets the clientSecret.
        const bought = await fetch(`${shopUrl}api/checkout`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            bankId: 'sandbox',
            loginHint: 'carol',
            items: { tee: 1 },
            attempt: randomUUID(),
          }),
        });
        expect(bought.status).toBe(201);
        const { id, clientSecret, reference } = (await bought.json()) as Record<string, string>;
        const checkout = await fetch(`http://127.0.0.1:${dev.ports.DEV_PORT}/v1/checkouts/${id}`, {
          headers: { authorization: `Bearer ${clientSecret}` },
        });
        expect(await checkout.json()).toMatchObject({
          amount: 2495,
          currency: 'EUR',
          reference,
          description: '1 × Bankpay T-shirt',
        });
        expect(dev.output()).not.toContain(clientSecret!);

        process.kill(-dev.child.pid!, 'SIGINT'); // Ctrl-C: the whole process group
        const [code] = await once(dev.child, 'exit');
        expect(code).toBe(0);
        expect(dev.output()).toContain('[dev] stopped');
        expect(dev.output()).not.toMatch(/ERROR/);
        // Everything it started is gone: the ports are free again.
        for (const port of [
          dev.ports.DEV_PORT,
          dev.ports.DEV_PG_PORT,
          dev.ports.DEV_BANK_PORT,
          dev.ports.DEV_SHOP_PORT,
        ]) {
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

  it('keeps a checkout awaiting approval across a restart: approved afterwards, it succeeds', async () => {
    const first = await runDev({});
    const second: { run?: Awaited<ReturnType<typeof runDev>> } = {};
    try {
      const apiKey = first.output().match(/API key\s+(bpk_\S+)/)?.[1];
      expect(apiKey, first.output()).toBeDefined();
      const api = `http://127.0.0.1:${first.ports.DEV_PORT}`;
      const bankApp = `http://127.0.0.1:${first.ports.DEV_BANK_APP_PORT}`;
      const created = await fetch(`${api}/v1/checkouts`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${apiKey}`,
          'content-type': 'application/json',
          'idempotency-key': randomUUID(),
        },
        body: JSON.stringify({
          amount: 4990,
          currency: 'EUR',
          bankId: 'sandbox',
          loginHint: 'bob',
          reference: 'order-restart',
        }),
      });
      expect(created.status).toBe(202);
      const { id } = (await created.json()) as { id: string };
      const read = async () =>
        (await (
          await fetch(`${api}/v1/checkouts/${id}`, { headers: { authorization: `Bearer ${apiKey}` } })
        ).json()) as {
          status: string;
        };
      await eventually(
        async () => (await read()).status === 'awaiting_approval',
        20_000,
        'awaiting_approval',
      );
      expect(await first.stop()).toBe(0);

      second.run = await runDev({}, { dir: first.dir, ports: first.ports });
      const pending = (await (await fetch(`${bankApp}/app/api/customers/bob/requests`)).json()) as {
        requests: Array<{ authReqId: string }>;
      };
      expect(pending.requests).toHaveLength(1);
      const approve = await fetch(`${bankApp}/app/api/requests/${pending.requests[0]!.authReqId}/approve`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ login: 'bob' }),
      });
      expect(approve.status).toBe(200);
      // The sandbox sets no interval in development: the next poll comes within the CIBA default 5 s.
      await eventually(async () => (await read()).status === 'succeeded', 20_000, 'succeeded');

      // The terminal: the API's line per request; the worker's lines name the checkout and its status.
      const out = second.run.output();
      expect(out).toMatch(new RegExp(`\\[api\\] GET /v1/checkouts/${id} 200 \\d+(\\.\\d+)? ms`));
      expect(out).toContain(`[worker] checkout authorized by the customer checkout=${id} status=authorized`);
      expect(out).toMatch(new RegExp(`\\[worker\\] .*checkout=${id} status=succeeded`));
      // The local receiver, registered again (its secret rotated) at the second start, prints the
      // event, its signature verified with the secret of this start.
      await eventually(
        async () => second.run!.output().includes(`[webhook] checkout.succeeded ${id} evt_`),
        10_000,
        'the succeeded webhook',
      );
      expect(second.run.output()).toMatch(
        new RegExp(`\\[webhook\\] checkout\\.succeeded ${id} evt_[0-9a-f]{32} signature verified`),
      );
      expect(second.run.output()).toMatch(/Webhooks\s+http:\/\/127\.0\.0\.1:\d+\/webhooks/);
      // The key is printed once, in the banner, and nowhere else.
      expect(out.split(apiKey!).length - 1).toBe(1);
      expect(await second.run.stop()).toBe(0);
      expect(second.run.output()).toContain(`[dev] stopped; data kept in ${join(first.dir, 'data')}/`);
    } finally {
      first.kill();
      second.run?.kill();
      first.cleanup();
    }
  }, 120_000);
});
