/**
 * `npm run chaos -- [--checkouts 500] [--kill-every 3] [--workers 2] [--redis-restart-every 0] [--seed 1]
 *                   [--delivery-mode poll|ping] [--drop-pings 0.2]`
 *
 * Many checkouts against the sandbox bank with random customer behaviour (approve, deny, never
 * answer, cancel, unknown customer), while worker processes are killed with SIGKILL and restarted
 * every few seconds, and optionally Redis is restarted. Everything runs on private services in a
 * temporary folder. At the end it checks the promises of the payment path against the bank's own
 * ledger and prints, as its last line:
 *
 *   chaos: checkouts=N succeeded=A declined=B expired=C failed=D canceled=E double_payments=X stuck=Y
 *          approvals_lost=L refusals_lost=R
 *
 * double_payments counts checkouts with more than one payment at the bank, stuck those not
 * terminal at the end; both must be 0 (the exit code says so), and every succeeded checkout must
 * have exactly one payment and no other checkout any. approvals_lost counts customers who approved
 * at the bank whose checkout ended other than succeeded, refusals_lost those who refused whose
 * checkout ended other than declined: what crashes cost customers, to keep as near 0 as possible.
 *
 * The services are the local stack of devstack/ (as `npm run dev` and the tests run it), with
 * Redis persistent like production Redis and a 1-second polling interval at the bank.
 * `--delivery-mode ping` runs the bank in CIBA ping mode (DESIGN.md §7.1) and has the bank drop
 * the pings of a share of the customers (`--drop-pings`, default 0.2): those checkouts must
 * still settle, through the safety poll.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDevStack } from '../devstack/devstack.ts';
import { freePort } from '../devstack/ports.ts';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createDatabase } from '../src/infra/database.ts';
import { createQueueInfra } from '../src/infra/queue.ts';

const { values } = parseArgs({
  options: {
    checkouts: { type: 'string', default: '500' },
    'kill-every': { type: 'string', default: '3' },
    workers: { type: 'string', default: '2' },
    'redis-restart-every': { type: 'string', default: '0' },
    seed: { type: 'string', default: '1' },
    'max-seconds': { type: 'string', default: '600' },
    expiry: { type: 'string', default: '60' },
    'delivery-mode': { type: 'string', default: 'poll' },
    'drop-pings': { type: 'string', default: '0.2' },
  },
});
const DELIVERY_MODE = values['delivery-mode'];
if (DELIVERY_MODE !== 'poll' && DELIVERY_MODE !== 'ping') throw new Error('--delivery-mode is poll or ping');
const DROP_PINGS = Number(values['drop-pings']);
const N = Number(values.checkouts);
const KILL_EVERY_MS = Number(values['kill-every']) * 1000;
const WORKERS = Number(values.workers);
const REDIS_RESTART_MS = Number(values['redis-restart-every']) * 1000;
const MAX_MS = Number(values['max-seconds']) * 1000;
/** How long each customer has to approve (the bank's requested_expiry). */
const EXPIRY_S = Number(values.expiry ?? 60);

// A small seeded PRNG (mulberry32): the same seed gives the same customer behaviour.
let state = Number(values.seed) >>> 0 || 1;
function random(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
type Behaviour = 'approve' | 'deny' | 'ignore' | 'cancel' | 'unknown';
function pickBehaviour(): Behaviour {
  const r = random();
  return r < 0.6 ? 'approve' : r < 0.8 ? 'deny' : r < 0.88 ? 'ignore' : r < 0.95 ? 'cancel' : 'unknown';
}

const started = Date.now();
const log = (msg: string) =>
  console.log(`[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const terminalStatuses = ['succeeded', 'declined', 'expired', 'failed', 'canceled'];

const root = resolve(new URL('..', import.meta.url).pathname);
const cleanups: Array<() => Promise<void> | void> = [];

async function main(): Promise<number> {
  log(
    `${N} checkouts, ${WORKERS} workers killed every ${KILL_EVERY_MS / 1000} s${REDIS_RESTART_MS ? `, Redis restarted every ${REDIS_RESTART_MS / 1000} s` : ''}, CIBA ${DELIVERY_MODE} mode${DELIVERY_MODE === 'ping' ? ` (${DROP_PINGS * 100} % of customers' pings dropped)` : ''}`,
  );
  // The API's port is chosen first: in ping mode the bank is told where to send its pings.
  const apiPort = await freePort();
  const publicUrl = `http://127.0.0.1:${apiPort}`;
  // Persistent, like production Redis: a restart keeps the queue; the reconciler covers the rest.
  const stack = await startDevStack({
    name: 'chaos',
    database: 'chaos',
    ephemeral: true,
    queue: 'redis',
    persistentRedis: true,
    sandbox: { testMode: true, defaultInterval: 1, notificationEndpoint: `${publicUrl}/ciba/notify/sandbox` },
    bankEntry: { requestedExpiry: EXPIRY_S, deliveryMode: DELIVERY_MODE },
    apiKeyName: 'chaos',
  });
  cleanups.unshift(() => stack.stop());
  const env: Record<string, string> = {
    ...stack.env,
    LOG_LEVEL: 'warn',
    WORKER_LOCK_MS: '2000',
    // A killed worker's token polls are claimed again BANK_TIMEOUT_MS + 5 s later.
    BANK_TIMEOUT_MS: '3000',
    RECONCILE_EVERY_MS: '1000',
    RECONCILE_GRACE_MS: '5000',
    WORKER_CONCURRENCY: '50',
    PUBLIC_URL: publicUrl,
  };
  const config = loadConfig(env);
  const prisma = createDatabase(config.databaseUrl);
  const queue = createQueueInfra(config.queue, config.databaseUrl);
  // One storefront key creates all checkouts here: lift the per-key rate limit.
  const app = await buildApp({
    config: { ...config, logLevel: 'silent' },
    db: prisma,
    queue,
    rateLimit: { max: 1_000_000, timeWindowMs: 1_000 },
  });
  await app.listen({ host: '127.0.0.1', port: apiPort });
  cleanups.unshift(async () => {
    await app.close();
    await queue.close();
    await prisma.$disconnect();
  });
  const apiUrl = publicUrl;
  const key = stack.apiKey!;

  // Worker processes, killed and restarted.
  const workers: Array<ChildProcess | undefined> = [];
  let kills = 0;
  let redisRestarts = 0;
  let pingsDropped = 0;
  const spawnWorker = (i: number) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/worker.ts')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    workers[i] = child;
  };
  for (let i = 0; i < WORKERS; i++) spawnWorker(i);
  cleanups.unshift(async () => {
    for (const w of workers) w?.kill('SIGKILL');
  });
  let chaosOn = true;
  const killer = (async () => {
    while (chaosOn) {
      await sleep(KILL_EVERY_MS);
      if (!chaosOn) break;
      const i = Math.floor(random() * WORKERS);
      workers[i]?.kill('SIGKILL');
      kills++;
      spawnWorker(i);
    }
  })();
  const redisRestarter = (async () => {
    if (!REDIS_RESTART_MS) return;
    while (chaosOn) {
      await sleep(REDIS_RESTART_MS);
      if (!chaosOn) break;
      await stack.restartRedis(500);
      redisRestarts++;
    }
  })();

  // Customers and their behaviour.
  const { bank } = stack;
  const control = bank.controlUrl!;
  const plans = new Map<string, { login: string; behaviour: Behaviour; decided?: boolean }>();
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };
  const act = async (i: number) => {
    const behaviour = pickBehaviour();
    const login =
      behaviour === 'unknown'
        ? `nobody-${i}-${randomUUID().slice(0, 8)}`
        : `c${i}-${randomBytes(3).toString('hex')}`;
    if (behaviour !== 'unknown') {
      await fetch(`${control}/customers`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ login }),
      });
      if (DELIVERY_MODE === 'ping' && random() < DROP_PINGS) {
        // Every ping of this customer's requests is lost: only the safety poll can settle them.
        await fetch(`${control}/customers/${login}/faults`, {
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ ping: { drop: 100 } }),
        });
        if (behaviour === 'approve' || behaviour === 'deny') pingsDropped++;
      }
    }
    const res = await fetch(`${apiUrl}/v1/checkouts`, {
      method: 'POST',
      headers: { ...headers, 'idempotency-key': randomUUID() },
      body: JSON.stringify({
        amount: 100 + i,
        currency: 'EUR',
        bankId: 'sandbox',
        loginHint: login,
        reference: `chaos-${i}`,
      }),
    });
    if (res.status !== 202) throw new Error(`create ${i}: ${res.status} ${await res.text()}`);
    const { id, clientSecret } = (await res.json()) as { id: string; clientSecret: string };
    plans.set(id, { login, behaviour });
    if (behaviour === 'unknown' || behaviour === 'ignore') return;
    if (behaviour === 'cancel') {
      await sleep(random() * 2_000);
      await fetch(`${apiUrl}/v1/checkouts/${id}/cancel`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}` },
      });
      return;
    }
    // The customer watches their phone until the checkout is over (the storefront shows its
    // status, read with the clientSecret), deciding on every request that shows up: after a
    // worker crash the bank may hold a second request for the same checkout.
    const deadline = Date.now() + (EXPIRY_S + 10) * 1000;
    const seen = new Set<string>();
    while (Date.now() < deadline) {
      const r = await fetch(`${bank.appUrl}app/api/customers/${login}/requests`);
      const { requests } = (await r.json()) as { requests: Array<{ authReqId: string }> };
      for (const req of requests.filter((x) => !seen.has(x.authReqId))) {
        seen.add(req.authReqId);
        await sleep(random() * 3_000);
        const decided = await fetch(`${bank.appUrl}app/api/requests/${req.authReqId}/${behaviour}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ login }),
        });
        if (decided.ok) plans.get(id)!.decided = true;
      }
      const status = await fetch(`${apiUrl}/v1/checkouts/${id}`, {
        headers: { authorization: `Bearer ${clientSecret}` },
      });
      if (status.ok && terminalStatuses.includes(((await status.json()) as { status: string }).status))
        return;
      await sleep(500);
    }
  };
  // Arrivals spread over time, at most 50 customers acting at once.
  let next = 0;
  const lanes = Array.from({ length: Math.min(50, N) }, async () => {
    while (next < N) {
      const i = next++;
      await act(i).catch((error: Error) => log(`customer ${i}: ${error.message}`));
      if (i % 50 === 49) log(`${i + 1} checkouts created`);
    }
  });
  await Promise.all(lanes);
  log(`all ${N} checkouts created; waiting for every one to end`);

  const terminal = terminalStatuses;
  const deadline = started + MAX_MS;
  let open = N;
  while (Date.now() < deadline) {
    open = await prisma.checkout.count({ where: { status: { notIn: terminal } } });
    if (open === 0) break;
    await sleep(1_000);
  }
  chaosOn = false;
  await Promise.all([killer, redisRestarter]);
  if (open > 0) log(`${open} checkouts still open at the deadline`);

  // The bank's ledger against ours.
  const rows = await prisma.checkout.findMany({
    select: { id: true, status: true, failureCode: true },
  });
  const { payments } = (await (await fetch(`${control}/payments`)).json()) as {
    payments: Array<{ login: string; idempotencyKey: string; status: string }>;
  };
  const byLogin = new Map<string, number>();
  for (const p of payments) byLogin.set(p.login, (byLogin.get(p.login) ?? 0) + 1);
  // A checkout's customer from our own plan: the row no longer holds the login once it has ended.
  const paymentsOf = (r: { id: string }) => byLogin.get(plans.get(r.id)?.login ?? '') ?? 0;
  const count = (s: string) => rows.filter((r) => r.status === s).length;
  const doublePayments = rows.filter((r) => paymentsOf(r) > 1).length;
  const succeededWithoutPayment = rows.filter((r) => r.status === 'succeeded' && paymentsOf(r) !== 1).length;
  const paidButNotSucceeded = rows.filter((r) => r.status !== 'succeeded' && paymentsOf(r) > 0).length;
  const stuck = rows.filter((r) => !terminal.includes(r.status)).length;
  const statusOf = new Map(rows.map((r) => [r.id, r]));
  const approvedButDeclined = [...plans.entries()].filter(
    ([id, p]) => p.behaviour === 'approve' && statusOf.get(id)?.status === 'declined',
  ).length;
  const approved = [...plans.entries()].filter(([, p]) => p.behaviour === 'approve' && p.decided);
  const approvedOutcomes = new Map<string, number>();
  for (const [id] of approved) {
    const r = statusOf.get(id);
    const key = r?.status === 'failed' ? `failed:${r.failureCode}` : (r?.status ?? 'missing');
    approvedOutcomes.set(key, (approvedOutcomes.get(key) ?? 0) + 1);
  }
  const approvalsLost = approved.filter(([id]) => statusOf.get(id)?.status !== 'succeeded').length;
  const refusalsLost = [...plans.entries()].filter(
    ([id, p]) => p.behaviour === 'deny' && p.decided && statusOf.get(id)?.status !== 'declined',
  ).length;
  const failures = new Map<string, number>();
  for (const r of rows.filter((x) => x.status === 'failed'))
    failures.set(r.failureCode ?? '?', (failures.get(r.failureCode ?? '?') ?? 0) + 1);
  if (process.env.CHAOS_DEBUG) {
    for (const [id, p] of approved) {
      const r = statusOf.get(id);
      if (r?.status === 'succeeded') continue;
      const t = await (await fetch(`${control}/customers/${p.login}/timeline`)).json();
      const events = await prisma.checkoutEvent.findMany({
        where: { checkoutId: id },
        orderBy: { id: 'asc' },
      });
      console.log(
        JSON.stringify({
          id,
          status: r?.status,
          code: r?.failureCode,
          bank: t,
          ours: events.map((e) => [e.at.getTime(), e.step, e.outcome]),
        }),
      );
    }
  }
  const fmt = (m: Map<string, number>) => [...m.entries()].map(([k, v]) => `${k}:${v}`).join(',') || '-';
  log(
    `customers who tapped approve: ${approved.length}, their checkouts ended ${fmt(approvedOutcomes)}; failures by code ${fmt(failures)}`,
  );
  log(
    `checks: worker_kills=${kills} redis_restarts=${redisRestarts} customers_with_pings_dropped=${pingsDropped} bank_payments=${payments.length} succeeded_without_one_payment=${succeededWithoutPayment} paid_but_not_succeeded=${paidButNotSucceeded} approved_but_declined=${approvedButDeclined}`,
  );
  const ok =
    doublePayments === 0 &&
    stuck === 0 &&
    succeededWithoutPayment === 0 &&
    paidButNotSucceeded === 0 &&
    approvedButDeclined === 0;
  console.log(
    `chaos: checkouts=${rows.length} succeeded=${count('succeeded')} declined=${count('declined')} expired=${count('expired')} failed=${count('failed')} canceled=${count('canceled')} double_payments=${doublePayments} stuck=${stuck} approvals_lost=${approvalsLost} refusals_lost=${refusalsLost}`,
  );
  return ok ? 0 : 1;
}

let code = 1;
try {
  code = await main();
} catch (error) {
  console.error(`chaos: ${(error as Error).stack ?? error}`);
} finally {
  for (const cleanup of cleanups) await Promise.resolve(cleanup()).catch(() => {});
}
process.exit(code);
