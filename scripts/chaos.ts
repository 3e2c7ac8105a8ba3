/**
 * `npm run chaos -- [--checkouts 500] [--kill-every 3] [--workers 2] [--redis-restart-every 0] [--seed 1]
 *                   [--delivery-mode poll|ping] [--drop-pings 0.2]
 *                   [--no-webhooks] [--receiver-outage kill,flap,500,hang|all] [--receiver-outage-every 12]
 *                   [--receiver-outage-for 4] [--webhook-retry 1,2,4] [--webhook-timeout 2000]
 *                   [--postgres-restart-at S] [--postgres-down 2] [--receiver-log FILE] [--worker-log FILE]`
 *
 * Many checkouts against the sandbox bank with random customer behaviour (approve, deny, never
 * answer, cancel, unknown customer), while worker processes are killed with SIGKILL and restarted
 * every few seconds, and optionally Redis is restarted. Everything runs on private services in a
 * temporary folder. At the end it checks the promises of the payment path against the bank's own
 * ledger, and those of the webhooks against the receiver's own log, and prints, as its last line:
 *
 *   chaos: checkouts=N succeeded=A declined=B expired=C failed=D canceled=E double_payments=X stuck=Y
 *          approvals_lost=L refusals_lost=R events_undelivered=U events_missing=M events_invented=I
 *          webhook_duplicates=W
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
 *
 * Webhooks (DESIGN.md §7.3; on unless `--no-webhooks`): before the first checkout, an endpoint
 * for every event type is registered to a webhook receiver in a process of its own
 * (devstack/webhook-receiver.main.ts), which verifies each delivery with `standardwebhooks` and
 * prints one JSON line per delivery into a file (`--receiver-log`, default a temporary file kept
 * only when the run fails), across its restarts. The workers retry on `--webhook-retry` (seconds,
 * WEBHOOK_RETRY_SCHEDULE) with a `--webhook-timeout` (ms, WEBHOOK_TIMEOUT_MS). `--receiver-outage`
 * names outages taken in turn, one starting every `--receiver-outage-every` seconds and lasting
 * `--receiver-outage-for` seconds, while checkouts run: `kill` (the receiver process is killed
 * with SIGKILL and started again on the same port afterwards), `flap` (2 deliveries answered 204,
 * then 3 answered 500, and again), `500` (every delivery answered 500), `hang` (no answer: the
 * sender's timeout ends each attempt); `all` is the four. Once every checkout has ended, the
 * receiver is healthy and the run waits (within `--max-seconds`) until every event has arrived, then:
 *
 * - events_missing: status changes a checkout's timeline (checkout_events) records, into a status
 *   merchants are told of (awaiting_approval and the endings), without their event row;
 * - events_invented: event rows for no such change (or a second one for the same change);
 * - events_undelivered: events never seen by the receiver signed correctly and answered 2xx;
 * - webhook_duplicates: deliveries of an event accepted more than once (at least once allows it).
 *
 * The first three must be 0, as must the checks line's webhooks_unverified (a delivery whose
 * signature did not verify), webhooks_unknown (a delivery that is no event row, or carries another
 * checkout or status than its event) and timeline_mismatch (a checkout whose status is not the last
 * its timeline records).
 *
 * `--postgres-restart-at S` stops PostgreSQL (fast shutdown) S seconds into the run (the log's
 * clock) and starts it again `--postgres-down` seconds later on the same port and data. The API
 * (in this process) and the workers are not restarted: they must ride it out, reconnecting on
 * their own; a worker process that exits anyway is started again a second later, as a supervisor
 * (systemd Restart=always, a container's restart policy) would, and counted (worker_exits). The
 * sandbox bank then keeps its state in memory: it stands for another party, not a user of our
 * database. Customers and storefront calls retry what a 503 or a dropped connection refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { closeSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { startDevStack } from '../devstack/devstack.ts';
import { freePort } from '../devstack/ports.ts';
import type { ReceiverBehaviour } from '../devstack/webhook-receiver.ts';
import { buildApp } from '../src/app.ts';
import { loadConfig } from '../src/config.ts';
import { createDatabase } from '../src/infra/database.ts';
import { createQueueInfra } from '../src/infra/queue.ts';
import {
  type ChaosReceiver,
  chaosReceiver,
  checkEvents,
  type EventRow,
  type StatusChange,
} from './chaos-webhooks.ts';

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
    webhooks: { type: 'boolean', default: true },
    'receiver-outage': { type: 'string', default: '' },
    'receiver-outage-every': { type: 'string', default: '12' },
    'receiver-outage-for': { type: 'string', default: '4' },
    'webhook-retry': { type: 'string', default: '1,2,4' },
    'webhook-timeout': { type: 'string', default: '2000' },
    'postgres-restart-at': { type: 'string', default: '0' },
    'postgres-down': { type: 'string', default: '2' },
    'receiver-log': { type: 'string' },
    'worker-log': { type: 'string' },
  },
  allowNegative: true,
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
const WEBHOOKS = values.webhooks ?? true;
const OUTAGE_KINDS = ['kill', 'flap', '500', 'hang'] as const;
type OutageKind = (typeof OUTAGE_KINDS)[number];
const OUTAGES: OutageKind[] = (
  values['receiver-outage'] === 'all' ? OUTAGE_KINDS.join(',') : (values['receiver-outage'] ?? '')
)
  .split(',')
  .map((x) => x.trim())
  .filter(Boolean)
  .map((x) => {
    if (!(OUTAGE_KINDS as readonly string[]).includes(x))
      throw new Error(`--receiver-outage takes ${OUTAGE_KINDS.join(', ')} or all (got ${x})`);
    return x as OutageKind;
  });
if (OUTAGES.length > 0 && !WEBHOOKS) throw new Error('--receiver-outage needs webhooks (drop --no-webhooks)');
const OUTAGE_EVERY_MS = Number(values['receiver-outage-every']) * 1000;
const OUTAGE_FOR_MS = Number(values['receiver-outage-for']) * 1000;
const PG_RESTART_AT_MS = Number(values['postgres-restart-at']) * 1000;
const PG_DOWN_MS = Number(values['postgres-down']) * 1000;

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

/**
 * A storefront's call, repeated while the API answers 503 or the connection fails (a database
 * restart), with the same Idempotency-Key where there is one; at most a minute.
 */
async function persistently(call: () => Promise<Response>): Promise<Response> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await call();
      if (res.status !== 503 || Date.now() > deadline) return res;
      await res.body?.cancel();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await sleep(500);
  }
}

const outageBehaviour: Record<Exclude<OutageKind, 'kill'>, ReceiverBehaviour> = {
  flap: { kind: 'flap', okFor: 2, failFor: 3 },
  '500': { kind: 'status', status: 500 },
  hang: { kind: 'hang' },
};

async function main(): Promise<number> {
  log(
    `${N} checkouts, ${WORKERS} workers killed every ${KILL_EVERY_MS / 1000} s${REDIS_RESTART_MS ? `, Redis restarted every ${REDIS_RESTART_MS / 1000} s` : ''}, CIBA ${DELIVERY_MODE} mode${DELIVERY_MODE === 'ping' ? ` (${DROP_PINGS * 100} % of customers' pings dropped)` : ''}${WEBHOOKS ? `, webhooks${OUTAGES.length ? ` with receiver outages ${OUTAGES.join(',')} (${OUTAGE_FOR_MS / 1000} s every ${OUTAGE_EVERY_MS / 1000} s)` : ''}` : ''}${PG_RESTART_AT_MS ? `, PostgreSQL restarted at ${PG_RESTART_AT_MS / 1000} s (down ${PG_DOWN_MS / 1000} s)` : ''}`,
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
    sandbox: {
      testMode: true,
      defaultInterval: 1,
      notificationEndpoint: `${publicUrl}/ciba/notify/sandbox`,
      // The bank is another party: our database's restart is not its outage.
      ...(PG_RESTART_AT_MS ? { persistent: false } : {}),
    },
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
    WEBHOOK_RETRY_SCHEDULE: values['webhook-retry'] ?? '1,2,4',
    // A killed worker's webhook deliveries are claimed again WEBHOOK_TIMEOUT_MS + 20 s later.
    WEBHOOK_TIMEOUT_MS: values['webhook-timeout'] ?? '2000',
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
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' };

  // The merchant's webhook endpoint, for every event type, and its receiver process.
  let receiver: ChaosReceiver | undefined;
  let subscribed: string[] | null = null;
  const receiverLog = values['receiver-log']
    ? resolve(values['receiver-log'])
    : join(tmpdir(), `bankpay-chaos-webhooks-${process.pid}-${Date.now()}.jsonl`);
  if (WEBHOOKS) {
    const port = await freePort();
    const res = await fetch(`${apiUrl}/v1/webhook_endpoints`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ url: `http://127.0.0.1:${port}/webhooks`, description: 'chaos' }),
    });
    if (res.status !== 201) throw new Error(`webhook endpoint: ${res.status} ${await res.text()}`);
    const endpoint = (await res.json()) as { id: string; secret: string; events: string[] };
    subscribed = endpoint.events;
    rmSync(receiverLog, { force: true });
    const receiverProcess = chaosReceiver({ root, port, secret: endpoint.secret, logFile: receiverLog });
    receiver = receiverProcess;
    cleanups.unshift(() => receiverProcess.kill());
    await receiverProcess.start();
    log(`webhook endpoint ${endpoint.id} → ${receiverProcess.url}; the receiver's log: ${receiverLog}`);
  }

  // The end of the chaos (every checkout over, or the deadline) cuts the chaos's waits short.
  let chaosOn = true;
  let endChaos = () => {};
  const chaosOver = new Promise<void>((r) => {
    endChaos = r;
  });
  const chaosSleep = (ms: number) => Promise.race([sleep(Math.max(0, ms)), chaosOver]);

  // Worker processes, killed and restarted; one that exits on its own is started again a second
  // later, as a supervisor would.
  const workers: Array<ChildProcess | undefined> = [];
  const killedByUs = new WeakSet<ChildProcess>();
  let stopping = false;
  let kills = 0;
  let workerExits = 0;
  let redisRestarts = 0;
  let postgresRestarts = 0;
  let pingsDropped = 0;
  // The workers' own log (JSON lines, LOG_LEVEL warn), kept with --worker-log.
  const workerLog = values['worker-log'] ? openSync(resolve(values['worker-log']), 'a') : 'ignore';
  if (typeof workerLog === 'number') cleanups.push(() => closeSync(workerLog));
  const spawnWorker = (i: number) => {
    const child = spawn(process.execPath, ['--import', 'tsx', join(root, 'src/worker.ts')], {
      env: { ...process.env, ...env },
      stdio: ['ignore', workerLog, 'inherit'],
    });
    workers[i] = child;
    child.once('exit', (code, signal) => {
      if (stopping || killedByUs.has(child) || workers[i] !== child) return;
      workerExits++;
      log(`worker ${i} exited on its own (${signal ?? code}); starting another in 1 s`);
      setTimeout(() => {
        if (!stopping && workers[i] === child) spawnWorker(i);
      }, 1_000);
    });
  };
  for (let i = 0; i < WORKERS; i++) spawnWorker(i);
  cleanups.unshift(async () => {
    stopping = true;
    for (const w of workers) w?.kill('SIGKILL');
  });
  const killer = (async () => {
    while (chaosOn) {
      await chaosSleep(KILL_EVERY_MS);
      if (!chaosOn) break;
      const i = Math.floor(random() * WORKERS);
      const worker = workers[i];
      if (worker) killedByUs.add(worker);
      worker?.kill('SIGKILL');
      kills++;
      spawnWorker(i);
    }
  })();
  const redisRestarter = (async () => {
    if (!REDIS_RESTART_MS) return;
    while (chaosOn) {
      await chaosSleep(REDIS_RESTART_MS);
      if (!chaosOn) break;
      await stack.restartRedis(500);
      redisRestarts++;
    }
  })();
  const postgresRestarter = (async () => {
    if (!PG_RESTART_AT_MS) return;
    await chaosSleep(started + PG_RESTART_AT_MS - Date.now());
    if (!chaosOn) {
      log('every checkout ended before the PostgreSQL restart was due: not restarted');
      return;
    }
    log(`PostgreSQL stopping, down for ${PG_DOWN_MS / 1000} s`);
    await stack.restartPostgres(PG_DOWN_MS);
    postgresRestarts++;
    log('PostgreSQL started again');
  })();
  const outages = new Map<string, number>();
  const receiverOutages = (async () => {
    if (!receiver || OUTAGES.length === 0) return;
    for (let k = 0; chaosOn; k++) {
      await chaosSleep(OUTAGE_EVERY_MS - OUTAGE_FOR_MS);
      if (!chaosOn) break;
      const kind = OUTAGES[k % OUTAGES.length]!;
      outages.set(kind, (outages.get(kind) ?? 0) + 1);
      log(`receiver outage: ${kind} for ${OUTAGE_FOR_MS / 1000} s`);
      if (kind === 'kill') {
        await receiver.kill();
        await chaosSleep(OUTAGE_FOR_MS);
        await receiver.start();
      } else {
        await receiver.setBehaviour(outageBehaviour[kind]);
        await chaosSleep(OUTAGE_FOR_MS);
        await receiver.setBehaviour({ kind: 'ok' });
      }
    }
  })();

  // Customers and their behaviour.
  const { bank } = stack;
  const control = bank.controlUrl!;
  const plans = new Map<string, { login: string; behaviour: Behaviour; decided?: boolean }>();
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
    const idempotencyKey = randomUUID();
    const res = await persistently(() =>
      fetch(`${apiUrl}/v1/checkouts`, {
        method: 'POST',
        headers: { ...headers, 'idempotency-key': idempotencyKey },
        body: JSON.stringify({
          amount: 100 + i,
          currency: 'EUR',
          bankId: 'sandbox',
          loginHint: login,
          reference: `chaos-${i}`,
        }),
      }),
    );
    if (res.status !== 202) throw new Error(`create ${i}: ${res.status} ${await res.text()}`);
    const { id, clientSecret } = (await res.json()) as { id: string; clientSecret: string };
    plans.set(id, { login, behaviour });
    if (behaviour === 'unknown' || behaviour === 'ignore') return;
    if (behaviour === 'cancel') {
      await sleep(random() * 2_000);
      await persistently(() =>
        fetch(`${apiUrl}/v1/checkouts/${id}/cancel`, {
          method: 'POST',
          headers: { authorization: `Bearer ${key}` },
        }),
      );
      return;
    }
    // The customer watches their phone until the checkout is over (the storefront shows its
    // status, read with the clientSecret), deciding on every request that shows up: after a
    // worker crash the bank may hold a second request for the same checkout.
    const deadline = Date.now() + (EXPIRY_S + 10) * 1000;
    const seen = new Set<string>();
    while (Date.now() < deadline) {
      try {
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
      } catch {
        // A dropped connection (the database restarting under the API): look again.
      }
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
    try {
      open = await prisma.checkout.count({ where: { status: { notIn: terminal } } });
      if (open === 0) break;
    } catch {
      // the database restarting: ask again
    }
    await sleep(1_000);
  }
  chaosOn = false;
  endChaos();
  await Promise.all([killer, redisRestarter, postgresRestarter, receiverOutages]);
  if (open > 0) log(`${open} checkouts still open at the deadline`);

  // Every status change a timeline records (transition() writes `detail.status`), and every event,
  // read in one snapshot: an event exists if and only if its change committed.
  const readOutbox = async (): Promise<{ changes: StatusChange[]; events: EventRow[] }> => {
    const [changes, events] = await prisma.$transaction(
      [
        prisma.$queryRaw<Array<{ checkout_id: string; status: string }>>`
          SELECT checkout_id, detail->>'status' AS status FROM checkout_events
          WHERE jsonb_typeof(detail->'status') = 'string'`,
        prisma.$queryRaw<Array<{ id: string; type: string; checkout_id: string; status: string | null }>>`
          SELECT id, type, checkout_id, data->>'status' AS status FROM events`,
      ],
      { isolationLevel: 'RepeatableRead' },
    );
    return {
      changes: changes.map((r) => ({ checkoutId: r.checkout_id, status: r.status })),
      events: events.map((r) => ({ id: r.id, type: r.type, checkoutId: r.checkout_id, status: r.status })),
    };
  };
  let outbox = await readOutbox();
  // The receiver is healthy again (the outages end with the chaos): wait until every event has
  // arrived, within the run's deadline.
  let checks = checkEvents(outbox.changes, outbox.events, receiver?.received() ?? [], subscribed);
  if (receiver) {
    const drainFrom = Date.now();
    while (checks.undelivered > 0 && Date.now() < deadline) {
      await sleep(1_000);
      outbox = await readOutbox();
      checks = checkEvents(outbox.changes, outbox.events, receiver.received(), subscribed);
    }
    log(
      checks.undelivered > 0
        ? `${checks.undelivered} events still not delivered at the deadline`
        : `every event delivered, ${((Date.now() - drainFrom) / 1000).toFixed(1)} s after the last checkout ended`,
    );
  }
  const [timelineMismatch] = await prisma.$queryRaw<Array<{ n: number }>>`
    SELECT count(*)::int AS n FROM checkouts c
    WHERE c.status <> coalesce(
      (SELECT e.detail->>'status' FROM checkout_events e
        WHERE e.checkout_id = c.id AND jsonb_typeof(e.detail->'status') = 'string' ORDER BY e.id DESC LIMIT 1),
      (SELECT e.outcome FROM checkout_events e WHERE e.checkout_id = c.id AND e.step = 'created' LIMIT 1))`;
  const deliveryStates = await prisma.$queryRaw<Array<{ state: string; n: number }>>`
    SELECT state, count(*)::int AS n FROM webhook_deliveries GROUP BY state ORDER BY state`;

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
    `checks: worker_kills=${kills} worker_exits=${workerExits} redis_restarts=${redisRestarts} postgres_restarts=${postgresRestarts} customers_with_pings_dropped=${pingsDropped} bank_payments=${payments.length} succeeded_without_one_payment=${succeededWithoutPayment} paid_but_not_succeeded=${paidButNotSucceeded} approved_but_declined=${approvedButDeclined}`,
  );
  const timelineMismatches = timelineMismatch?.n ?? 0;
  log(
    `checks: events=${outbox.events.length} timeline_mismatch=${timelineMismatches}${
      receiver
        ? ` webhooks_received=${checks.received} webhooks_refused=${checks.refused} webhooks_unverified=${checks.unverified} webhooks_unknown=${checks.unknown} receiver_starts=${receiver.starts} receiver_outages=${fmt(outages)} deliveries=${deliveryStates.map((d) => `${d.state}:${d.n}`).join(',') || '-'}`
        : ''
    }`,
  );
  const webhooksOk =
    checks.missing === 0 &&
    checks.invented === 0 &&
    timelineMismatches === 0 &&
    (!receiver || (checks.undelivered === 0 && checks.unverified === 0 && checks.unknown === 0));
  const ok =
    doublePayments === 0 &&
    stuck === 0 &&
    succeededWithoutPayment === 0 &&
    paidButNotSucceeded === 0 &&
    approvedButDeclined === 0 &&
    webhooksOk;
  if (receiver && ok && !values['receiver-log']) rmSync(receiverLog, { force: true });
  else if (receiver) log(`the receiver's log is kept: ${receiverLog}`);
  console.log(
    `chaos: checkouts=${rows.length} succeeded=${count('succeeded')} declined=${count('declined')} expired=${count('expired')} failed=${count('failed')} canceled=${count('canceled')} double_payments=${doublePayments} stuck=${stuck} approvals_lost=${approvalsLost} refusals_lost=${refusalsLost}${receiver ? ` events_undelivered=${checks.undelivered}` : ''} events_missing=${checks.missing} events_invented=${checks.invented}${receiver ? ` webhook_duplicates=${checks.duplicates}` : ''}`,
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
