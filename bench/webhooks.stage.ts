/**
 * (j) Webhooks (DESIGN.md §7.3): the outbox trigger and one worker's dispatcher delivering to a
 * receiver in a process of its own (devstack/webhook-receiver.main.ts, answering 204), as a
 * merchant's server on this machine. The API and the worker run as in production, with
 * WEBHOOK_RETRY_SCHEDULE=1 (a failed delivery is due again 1 s later, ±20 %): nothing fails in
 * (1) and (2), and in (3) it makes the whole backlog due when the receiver returns.
 *
 *   (1) commit → attempt   ~100 status changes per second for `latencySeconds`; per event, the
 *                          receiver's arrival time minus the event's `created_at`
 *                          (clock_timestamp() in the trigger, inside the transaction of the
 *                          change, a little before its commit; same host, same clock). The
 *                          receiver verifies every signature here.
 *   (2) throughput         N deliveries due at once, drained by the worker: deliveries/s, worker
 *                          and PostgreSQL CPU per delivery. Next to it, a bare undici POST loop
 *                          (bench/webhook-post-loop.ts, its own process) to the same receiver with
 *                          the same body and headers, at the same concurrency (one endpoint: at
 *                          most WEBHOOK_ENDPOINT_CONCURRENCY = 64 in flight): what HTTP alone costs.
 *   (3) backlog drain      the receiver killed; B status changes committed; the worker fails each
 *                          at least once (connection refused) or for `outageCapSeconds`; the
 *                          receiver back on the same port while ~100 live changes per second go
 *                          on: the drain rate, and how late the live events committed during the
 *                          drain arrive.
 *
 * How the status changes are made:
 * - (1) and the live load of (3): checkouts inserted as `pending` straight into PostgreSQL a
 *   second ahead (no job, so nothing else moves them; leftovers deleted), each canceled through
 *   the API (POST /v1/checkouts/{id}/cancel) on a fixed schedule. A cancel is a real status
 *   change: `transition` in the API's own transaction, whose commit is what a merchant's webhook
 *   follows. It is the cheapest such change: an approval in the sandbox bank would need the
 *   worker to start each checkout at the bank and poll its token endpoint, work on the same
 *   worker and the same two cores that is not webhook work; an UPDATE in SQL would skip the API.
 * - The backlogs of (2) and (3): one `UPDATE checkouts SET status = 'canceled'` of N pending
 *   checkouts. It fires the same trigger, which writes the same event and delivery rows as any
 *   change (N of each, in one transaction: all due at its commit), in seconds rather than the
 *   N / 100 s the API path would take at the rate of (1).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Pool } from 'undici';
import { freePort } from '../devstack/ports.ts';
import type { ReceivedWebhook } from '../devstack/webhook-receiver.ts';
import { newBindingMessage } from '../src/checkout/binding-message.ts';
import type { CheckoutView } from '../src/checkout/checkout.schemas.ts';
import { newCheckoutId } from '../src/checkout/checkout.service.ts';
import { signWebhook } from '../src/integrations/webhook.sender.ts';
import { webhookBody } from '../src/jobs/webhook-dispatcher.ts';
import type { EventType } from '../src/notifications/events.repository.ts';
import { CLAIM_DUE_DELIVERIES_SQL } from '../src/notifications/webhook-deliveries.repository.ts';
import { type Bench, log } from './bench.context.ts';
import { flags, LOGIN, plan } from './bench.options.ts';
import { resetState } from './checkouts.ts';
import { type Child, round, sleep, summarize } from './lib.ts';
import { type ProfileSummary, profileFile, summarizeProfile } from './profile.ts';
import { type Cores, components, coresBetween, cpuOf, resetStatements, statementsPer } from './readings.ts';

/**
 * One endpoint, so this is what the dispatcher keeps in flight (WEBHOOK_ENDPOINT_CONCURRENCY, its
 * default), and what the bare loop keeps in flight.
 */
const ENDPOINT_CONCURRENCY = 64;

export type WebhookStage = Awaited<ReturnType<typeof measureWebhooks>>;

export async function measureWebhooks(bench: Bench) {
  const sizes = plan.webhooks;
  log('(j) webhooks: receiver, API and worker (WEBHOOK_RETRY_SCHEDULE=1)');
  await resetState(bench);
  await bench.sql.query('TRUNCATE events, webhook_endpoints CASCADE');
  const apiKeyId = ((await bench.sql.query('SELECT id FROM api_keys LIMIT 1')).rows[0] as { id: string }).id;
  const receiver = await startReceiver(bench, await freePort());
  const api = await bench.processes.startApi();
  // --profile-worker: the worker under --cpu-prof, its profile summarized over (2)'s drain.
  const profDir = join(bench.dir, 'worker-prof-webhooks');
  if (flags['profile-worker']) mkdirSync(profDir);
  const workerSpawnedAt = Date.now();
  const worker = bench.processes.startChild(
    'src/worker.ts',
    { WEBHOOK_RETRY_SCHEDULE: '1', WEBHOOK_ENDPOINT_CONCURRENCY: String(ENDPOINT_CONCURRENCY) },
    flags['profile-worker'] ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`] : [],
  );
  let stopped = false;
  const pids = () =>
    components(bench, { worker: worker.pid, api: api.child.pid, receiver: receiver.pid(), bench: 0 });
  try {
    const res = await fetch(`${api.url}/v1/webhook_endpoints`, {
      method: 'POST',
      headers: bench.auth,
      body: JSON.stringify({ url: receiver.url, description: 'bench' }),
    });
    if (res.status !== 201) throw new Error(`webhook endpoint: ${res.status} ${await res.text()}`);
    const endpoint = (await res.json()) as { id: string; secret: string };
    await receiver.setSecrets([endpoint.secret]);
    const ctx: StageContext = { bench, apiUrl: api.url, apiKeyId, receiver, pids };

    // Warm-up: the worker started, its connections to the receiver open, the code paths compiled.
    const warm = startChanges(ctx, 50);
    await sleep(1_000);
    await warm.stop();
    await waitFor(() => receiver.arrivals.first.size >= warm.result.sent, 30_000, 'the warm-up deliveries');

    const latency = await measureLatency(ctx, sizes.rate, sizes.latencySeconds);
    // A fast receiver from here on: it parses each body and answers 204, no signature check.
    await receiver.setSecrets([]);
    const throughput = await measureThroughput(ctx, sizes.throughput, endpoint.secret);
    const backlog = await measureBacklog(ctx, sizes.backlog, sizes.rate, sizes.outageCapSeconds);
    await bench.processes.stopChild(worker);
    stopped = true;
    const file = flags['profile-worker'] ? profileFile(profDir) : undefined;
    let workerProfile: ProfileSummary | undefined;
    if (file) {
      const { from, to } = throughput.dispatcher.window;
      workerProfile = summarizeProfile(file, from - workerSpawnedAt, to - workerSpawnedAt);
      log(`(j2) worker profile over the drain (self time): ${JSON.stringify(workerProfile)}`);
    }
    return {
      endpointConcurrency: ENDPOINT_CONCURRENCY,
      latency,
      throughput,
      backlog,
      ...(workerProfile ? { workerProfile } : {}),
    };
  } finally {
    if (!stopped) await bench.processes.stopChild(worker);
    await bench.processes.stopChild(api.child);
    await receiver.stop();
  }
}

interface StageContext {
  bench: Bench;
  apiUrl: string;
  apiKeyId: string;
  receiver: Receiver;
  pids: () => Record<string, number>;
}

// ---------------------------------------------------------------------------------------------
// (1) commit → attempt at ~100 status changes per second

async function measureLatency(ctx: StageContext, rate: number, seconds: number) {
  const { bench, receiver } = ctx;
  log(`(j1) commit → attempt: ${rate} cancels/s through the API for ${seconds} s`);
  receiver.arrivals.reset();
  const pids = ctx.pids();
  const from = await dbNow(bench);
  const cpu0 = cpuOf(bench, pids);
  const t0 = Date.now();
  const changes = startChanges(ctx, rate);
  await sleep(seconds * 1000);
  await changes.stop();
  const to = await dbNow(bench);
  const events = await eventsBetween(bench, from, to);
  await waitFor(
    () => events.every((e) => receiver.arrivals.first.has(e.id)),
    10_000,
    'the deliveries of (1)',
  );
  const cpu1 = cpuOf(bench, pids);
  const cores = coresOf(cpu0, cpu1, (Date.now() - t0) / 1000);
  const withAttempts = await eventsBetween(bench, from, to);
  const toReceived = lateness(withAttempts, receiver.arrivals.first);
  const toAttempt = withAttempts
    .filter((e) => e.firstAttemptAt !== null)
    .map((e) => e.firstAttemptAt! - e.createdAt);
  const run = {
    changesPerSecond: round(events.length / seconds, 1),
    cancels: changes.result,
    events: events.length,
    /** Commit (the event's created_at) → the receiver has the delivery. */
    commitToReceivedMs: toReceived.ms,
    /** Commit → the worker starts the attempt (the attempt row's attempted_at). */
    commitToAttemptMs: summarize(toAttempt),
    missed: toReceived.missed,
    unverified: receiver.arrivals.unverified,
    duplicates: receiver.arrivals.duplicates,
    cores,
    /** Everything each change cost, its cancel request included. */
    cpuUsPerChange: {
      api: usPer(cpu0, cpu1, 'api', events.length),
      worker: usPer(cpu0, cpu1, 'worker', events.length),
      postgres: usPer(cpu0, cpu1, 'postgres', events.length),
    },
  };
  log(
    `(j1) ${run.events} events (${run.changesPerSecond}/s): commit → received p50 ${run.commitToReceivedMs.p50} ms p99 ${run.commitToReceivedMs.p99} ms max ${run.commitToReceivedMs.max} ms; → attempt p50 ${run.commitToAttemptMs.p50} p99 ${run.commitToAttemptMs.p99}; missed ${run.missed}, unverified ${run.unverified}; cores ${JSON.stringify(cores)}`,
  );
  return run;
}

// ---------------------------------------------------------------------------------------------
// (2) deliveries per second, and the bare POST loop beside it

async function measureThroughput(ctx: StageContext, n: number, secret: string) {
  const { bench, receiver } = ctx;
  log(`(j2) throughput: ${n} deliveries due at once`);
  receiver.arrivals.reset();
  const ids = await insertPending(ctx, n);
  const outbox = await cancelInSql(bench, ids);
  await resetStatements(bench);
  const pids = ctx.pids();
  const t0 = Date.now();
  const cpu0 = cpuOf(bench, pids);
  await waitFor(() => receiver.arrivals.first.size >= n, 180_000, `${n} deliveries`);
  const lastArrival = receiver.arrivals.last;
  await waitFor(async () => (await pendingDeliveries(bench)) === 0, 30_000, 'the outcomes of (2)');
  const seconds = (Date.now() - t0) / 1000;
  const cpu1 = cpuOf(bench, pids);
  const cores = coresOf(cpu0, cpu1, seconds);
  const statements = await statementsPer(bench, n, 6);
  const drainSeconds = (lastArrival - t0) / 1000;
  // How long each POST took, as the worker timed it (request out → answer read): with at most
  // 64 in flight, deliveries/s ≤ 64 ÷ this.
  const { rows: durations } = await bench.sql.query(
    `/* bench: */ SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms) AS p50,
       percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms) AS p99, avg(duration_ms) AS mean
     FROM webhook_attempts WHERE event_id IN (SELECT id FROM events WHERE checkout_id = ANY ($1::text[]))`,
    [ids],
  );
  const d = durations[0] as { p50: number; p99: number; mean: string };
  const perDelivery = (name: string) => usPer(cpu0, cpu1, name, n);
  const dispatcher = {
    deliveries: n,
    /** The UPDATE that wrote the N events and deliveries (the trigger's cost, before the window). */
    outboxWriteSeconds: round(outbox.seconds, 2),
    claimPlans: outbox.claimPlans,
    /** Commit → the last delivery at the receiver (this process's clock, ms). */
    window: { from: t0, to: lastArrival },
    seconds: round(drainSeconds, 2),
    perSecond: round(n / drainSeconds),
    cores,
    /** The worker's own timing of each POST (ms). */
    attemptMs: { p50: round(d.p50, 1), p99: round(d.p99, 1), mean: round(Number(d.mean), 2) },
    workerCpuUsPerDelivery: perDelivery('worker'),
    postgresCpuUsPerDelivery: perDelivery('postgres'),
    receiverCpuUsPerDelivery: perDelivery('receiver'),
    statementsPerDelivery: statements,
  };
  log(
    `(j2) dispatcher: ${n} in ${dispatcher.seconds} s = ${dispatcher.perSecond}/s; per delivery worker ${dispatcher.workerCpuUsPerDelivery} µs, postgres ${dispatcher.postgresCpuUsPerDelivery} µs, receiver ${dispatcher.receiverCpuUsPerDelivery} µs; cores ${JSON.stringify(cores)}; statements per delivery ${statements.total} (${statements.serverMsPerUnit} ms server); each POST p50 ${dispatcher.attemptMs.p50} ms p99 ${dispatcher.attemptMs.p99} ms`,
  );

  // The reference: the same receiver, the same body and headers, no database and no signing.
  const { rows } = await bench.sql.query(
    '/* bench: */ SELECT id, type, created_at, data FROM events ORDER BY created_at DESC LIMIT 1',
  );
  const e = rows[0] as { id: string; type: EventType; created_at: Date; data: CheckoutView };
  const message = {
    id: e.id,
    body: webhookBody({ eventId: e.id, type: e.type, eventCreatedAt: e.created_at, object: e.data }),
    secrets: [secret],
  };
  const now = new Date();
  const headers = {
    'content-type': 'application/json',
    'user-agent': 'Bankpay-Webhooks/1',
    'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
    'webhook-signature': signWebhook(message, now),
  };
  const bare = await bareLoop(ctx, n, message.body, headers);
  log(
    `(j2) bare undici POST loop: ${bare.perSecond}/s, ${bare.cpuUsPerRequest} µs of its CPU per POST, receiver ${bare.receiverCpuUsPerRequest} µs; cores ${JSON.stringify(bare.cores)}`,
  );
  return {
    dispatcher,
    bare,
    bodyBytes: Buffer.byteLength(message.body),
    ratio: round(dispatcher.perSecond / bare.perSecond, 2),
  };
}

async function bareLoop(ctx: StageContext, n: number, body: string, headers: Record<string, string>) {
  const { bench, receiver } = ctx;
  const child = bench.processes.startChild('bench/webhook-post-loop.ts', {
    TARGET_URL: receiver.url,
    REQUESTS: String(n),
    CONCURRENCY: String(ENDPOINT_CONCURRENCY),
    BODY: body,
    HEADERS: JSON.stringify(headers),
  });
  let result: { requests: number; seconds: number; cpuSeconds: number; failed: number } | undefined;
  child.onLine((line) => {
    if (line.startsWith('{')) result = JSON.parse(line) as typeof result;
  });
  // The loop's own process times itself; the others are read over the same span, approximately
  // (from the first measured POST, i.e. once the warm-up's 1,000 have arrived).
  const pids = { ...ctx.pids(), loop: child.pid };
  await waitFor(() => receiver.arrivals.reference >= Math.min(1_000, n), 30_000, 'the bare loop warm-up');
  const cpu0 = cpuOf(bench, pids);
  const t0 = Date.now();
  await waitFor(() => result !== undefined || child.process.exitCode !== null, 120_000, 'the bare loop');
  const cpu1 = cpuOf(bench, pids);
  const cores = coresOf(cpu0, cpu1, (Date.now() - t0) / 1000);
  await bench.processes.stopChild(child);
  if (!result) throw new Error(`bare loop: ${child.tail()}`);
  return {
    requests: result.requests,
    seconds: round(result.seconds, 2),
    perSecond: round(result.requests / result.seconds),
    failed: result.failed,
    cpuUsPerRequest: round((result.cpuSeconds * 1e6) / result.requests),
    receiverCpuUsPerRequest: usPer(cpu0, cpu1, 'receiver', result.requests),
    cores,
  };
}

// ---------------------------------------------------------------------------------------------
// (3) a backlog after an outage, drained while live changes go on

async function measureBacklog(ctx: StageContext, n: number, rate: number, outageCapSeconds: number) {
  const { bench, receiver } = ctx;
  log(`(j3) backlog: receiver down, ${n} events queued`);
  await bench.sql.query('TRUNCATE events CASCADE');
  receiver.arrivals.reset();
  await receiver.kill();
  const ids = await insertPending(ctx, n);
  const outbox = await cancelInSql(bench, ids);
  const backlog = new Set(
    ((await bench.sql.query('/* bench: */ SELECT id FROM events')).rows as Array<{ id: string }>).map(
      (r) => r.id,
    ),
  );
  // The outage lasts until every queued delivery has failed at least once (as in a real outage,
  // where each event is attempted when it is committed), or for outageCapSeconds.
  const outageStart = Date.now();
  let unattempted = n;
  while (Date.now() - outageStart < outageCapSeconds * 1000) {
    unattempted = Number(
      (
        (
          await bench.sql.query(
            "/* bench: */ SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'pending' AND attempts = 0",
          )
        ).rows[0] as { n: string }
      ).n,
    );
    if (unattempted === 0) break;
    await sleep(500);
  }
  const outageSeconds = (Date.now() - outageStart) / 1000;
  const failedAttempts = Number(
    (
      (await bench.sql.query('/* bench: */ SELECT count(*) AS n FROM webhook_attempts')).rows[0] as {
        n: string;
      }
    ).n,
  );
  log(
    `(j3) outage of ${round(outageSeconds, 1)} s: ${failedAttempts} failed attempts (${round(failedAttempts / outageSeconds)}/s), ${unattempted} deliveries never attempted; receiver back`,
  );

  await receiver.restart();
  await resetStatements(bench);
  const from = await dbNow(bench);
  const pids = ctx.pids();
  const cpu0 = cpuOf(bench, pids);
  const t0 = Date.now();
  const live = startChanges(ctx, rate);
  const backlogArrived = () => {
    let k = 0;
    for (const id of backlog) if (receiver.arrivals.first.has(id)) k++;
    return k;
  };
  let drained = 0;
  await waitFor(
    () => {
      drained = backlogArrived();
      return drained >= n;
    },
    180_000,
    `the ${n} queued deliveries`,
    1_000,
  ).catch((error: Error) => log(`(j3) ${error.message}: ${drained} of ${n} delivered`));
  let lastBacklog = 0;
  for (const id of backlog) lastBacklog = Math.max(lastBacklog, receiver.arrivals.first.get(id) ?? 0);
  const cpu1 = cpuOf(bench, pids);
  const cores = coresOf(cpu0, cpu1, (Date.now() - t0) / 1000);
  const statements = await statementsPer(bench, drained + live.result.sent, 6);
  // A little more live load after the drain, as the reference of "on time".
  await sleep(5_000);
  await live.stop();
  const to = await dbNow(bench);
  const events = await eventsBetween(bench, from, to);
  await waitFor(
    () => events.every((e) => receiver.arrivals.first.has(e.id)),
    20_000,
    'the live deliveries',
  ).catch(() => undefined);
  // Committed before the last queued delivery arrived, or after it (the same host's clock).
  const during = lateness(
    events.filter((e) => e.createdAt < lastBacklog),
    receiver.arrivals.first,
  );
  const after = lateness(
    events.filter((e) => e.createdAt >= lastBacklog),
    receiver.arrivals.first,
  );
  const drainSeconds = (lastBacklog - t0) / 1000;
  const run = {
    queued: n,
    outboxWriteSeconds: round(outbox.seconds, 2),
    claimPlans: outbox.claimPlans,
    outage: { seconds: round(outageSeconds, 1), failedAttempts, neverAttempted: unattempted },
    drain: {
      delivered: backlogArrived(),
      seconds: round(drainSeconds, 2),
      perSecond: round(backlogArrived() / drainSeconds),
      cores,
      workerCpuUsPerDelivery: usPer(cpu0, cpu1, 'worker', backlogArrived() + live.result.sent),
      postgresCpuUsPerDelivery: usPer(cpu0, cpu1, 'postgres', backlogArrived() + live.result.sent),
      statementsPerDelivery: statements,
    },
    live: {
      changesPerSecond: round(events.length / ((to.getTime() - from.getTime()) / 1000), 1),
      cancels: live.result,
      /** Live events committed while the backlog drained: commit → received. */
      duringDrainMs: during.ms,
      missedDuringDrain: during.missed,
      /** Live events committed after the last queued delivery arrived. */
      afterDrainMs: after.ms,
    },
    duplicates: receiver.arrivals.duplicates,
  };
  log(
    `(j3) drained ${run.drain.delivered} in ${run.drain.seconds} s = ${run.drain.perSecond}/s with ${run.live.changesPerSecond} live changes/s; live events during the drain: p50 ${during.ms.p50} ms p99 ${during.ms.p99} ms max ${during.ms.max} ms (n=${during.ms.n}, missed ${during.missed}); after: p50 ${after.ms.p50} p99 ${after.ms.p99}; cores ${JSON.stringify(cores)}`,
  );
  return run;
}

// ---------------------------------------------------------------------------------------------
// Status changes

/** `n` checkouts as POST /v1/checkouts writes them (pending), without their jobs. */
async function insertPending(ctx: StageContext, n: number): Promise<string[]> {
  const ids: string[] = [];
  for (let from = 0; from < n; from += 5_000) {
    const batch = Array.from({ length: Math.min(5_000, n - from) }, () => newCheckoutId());
    await ctx.bench.sql.query(
      `/* bench: */ INSERT INTO checkouts (id, status, amount, currency, bank_id, login_hint, reference, binding_message, api_key_id, created_at, updated_at, expires_at)
       SELECT id, 'pending', 4990, 'EUR', 'sandbox', $2, 'order-' || id, bm, $3, now(), now(), now() + interval '11 minutes'
       FROM unnest($1::text[], $4::text[]) AS t(id, bm)`,
      [batch, LOGIN, ctx.apiKeyId, batch.map(() => newBindingMessage())],
    );
    ids.push(...batch);
  }
  return ids;
}

/**
 * All `ids` canceled in one transaction: the trigger writes one event and one delivery each, all
 * due at the commit. The tables are analyzed in the same transaction (ANALYZE counts the rows its
 * own transaction wrote), so that the claims see the statistics autovacuum keeps for a backlog
 * that built up over an outage, not those of the empty table a moment before (--no-analyze: as
 * they are). The claim's plan is recorded, for the whole backlog due and for its endpoint busy.
 */
async function cancelInSql(bench: Bench, ids: string[]) {
  const t0 = Date.now();
  await bench.sql.query('BEGIN');
  try {
    await bench.sql.query(
      "/* bench: */ UPDATE checkouts SET status = 'canceled', updated_at = now() WHERE id = ANY ($1::text[]) AND status = 'pending'",
      [ids],
    );
    if (!flags['no-analyze']) await bench.sql.query('ANALYZE webhook_deliveries, events, webhook_endpoints');
    await bench.sql.query('COMMIT');
  } catch (error) {
    await bench.sql.query('ROLLBACK');
    throw error;
  }
  const seconds = (Date.now() - t0) / 1000;
  const { rows } = await bench.sql.query('/* bench: */ SELECT id FROM webhook_endpoints LIMIT 1');
  const endpoint = (rows[0] as { id: string }).id;
  const plan = async (busy: string[]) =>
    (
      (await bench.sql.query(`EXPLAIN /* bench: */ ${CLAIM_DUE_DELIVERIES_SQL}`, [100, busy, 30_000]))
        .rows as Array<{ 'QUERY PLAN': string }>
    )
      .map((r) => r['QUERY PLAN'].trim())
      .join(' / ');
  return { seconds, claimPlans: { due: await plan([]), endpointBusy: await plan([endpoint]) } };
}

interface Changes {
  stop(): Promise<void>;
  result: { sent: number; canceled: number; failed: number };
}

/**
 * `rate` cancels per second through the API, each on its own schedule (open loop: a slow answer
 * does not delay the next), of checkouts inserted one second ahead.
 */
function startChanges(ctx: StageContext, rate: number): Changes {
  const pool = new Pool(ctx.apiUrl, { connections: 16 });
  const result = { sent: 0, canceled: 0, failed: 0 };
  const inFlight = new Set<Promise<void>>();
  let stopped = false;
  const cancel = async (id: string) => {
    try {
      const res = await pool.request({
        path: `/v1/checkouts/${id}/cancel`,
        method: 'POST',
        headers: { authorization: ctx.bench.auth.authorization! },
      });
      await res.body.dump();
      if (res.statusCode === 200) result.canceled++;
      else result.failed++;
    } catch {
      result.failed++;
    }
  };
  const running = (async () => {
    let next = await insertPending(ctx, rate);
    const t0 = performance.now();
    for (let second = 0; !stopped; second++) {
      const batch = next;
      const upcoming = insertPending(ctx, rate);
      upcoming.catch(() => {}); // seen where it is awaited, below
      for (let i = 0; i < batch.length && !stopped; i++) {
        const wait = t0 + second * 1000 + (i * 1000) / rate - performance.now();
        if (wait > 0) await sleep(wait);
        const run = cancel(batch[i]!);
        result.sent++;
        inFlight.add(run);
        void run.finally(() => inFlight.delete(run));
      }
      next = await upcoming;
    }
  })();
  let failure: unknown;
  running.catch((error: unknown) => {
    failure = error;
    stopped = true;
  });
  return {
    result,
    async stop() {
      stopped = true;
      await running.catch(() => {});
      await Promise.all(inFlight);
      await pool.close();
      // The checkouts inserted for a second that did not come: gone before the reconciler would
      // start them at the bank (after 30 s).
      await ctx.bench.sql.query("/* bench: */ DELETE FROM checkouts WHERE status = 'pending'");
      if (failure) throw failure;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Readings

interface EventTimes {
  id: string;
  createdAt: number;
  firstAttemptAt: number | null;
}

const dbNow = async (bench: Bench) =>
  ((await bench.sql.query('/* bench: */ SELECT clock_timestamp() AS t')).rows[0] as { t: Date }).t;

async function eventsBetween(bench: Bench, from: Date, to: Date): Promise<EventTimes[]> {
  const { rows } = await bench.sql.query(
    `/* bench: */ SELECT e.id, e.created_at, (SELECT min(a.attempted_at) FROM webhook_attempts a WHERE a.event_id = e.id) AS first_attempt
     FROM events e WHERE e.created_at >= $1 AND e.created_at < $2`,
    [from, to],
  );
  return (rows as Array<{ id: string; created_at: Date; first_attempt: Date | null }>).map((r) => ({
    id: r.id,
    createdAt: r.created_at.getTime(),
    firstAttemptAt: r.first_attempt ? r.first_attempt.getTime() : null,
  }));
}

/** Commit → first arrival at the receiver, over `events`; those that never arrived are `missed`. */
function lateness(events: EventTimes[], first: Map<string, number>) {
  const ms: number[] = [];
  let missed = 0;
  for (const e of events) {
    const at = first.get(e.id);
    if (at === undefined) missed++;
    else ms.push(at - e.createdAt);
  }
  return { ms: summarize(ms), missed };
}

/**
 * Cores per component between two readings, and `others`: the machine's busy cores that none of
 * them used (processes outside this run share the machine too).
 */
function coresOf(a: Cores, b: Cores, seconds: number): Cores {
  const cores = coresBetween(a, b, seconds);
  const ours = Object.entries(cores)
    .filter(([name]) => name !== 'machine')
    .reduce((sum, [, c]) => sum + c, 0);
  return { ...cores, others: round(Math.max(0, (cores.machine ?? 0) - ours), 2) };
}

/** CPU microseconds of component `name` per unit between two readings. */
const usPer = (a: Cores, b: Cores, name: string, units: number) =>
  round((((b[name] ?? 0) - (a[name] ?? 0)) * 1e6) / Math.max(1, units));

const pendingDeliveries = async (bench: Bench) =>
  Number(
    (
      (
        await bench.sql.query(
          "/* bench: */ SELECT count(*) AS n FROM webhook_deliveries WHERE state = 'pending'",
        )
      ).rows[0] as { n: string }
    ).n,
  );

async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
  everyMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`(j) timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The receiver process

interface Arrivals {
  /** Event id → when the receiver first answered it 2xx (its clock). */
  first: Map<string, number>;
  /** The latest such arrival. */
  last: number;
  duplicates: number;
  unverified: number;
  /** POSTs of the bare loop (webhook-id ref_…). */
  reference: number;
  reset(): void;
}

interface Receiver {
  url: string;
  pid(): number;
  arrivals: Arrivals;
  setSecrets(secrets: string[]): Promise<void>;
  /** Killed at once, as a server that crashes: connections reset, then refused. */
  kill(): Promise<void>;
  /** Started again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

async function startReceiver(bench: Bench, port: number): Promise<Receiver> {
  const arrivals: Arrivals = {
    first: new Map(),
    last: 0,
    duplicates: 0,
    unverified: 0,
    reference: 0,
    reset() {
      this.first.clear();
      this.last = 0;
      this.duplicates = 0;
      this.unverified = 0;
      this.reference = 0;
    },
  };
  let secrets: string[] = [];
  const base = `http://127.0.0.1:${port}`;
  const start = async (): Promise<Child> => {
    const child = bench.processes.startChild(
      'devstack/webhook-receiver.main.ts',
      {},
      [],
      ['--port', String(port)],
    );
    const listening = new Promise<void>((resolve) =>
      child.onLine((line) => {
        if (line.startsWith('listening ')) resolve();
      }),
    );
    child.onLine((line) => {
      if (!line.startsWith('{')) return;
      const w = JSON.parse(line) as ReceivedWebhook;
      if (w.id.startsWith('ref_')) {
        arrivals.reference++;
        return;
      }
      if (w.answered < 200 || w.answered >= 300) return;
      if (secrets.length > 0 && !w.verified) arrivals.unverified++;
      if (arrivals.first.has(w.id)) arrivals.duplicates++;
      else arrivals.first.set(w.id, w.at);
      if (w.at > arrivals.last) arrivals.last = w.at;
    });
    await Promise.race([
      listening,
      sleep(30_000).then(() => {
        throw new Error(`the webhook receiver did not start:\n${child.tail()}`);
      }),
    ]);
    return child;
  };
  let child = await start();
  const setSecrets = async (next: string[]) => {
    const res = await fetch(`${base}/_receiver/secrets`, { method: 'PUT', body: JSON.stringify(next) });
    if (res.status !== 204) throw new Error(`receiver secrets: ${res.status}`);
    secrets = next;
  };
  return {
    url: `${base}/webhooks`,
    pid: () => child.pid,
    arrivals,
    setSecrets,
    async kill() {
      await child.stop('SIGKILL', 2_000);
    },
    async restart() {
      child = await start();
      if (secrets.length > 0) await setSecrets(secrets);
    },
    stop: () => bench.processes.stopChild(child),
  };
}

/** The lines `npm run bench` ends with for (j). */
export function webhookLines(stage: WebhookStage): string[] {
  const { latency: l, throughput: t, backlog: b } = stage;
  return [
    `webhook_commit_to_attempt_p50_ms=${round(l.commitToReceivedMs.p50)}`,
    `webhook_commit_to_attempt_p99_ms=${round(l.commitToReceivedMs.p99)}`,
    `webhook_deliveries_per_s=${t.dispatcher.perSecond}`,
    `webhook_worker_cpu_us_per_delivery=${t.dispatcher.workerCpuUsPerDelivery}`,
    `webhook_postgres_cpu_us_per_delivery=${t.dispatcher.postgresCpuUsPerDelivery}`,
    `webhook_bare_post_per_s=${t.bare.perSecond}`,
    `webhook_bare_post_cpu_us=${t.bare.cpuUsPerRequest}`,
    `webhook_backlog_${b.queued}_drain_per_s=${b.drain.perSecond}`,
    `webhook_backlog_live_p99_ms=${round(b.live.duringDrainMs.p99)}`,
  ];
}
