/**
 * The command line of `npm run bench` and the plan it implies (run lengths, K values, windows,
 * deadlines), read once so that every stage sizes itself from the same figures.
 */
import { parseArgs } from 'node:util';

export const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    /** A tiny run that only checks the script works end to end (a few checkouts, 1 s runs). */
    smoke: { type: 'boolean', default: false },
    k: { type: 'string' },
    'naive-k': { type: 'string' },
    /** K values of (h), CIBA ping mode against poll mode ('' for none). */
    'ping-k': { type: 'string' },
    'no-profile': { type: 'boolean', default: false },
    json: { type: 'string' },
    'worker-concurrency': { type: 'string' },
    'direct-from': { type: 'string' },
    'no-analyze': { type: 'boolean', default: false },
    /** Only the pending-checkout stages (c)–(f): no autocannon runs, no create profile. */
    'skip-http': { type: 'boolean', default: false },
    /** Run the worker of each (c) stage under --cpu-prof and summarize its window (skews (c)). */
    'profile-worker': { type: 'boolean', default: false },
    /** Profile this process (the sandbox bank, and the bench's sampling) during each (c) window. */
    'profile-bank': { type: 'boolean', default: false },
    /** Open streams and held reads of (h) (default 10,000; 2,000 with --quick). */
    live: { type: 'string' },
    /** Only (h), the live status stage. */
    'live-only': { type: 'boolean', default: false },
    /** Only (j), the webhook stage. */
    'webhooks-only': { type: 'boolean', default: false },
    /** Queued events of (j)'s backlog drain (default 50,000; 10,000 with --quick). */
    'webhook-backlog': { type: 'string' },
  },
});
const SMOKE = flags.smoke ?? false;
export const SKIP_HTTP = flags['skip-http'] ?? false;
export const QUICK = (flags.quick ?? false) || SMOKE;
export const LIVE_ONLY = flags['live-only'] ?? false;
export const WEBHOOKS_ONLY = flags['webhooks-only'] ?? false;
const list = (s: string | undefined, d: number[]) =>
  s === undefined ? d : s === '' ? [] : s.split(',').map((x) => Number(x.trim()));

export const plan = {
  /** autocannon seconds per measured run, and per warm-up. */
  duration: SMOKE ? 1 : QUICK ? 2 : 6,
  warmup: 1,
  connections: SKIP_HTTP ? [] : SMOKE ? [1, 16] : [1, 16, 64],
  ks: list(flags.k, SMOKE ? [20] : QUICK ? [1_000] : [1_000, 10_000]),
  naiveKs: list(flags['naive-k'], SMOKE ? [20] : QUICK ? [] : [1_000, 10_000]),
  pingKs: list(flags['ping-k'], SMOKE ? [20] : [1_000]),
  /** Seconds of steady state measured per K. */
  window: (k: number) => (SMOKE ? 11 : QUICK ? 9 : k >= 10_000 ? 30 : 20),
  /** Seconds between "all awaiting approval" and the window: the polls bunched by the ramp (the
   * worker was starting the last checkouts while the first were due) spread out first. */
  settle: (k: number) => (QUICK ? 0 : k >= 10_000 ? 15 : 5),
  approvals: (k: number) => Math.min(QUICK ? 20 : 100, Math.floor(k / 10)),
  /** (h): streams, then held reads, open at once on one API process. */
  live: Number(flags.live ?? (SMOKE ? 100 : QUICK ? 2_000 : 10_000)),
  /** (j) webhooks: the sizes of its three measurements. */
  webhooks: {
    /** Status changes per second of (1) and of the live load during (3)'s drain. */
    rate: 100,
    /** Seconds of (1), commit → attempt. */
    latencySeconds: SMOKE ? 3 : QUICK ? 10 : 30,
    /** Deliveries due at once for (2), and POSTs of its bare reference loop. */
    throughput: SMOKE ? 500 : QUICK ? 10_000 : 30_000,
    /** Queued events of (3). */
    backlog: Number(flags['webhook-backlog'] ?? (SMOKE ? 1_000 : QUICK ? 10_000 : 50_000)),
    /** Longest the receiver stays down in (3) waiting for every queued delivery to fail once. */
    outageCapSeconds: SMOKE ? 10 : QUICK ? 20 : 45,
  },
  latenessSample: 300,
  profile: (!QUICK || SMOKE) && !flags['no-profile'] && !SKIP_HTTP,
  deadlineMs: QUICK ? 360_000 : 20 * 60_000,
  /** From this K on, checkouts are inserted straight into PostgreSQL and their ciba-start jobs
   * enqueued (what the API does, without its cost); below it they go through POST /v1/checkouts. */
  directFrom: Number(flags['direct-from'] ?? (QUICK ? 1_000 : 5_000)),
  /** Longest wait for every checkout to be awaiting approval (the worker's ciba-start rate). */
  rampCapMs: QUICK ? 30_000 : 150_000,
};

/** The sandbox bank's acknowledged interval: what "on time" means for a token poll. */
export const INTERVAL_MS = 5_000;
/** Every benchmark checkout is for this customer (a seeded one of the sandbox bank). */
export const LOGIN = 'alice';
