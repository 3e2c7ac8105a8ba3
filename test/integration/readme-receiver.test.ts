/**
 * The README's "receiver in 10 lines" is run as written (only its port chosen by the environment),
 * and Bankpay's webhook sender delivers to it: a genuine signature is accepted, a wrong one refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { createWebhookSender } from '../../src/integrations/webhook.sender.ts';
import { newWebhookSecret } from '../../src/notifications/webhooks.service.ts';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
const section = readme.slice(readme.indexOf('**A receiver in 10 lines**'));
const snippet = /```js\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
// Inside the checkout, so that `standardwebhooks` resolves from its node_modules as in a shop's project.
const file = join(new URL('../../', import.meta.url).pathname, `.readme-receiver-${process.pid}.mjs`);
const secret = newWebhookSecret();
let child: ChildProcess;
let port: number;
let output = '';

beforeAll(async () => {
  writeFileSync(file, snippet);
  port = await freePort();
  child = spawn(process.execPath, [file], {
    env: { ...process.env, PORT: String(port), BANKPAY_WEBHOOK_SECRET: secret },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.on('data', (d) => {
    output += d;
  });
  child.stderr?.on('data', (d) => {
    output += d;
  });
  for (let i = 0; i < 100; i++) {
    try {
      await fetch(`http://127.0.0.1:${port}/`, { method: 'POST', body: '' });
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`the README receiver did not start: ${output}`);
});

afterAll(() => {
  child?.kill('SIGKILL');
  rmSync(file, { force: true });
});

describe('the README webhook receiver', () => {
  it('is at most 10 lines', () => {
    expect(snippet.trim().split('\n').length).toBeLessThanOrEqual(10);
  });

  it('accepts what Bankpay signs and refuses a wrong signature', async () => {
    const sender = createWebhookSender({ timeoutMs: 5_000 });
    try {
      const body = JSON.stringify({
        id: 'evt_0123456789abcdef0123456789abcdef',
        type: 'checkout.succeeded',
        createdAt: new Date().toISOString(),
        data: { object: { id: 'chk_readmeReceiver0001', status: 'succeeded' } },
      });
      const url = `http://127.0.0.1:${port}/webhooks`;
      const ok = await sender.send(url, {
        id: 'evt_0123456789abcdef0123456789abcdef',
        body,
        secrets: [secret],
      });
      expect(ok).toMatchObject({ delivered: true, status: 204 });
      const bad = await sender.send(url, {
        id: 'evt_0123456789abcdef0123456789abcdef',
        body,
        secrets: [newWebhookSecret()],
      });
      expect(bad).toMatchObject({ delivered: false, status: 400 });
      expect(output).toContain('checkout.succeeded chk_readmeReceiver0001');
      expect(output.match(/checkout\.succeeded/g)).toHaveLength(1);
    } finally {
      await sender.close();
    }
  });
});
