/**
 * The webhook side of `npm run chaos` (scripts/chaos.ts): the merchant's receiver in a process of
 * its own that the run kills, restarts and misbehaves, with what it received kept in a file across
 * its restarts; and the checks of the outbox and of delivery against that file and the database.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ReceivedWebhook, ReceiverBehaviour } from '../devstack/webhook-receiver.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface ChaosReceiver {
  url: string;
  port: number;
  /** Where the receiver's processes print their delivery lines, one JSON object a line. */
  logFile: string;
  /** How many times it was started (1 at first). */
  starts: number;
  /** Starts the receiver on its port (it must not be running); resolves once it answers. */
  start(): Promise<void>;
  /** SIGKILL, as a server that goes down: nothing is closed in order. */
  kill(): Promise<void>;
  setBehaviour(behaviour: ReceiverBehaviour): Promise<void>;
  /** Every delivery line of every process so far. */
  received(): ReceivedWebhook[];
}

/**
 * A receiver (devstack/webhook-receiver.main.ts) on `port` that verifies with `secret` from its
 * first delivery (WEBHOOK_RECEIVER_SECRETS), its stdout appended to `logFile`. Not started yet.
 */
export function chaosReceiver(o: {
  root: string;
  port: number;
  secret: string;
  logFile: string;
}): ChaosReceiver {
  const base = `http://127.0.0.1:${o.port}`;
  let child: ChildProcess | undefined;
  const put = (path: string, body: unknown) =>
    fetch(`${base}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  const receiver: ChaosReceiver = {
    url: `${base}/webhooks`,
    port: o.port,
    logFile: o.logFile,
    starts: 0,
    async start() {
      if (child && child.exitCode === null && child.signalCode === null)
        throw new Error('the receiver is running');
      const out = openSync(o.logFile, 'a');
      try {
        child = spawn(
          process.execPath,
          ['--import', 'tsx', join(o.root, 'devstack/webhook-receiver.main.ts'), '--port', String(o.port)],
          {
            cwd: o.root,
            env: { ...process.env, WEBHOOK_RECEIVER_SECRETS: o.secret },
            stdio: ['ignore', out, 'inherit'],
          },
        );
      } finally {
        closeSync(out); // the child has its own
      }
      const started = child;
      receiver.starts++;
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (started.exitCode !== null || started.signalCode !== null)
          throw new Error(`the webhook receiver exited at start (${started.exitCode ?? started.signalCode})`);
        try {
          // Ready once it answers; its behaviour is 204 to every delivery.
          if ((await put('/_receiver/behaviour', { kind: 'ok' })).status === 204) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`the webhook receiver did not listen on ${base} in 30 s`);
        await sleep(100);
      }
    },
    async kill() {
      const running = child;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      const exited = new Promise((r) => running.once('exit', r));
      running.kill('SIGKILL');
      await exited;
    },
    async setBehaviour(behaviour) {
      const res = await put('/_receiver/behaviour', behaviour);
      if (res.status !== 204) throw new Error(`receiver behaviour: ${res.status}`);
    },
    received() {
      return readReceiverLog(o.logFile);
    },
  };
  return receiver;
}

/** The delivery lines of a receiver log (other lines, like `listening <port>`, are skipped). */
export function readReceiverLog(file: string): ReceivedWebhook[] {
  if (!existsSync(file)) return [];
  const received: ReceivedWebhook[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      received.push(JSON.parse(line) as ReceivedWebhook);
    } catch {
      // a line cut short by a kill: that delivery was not answered either
    }
  }
  return received;
}

/** The statuses merchants are told of (the outbox trigger's, migration event_outbox). */
export const EVENT_STATUSES = ['awaiting_approval', 'succeeded', 'declined', 'expired', 'failed', 'canceled'];

/** A status a checkout entered, as its timeline records it (a checkout_events row of a transition). */
export interface StatusChange {
  checkoutId: string;
  status: string;
}

export interface EventRow {
  id: string;
  type: string;
  checkoutId: string;
  /** The status the event's checkout object carries. */
  status: string | null;
}

export interface EventChecks {
  /** Committed changes into an event status without an event. */
  missing: number;
  /** Events for no committed change, a second event for one change, or carrying another status than their type. */
  invented: number;
  /** Events (of a type the endpoint takes) the receiver never accepted: verified and answered 2xx. */
  undelivered: number;
  /** Accepted deliveries beyond the first of each event. */
  duplicates: number;
  /** Deliveries whose signature did not verify. */
  unverified: number;
  /** Deliveries of no event row, or whose body names another checkout or status than that event. */
  unknown: number;
  /** Deliveries the receiver answered other than 2xx (the outages), or not at all. */
  refused: number;
  received: number;
}

/**
 * The outbox's promise (an event if and only if the change committed: `changes` against
 * `events`) and delivery's (every event accepted at least once: `events` against `received`, the
 * receiver's own log). `subscribed` is the endpoint's event types (null: no endpoint, delivery
 * not checked).
 */
export function checkEvents(
  changes: readonly StatusChange[],
  events: readonly EventRow[],
  received: readonly ReceivedWebhook[],
  subscribed: readonly string[] | null,
): EventChecks {
  const key = (checkoutId: string, status: string) => `${checkoutId} ${status}`;
  const changed = new Set(
    changes.filter((c) => EVENT_STATUSES.includes(c.status)).map((c) => key(c.checkoutId, c.status)),
  );
  const eventsOf = new Map<string, number>();
  let invented = 0;
  for (const e of events) {
    const status = e.type.replace(/^checkout\./, '');
    const k = key(e.checkoutId, status);
    const n = (eventsOf.get(k) ?? 0) + 1;
    eventsOf.set(k, n);
    if (!changed.has(k) || n > 1 || e.status !== status) invented++;
  }
  const missing = [...changed].filter((k) => !eventsOf.has(k)).length;

  const byId = new Map(events.map((e) => [e.id, e]));
  const accepted = new Map<string, number>();
  let unverified = 0;
  let unknown = 0;
  let refused = 0;
  for (const w of received) {
    const event = byId.get(w.id);
    if (!w.verified) unverified++;
    if (
      !event ||
      w.type !== event.type ||
      w.checkoutId !== event.checkoutId ||
      w.checkoutStatus !== event.type.replace(/^checkout\./, '')
    ) {
      unknown++;
      continue;
    }
    if (w.verified && w.answered >= 200 && w.answered < 300)
      accepted.set(w.id, (accepted.get(w.id) ?? 0) + 1);
    else refused++;
  }
  const due = subscribed ? events.filter((e) => subscribed.includes(e.type)) : [];
  return {
    missing,
    invented,
    undelivered: due.filter((e) => !accepted.has(e.id)).length,
    duplicates: [...accepted.values()].reduce((sum, n) => sum + n - 1, 0),
    unverified,
    unknown,
    refused,
    received: received.length,
  };
}
