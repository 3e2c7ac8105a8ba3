/**
 * `npm run bench:element [-- --samples 40] [-- --lanes 2] [-- --modes ping,poll] [-- --json FILE]`
 *
 * The checkout element's latency as a shopper sees it: the time from the tap on Approve in the
 * sandbox bank app to the element in the demo shop showing success (its `bankpay:succeeded`),
 * both pages in one Chromium, through the real API and worker as child processes, as
 * `npm run dev` runs them: the sandbox bank sets no polling interval, so poll mode asks every 5 s
 * (the CIBA default), while in ping mode the bank tells the API at once. `--lanes` shoppers pay
 * at the same time, each with a customer of their own; the first checkout of each lane warms up
 * and is not counted. Prints one line per mode: n, p50, p90, p99, max in milliseconds.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  decideOnPhone,
  launchChromium,
  payInShop,
  shownBindingMessage,
  whenElementShows,
} from '../devstack/browser.ts';
import { startDemoShop } from '../devstack/demo-shop.ts';
import { startDevStack } from '../devstack/devstack.ts';
import { freePort } from '../devstack/ports.ts';
import { sandboxBankEntry } from '../sandbox/banks-entry.ts';
import { type Child, percentile, round, spawnTsx, waitForHttp } from './lib.ts';

const { values: flags } = parseArgs({
  options: {
    samples: { type: 'string', default: '40' },
    lanes: { type: 'string', default: '2' },
    modes: { type: 'string', default: 'ping,poll' },
    json: { type: 'string' },
  },
});
const samples = Number(flags.samples);
const lanes = Number(flags.lanes);
const root = resolve(new URL('..', import.meta.url).pathname);
const started = Date.now();
const log = (msg: string) =>
  console.log(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);

const cleanups: Array<() => Promise<unknown> | unknown> = [];
async function cleanUp(): Promise<void> {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
}
process.on('SIGINT', () => void cleanUp().then(() => process.exit(130)));

async function main(): Promise<Record<string, unknown>> {
  const [apiPort, shopPort] = [await freePort(), await freePort()];
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const stack = await startDevStack({
    name: 'bench-element',
    database: 'bench',
    queue: 'redis-when-installed',
    sandbox: {
      testMode: true,
      merchantName: 'Acme Shop',
      notificationEndpoint: `${apiUrl}/ciba/notify/sandbox`,
    },
    apiKeyName: 'bench-element',
  });
  cleanups.push(() => stack.stop());
  const banksFile = join(stack.dataDir, 'banks-element.json');
  const entry = (o: Record<string, unknown>) => sandboxBankEntry(stack.bank, { ...stack.certificates }, o);
  writeFileSync(
    banksFile,
    JSON.stringify({
      banks: [
        entry({ id: 'sandbox', name: 'Sandbox Bank (ping)', deliveryMode: 'ping' }),
        entry({ id: 'sandbox-poll', name: 'Sandbox Bank (poll)' }),
      ],
    }),
  );
  const env = {
    ...stack.env,
    BANKS_FILE: banksFile,
    HOST: '127.0.0.1',
    PORT: String(apiPort),
    PUBLIC_URL: apiUrl,
    CORS_ORIGINS: `http://127.0.0.1:${shopPort}`,
    LOG_LEVEL: 'warn',
  };
  const children: Child[] = [
    spawnTsx(join(root, 'src/server.ts'), env),
    spawnTsx(join(root, 'src/worker.ts'), env),
  ];
  cleanups.push(() => Promise.all(children.map((c) => c.stop())));
  await waitForHttp(`${apiUrl}/health/ready`, children[0]!);
  const shop = await startDemoShop({
    port: shopPort,
    apiUrl,
    apiKey: stack.apiKey!,
    bankAppUrl: stack.bank.appUrl,
    merchantName: 'Acme Shop',
  });
  cleanups.push(() => shop.close());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());
  log(
    `API ${apiUrl}, shop ${shop.url}, bank app ${stack.bank.appUrl}; ${samples} samples per mode in ${lanes} lanes`,
  );

  const results: Record<string, unknown> = {};
  const modes = (flags.modes ?? '').split(',');
  for (const [mode, bank] of [
    ['ping', 'Sandbox Bank (ping)'],
    ['poll', 'Sandbox Bank (poll)'],
  ] as const) {
    if (!modes.includes(mode)) continue;
    const latencies: number[] = [];
    await Promise.all(
      Array.from({ length: lanes }, async (_, lane) => {
        const login = `bench-${randomBytes(4).toString('hex')}`;
        const res = await fetch(`${stack.bank.controlUrl}/customers`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ login }),
        });
        if (res.status !== 201) throw new Error(`customer: ${res.status}`);
        const context = await browser.newContext({ viewport: { width: 1000, height: 760 } });
        const page = await context.newPage();
        const phone = await context.newPage();
        // One warm-up checkout per lane, then this lane's share of the samples.
        for (let i = lane - lanes; i < samples; i += lanes) {
          await page.goto(shop.url);
          await payInShop(page, shop.url, { bank, login });
          const bindingMessage = await shownBindingMessage(page);
          const shown = whenElementShows(page, 'succeeded', 30_000);
          const tappedAt = await decideOnPhone(phone, stack.bank.appUrl, {
            login,
            bindingMessage,
            decision: 'approve',
          });
          const ms = (await shown) - tappedAt;
          if (i >= 0) latencies.push(ms);
        }
        await context.close();
      }),
    );
    const sorted = latencies.sort((a, b) => a - b);
    const summary = {
      n: sorted.length,
      p50: percentile(sorted, 50),
      p90: percentile(sorted, 90),
      p99: percentile(sorted, 99),
      max: sorted.at(-1),
      mean: round(sorted.reduce((a, b) => a + b, 0) / sorted.length),
    };
    results[mode] = summary;
    log(`${mode}: ${JSON.stringify(summary)}`);
  }
  return results;
}

try {
  const results = await main();
  const record = {
    date: new Date().toISOString(),
    command: `npm run bench:element${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`,
    samplesPerMode: samples,
    lanes,
    results,
  };
  if (flags.json) writeFileSync(flags.json, `${JSON.stringify(record, null, 2)}\n`);
  console.log('');
  for (const [mode, r] of Object.entries(results) as Array<[string, Record<string, number>]>) {
    console.log(
      `element_${mode}_tap_to_success_ms n=${r.n} p50=${r.p50} p90=${r.p90} p99=${r.p99} max=${r.max}`,
    );
  }
} finally {
  await cleanUp();
}
