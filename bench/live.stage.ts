/**
 * (h) Live status on one API process (issue 14): N open streams (GET /v1/checkouts/{id}/stream),
 * then N held reads (If-None-Match + Prefer: wait=30), all following one checkout, as browsers
 * would with its clientSecret. Per kind: the API's RSS per open connection, and the fan-out of one
 * committed change to all N: from just before the UPDATE (autocommit; the trigger's NOTIFY goes
 * out with the commit) to each client having the new event, or the 200 of its held read. One
 * change to warm up, then ROUNDS measured; the percentiles are over every client of every
 * measured round. Held reads are sent again after each change, with the new ETag.
 *
 * The clients are this process (node:http, one socket each; stream bodies fed to
 * eventsource-parser), on the same two cores as the API and PostgreSQL: their own CPU is in the
 * latency. No worker runs: the change is an `updated_at` bump in SQL, which readers see as a new
 * state (a new ETag and event) like any transition.
 */
import { Agent, get, type IncomingMessage } from 'node:http';
import { performance } from 'node:perf_hooks';
import { createParser } from 'eventsource-parser';
import { type Bench, log } from './bench.context.ts';
import { type Created, createViaApi } from './checkouts.ts';
import { cpuSeconds, round, rssBytes, sleep, summarize } from './lib.ts';

export interface LiveRun {
  n: number;
  /** Seconds to open all N (the first event of each stream; each held read sent and idle). */
  openSeconds: number;
  /** API RSS growth per open stream or held read, bytes. */
  rssPerConnection: number;
  apiRssMiB: number;
  fanoutMs: { n: number; p50: number; p99: number; max: number };
  /** Clients that did not get the change within the round's deadline (or got a 304). */
  missed: number;
  /** API process CPU per round (ms): reading the change and answering all N. */
  apiCpuMsPerRound: number;
}

export interface LiveStage {
  streams: LiveRun;
  heldReads: LiveRun;
}

/** Measured changes per kind, after one that is not measured (the first fan-out warms the code up). */
const ROUNDS = 5;
/** Connections opened at once (below the listen backlog, 511). */
const BATCH = 250;
const ROUND_DEADLINE_MS = 20_000;

/** How far `n` fits here: each connection is a socket in both processes (20,000 descriptors each). */
export const liveConnections = (requested: number) => Math.min(requested, 15_000);

interface StreamClient {
  res: IncomingMessage;
  /** Arrival of each `checkout` event (performance.now()). */
  events: number[];
}

function openStream(agent: Agent, url: string, onEvent: () => void): Promise<StreamClient> {
  return new Promise((resolve, reject) => {
    const request = get(url, { agent }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        reject(new Error(`stream: ${res.statusCode}`));
        return;
      }
      const client: StreamClient = { res, events: [] };
      const parser = createParser({
        onEvent: (event) => {
          if (event.event !== 'checkout') return;
          client.events.push(performance.now());
          if (client.events.length === 1) resolve(client);
          else onEvent();
        },
      });
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => parser.feed(chunk));
    });
    request.on('error', reject);
  });
}

interface HeldRead {
  /** Resolves once the request is on the wire. */
  sent: Promise<void>;
  answer: Promise<{ status: number; at: number; etag: string }>;
}

function holdRead(agent: Agent, url: string, clientSecret: string, etag: string): HeldRead {
  let sent: () => void = () => {};
  const sentPromise = new Promise<void>((r) => {
    sent = r;
  });
  const answer = new Promise<{ status: number; at: number; etag: string }>((resolve, reject) => {
    const request = get(
      url,
      {
        agent,
        headers: { authorization: `Bearer ${clientSecret}`, 'if-none-match': etag, prefer: 'wait=30' },
      },
      (res) => {
        const at = performance.now();
        res.resume();
        resolve({ status: res.statusCode ?? 0, at, etag: String(res.headers.etag ?? '') });
      },
    );
    request.on('finish', () => sent());
    request.on('error', reject);
  });
  return { sent: sentPromise, answer };
}

/** Waits until the API process has been nearly idle for a moment (all it was sent is taken in). */
async function apiIdle(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const before = cpuSeconds(pid);
    await sleep(300);
    if (cpuSeconds(pid) - before < 0.02) return;
  }
}

async function change(bench: Bench, id: string): Promise<number> {
  const t0 = performance.now();
  await bench.sql.query('UPDATE checkouts SET updated_at = clock_timestamp() WHERE id = $1', [id]);
  return t0;
}

async function currentETag(url: string, clientSecret: string): Promise<string> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${clientSecret}` } });
  await res.arrayBuffer();
  return res.headers.get('etag') ?? '';
}

async function measureStreams(bench: Bench, api: { url: string; pid: number }, one: Created, n: number) {
  const agent = new Agent({ keepAlive: false, maxSockets: Number.POSITIVE_INFINITY });
  const url = `${api.url}/v1/checkouts/${one.id}/stream?client_secret=${encodeURIComponent(one.clientSecret)}`;
  let pending = 0;
  let roundDone: () => void = () => {};
  const onEvent = () => {
    pending -= 1;
    if (pending === 0) roundDone();
  };
  // Warm-up (JIT, pools), then the baseline.
  const warm = await Promise.all(Array.from({ length: 100 }, () => openStream(agent, url, () => {})));
  for (const c of warm) c.res.destroy();
  await apiIdle(api.pid);
  const base = rssBytes(api.pid);
  const started = performance.now();
  const clients: StreamClient[] = [];
  for (let i = 0; i < n; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, n - i) }, () => openStream(agent, url, onEvent));
    clients.push(...(await Promise.all(batch)));
  }
  const openSeconds = (performance.now() - started) / 1000;
  await apiIdle(api.pid);
  const after = rssBytes(api.pid);
  log(`(h) ${n} streams open in ${round(openSeconds, 1)} s; API RSS ${round(after / 2 ** 20)} MiB`);
  const latencies: number[] = [];
  let missed = 0;
  let apiCpu = 0;
  for (let r = 0; r <= ROUNDS; r++) {
    pending = n;
    const done = new Promise<void>((resolve) => {
      roundDone = resolve;
    });
    const cpu = cpuSeconds(api.pid);
    const t0 = await change(bench, one.id);
    await Promise.race([done, sleep(ROUND_DEADLINE_MS)]);
    if (r > 0) {
      apiCpu += cpuSeconds(api.pid) - cpu;
      for (const c of clients) {
        // events[0] is the checkout as it was when the stream opened, events[1] the warm-up change.
        const at = c.events[r + 1];
        if (at === undefined) missed += 1;
        else latencies.push(at - t0);
      }
    }
    await apiIdle(api.pid);
  }
  for (const c of clients) c.res.destroy();
  agent.destroy();
  return {
    n,
    openSeconds: round(openSeconds, 1),
    rssPerConnection: round((after - base) / n),
    apiRssMiB: round(after / 2 ** 20, 1),
    fanoutMs: roundMs(summarize(latencies)),
    missed,
    apiCpuMsPerRound: round((apiCpu * 1000) / ROUNDS),
  };
}

async function measureHeldReads(bench: Bench, api: { url: string; pid: number }, one: Created, n: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: n + 100 });
  const url = `${api.url}/v1/checkouts/${one.id}`;
  const warm = Array.from(
    { length: 100 },
    async () => holdRead(agent, url, one.clientSecret, 'W/"x"').answer,
  );
  await Promise.all(warm);
  let etag = await currentETag(url, one.clientSecret);
  await apiIdle(api.pid);
  const base = rssBytes(api.pid);
  const latencies: number[] = [];
  let missed = 0;
  let apiCpu = 0;
  let openSeconds = 0;
  let after = base;
  for (let r = 0; r <= ROUNDS; r++) {
    const started = performance.now();
    const reads: HeldRead[] = [];
    for (let i = 0; i < n; i += BATCH) {
      const batch = Array.from({ length: Math.min(BATCH, n - i) }, () =>
        holdRead(agent, url, one.clientSecret, etag),
      );
      reads.push(...batch);
      await Promise.all(batch.map((b) => b.sent));
    }
    await apiIdle(api.pid);
    if (r === 0) {
      openSeconds = (performance.now() - started) / 1000;
      after = rssBytes(api.pid);
      log(`(h) ${n} held reads in ${round(openSeconds, 1)} s; API RSS ${round(after / 2 ** 20)} MiB`);
    }
    const cpu = cpuSeconds(api.pid);
    const t0 = await change(bench, one.id);
    const answers = await Promise.all(reads.map((h) => h.answer));
    if (r > 0) {
      apiCpu += cpuSeconds(api.pid) - cpu;
      for (const a of answers) {
        if (a.status === 200) latencies.push(a.at - t0);
        else missed += 1;
      }
    }
    etag = answers.find((a) => a.status === 200)?.etag ?? (await currentETag(url, one.clientSecret));
    await apiIdle(api.pid);
  }
  agent.destroy();
  return {
    n,
    openSeconds: round(openSeconds, 1),
    rssPerConnection: round((after - base) / n),
    apiRssMiB: round(after / 2 ** 20, 1),
    fanoutMs: roundMs(summarize(latencies)),
    missed,
    apiCpuMsPerRound: round((apiCpu * 1000) / ROUNDS),
  };
}

const roundMs = (s: ReturnType<typeof summarize>) => ({
  n: s.n,
  p50: round(s.p50),
  p99: round(s.p99),
  max: round(s.max),
});

/** (h): a fresh API process with the live limits lifted to N, no worker. */
export async function measureLive(bench: Bench, requested: number): Promise<LiveStage> {
  const n = liveConnections(requested);
  if (n < requested) log(`(h) ${requested} connections do not fit here; measuring ${n}`);
  const limit = String(n + 1_000);
  const api = await bench.processes.startApi({
    QUEUE_PREFIX: 'live',
    LIVE_MAX_STREAMS: limit,
    LIVE_MAX_HELD_READS: limit,
    LIVE_MAX_PER_CLIENT_SECRET: limit,
  });
  try {
    const target = { url: api.url, pid: api.child.pid };
    const forStreams = await createViaApi(bench, api.url, 0);
    const forReads = await createViaApi(bench, api.url, 1);
    if (!forStreams || !forReads) throw new Error('(h) could not create the checkouts to follow');
    const streams = await measureStreams(bench, target, forStreams, n);
    log(`(h) streams: ${JSON.stringify(streams)}`);
    const heldReads = await measureHeldReads(bench, target, forReads, n);
    log(`(h) held reads: ${JSON.stringify(heldReads)}`);
    return { streams, heldReads };
  } finally {
    await bench.processes.stopChild(api.child);
  }
}

/** The stage's figures as `key=value` lines. */
export function liveLines(stage: LiveStage): string[] {
  const { streams: s, heldReads: h } = stage;
  return [
    `live_streams=${s.n}`,
    `live_stream_rss_per_stream_bytes=${s.rssPerConnection}`,
    `live_stream_fanout_p50_ms=${s.fanoutMs.p50}`,
    `live_stream_fanout_p99_ms=${s.fanoutMs.p99}`,
    `live_stream_fanout_max_ms=${s.fanoutMs.max}`,
    `live_stream_missed=${s.missed}`,
    `live_stream_api_cpu_ms_per_fanout=${s.apiCpuMsPerRound}`,
    `live_held_reads=${h.n}`,
    `live_held_read_rss_per_read_bytes=${h.rssPerConnection}`,
    `live_held_read_fanout_p50_ms=${h.fanoutMs.p50}`,
    `live_held_read_fanout_p99_ms=${h.fanoutMs.p99}`,
    `live_held_read_fanout_max_ms=${h.fanoutMs.max}`,
    `live_held_read_missed=${h.missed}`,
    `live_held_read_api_cpu_ms_per_fanout=${h.apiCpuMsPerRound}`,
  ];
}
