/**
 * Live status inside one API process (DESIGN.md §7.2): who follows which checkout (held reads and
 * streams), and the reads that tell them it changed.
 *
 * Fan-out across processes is PostgreSQL LISTEN/NOTIFY: a trigger on `checkouts` (migration
 * `checkout_changed_notify`) sends the id of a checkout whose visible state changed on the channel
 * `checkout_changed`, from inside the transaction that changed it, so PostgreSQL delivers it to
 * every API process only once that transaction commits (never for a change rolled back) and needs
 * no other moving part, whichever queue backend runs (Redis pub/sub would add a second message
 * published by the application beside the commit, which could announce a change that then rolled
 * back, or be lost when the process dies between the two). Each process holds one LISTEN
 * connection (src/infra/pg-listen.ts) for all its followers.
 *
 * The notification carries the id only: what a follower is sent is always the row read from
 * PostgreSQL afterwards. So a lost notification only delays an update: every watched checkout is
 * read again every `recheckMs`, and all of them at once whenever LISTEN (re)starts, since
 * PostgreSQL keeps nothing for a session that was not listening.
 *
 * Reads are shared and ordered per checkout: one read at a time per checkout id, its result
 * handed to every follower of that id (10,000 streams on one checkout cost one query per change,
 * not 10,000), and a notification arriving during a read causes one more read after it. Each read
 * starts after the previous one of that id ended, so later reads never see an older state (with
 * pooled connections, two concurrent reads could be answered out of order).
 */
import type { NotificationSource } from '../infra/pg-listen.ts';
import type { CheckoutRepository, CheckoutRow } from './checkout.repository.ts';
import type { CheckoutView } from './checkout.schemas.ts';
import { checkoutVersion, retryAfterSeconds, toView } from './checkout.service.ts';
import { type CheckoutStatus, isTerminal } from './checkout.states.ts';

/** The NOTIFY channel the trigger of migration `checkout_changed_notify` sends checkout ids on. */
export const CHECKOUT_CHANGED_CHANNEL = 'checkout_changed';

/** Ids per read in the periodic and reconnection sweeps (one `= ANY($1)` query each). */
const SWEEP_BATCH = 500;

/** A checkout as read at one moment: what a follower is sent. */
export interface CheckoutState {
  /** The checkout without its timeline (the §2 object). */
  view: CheckoutView;
  /** `checkoutVersion(view)`: the ETag and the stream event id. */
  version: string;
  terminal: boolean;
  /** `Retry-After` seconds at `now` (epoch ms) while not terminal, as the plain read answers. */
  retryAfter(now?: number): number | undefined;
}

export interface FollowHandlers {
  /** The checkout changed: its new state (never the same version twice in a row). */
  changed(state: CheckoutState): void;
  /** The process is shutting down: end now. */
  closing(): void;
}

export interface Following {
  /** The checkout as read after following began; null when there is no such checkout (nothing is followed). */
  readonly current: CheckoutState | null;
  /** Stops following (idempotent). */
  stop(): void;
}

interface WatchLog {
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CheckoutWatchOptions {
  checkouts: Pick<CheckoutRepository, 'findMany'>;
  /** Change notifications (PostgreSQL LISTEN on CHECKOUT_CHANGED_CHANNEL): started at the first follower. */
  source: NotificationSource;
  /** Every watched checkout is read again this often (ms), whatever the notifications said. */
  recheckMs: number;
  log?: WatchLog;
}

interface Follower {
  handlers: FollowHandlers;
  /** Reads started after this sequence number saw everything committed before the follower came. */
  after: number;
  first: { resolve(state: CheckoutState | null): void; reject(error: unknown): void };
}

/**
 * The followers of one checkout. Every follower that has had its first state is `active` and has
 * had every state since, so all of them are at `version`: a read that finds the same version is
 * handed to none of them, however many there are.
 */
interface Entry {
  active: Set<Follower>;
  /** Followers waiting for their first state (from a read that began after they came). */
  arriving: Set<Follower>;
  /** The version the active followers have. */
  version: string | undefined;
  reading: boolean;
  /** Something may have changed since the current read began: read once more after it. */
  again: boolean;
}

/** A promise with its resolve and reject functions. */
function deferred<T>(): { promise: Promise<T>; resolve(value: T): void; reject(error: unknown): void } {
  let resolve: (value: T) => void = () => {};
  let reject: (error: unknown) => void = () => {};
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

function stateOf(row: CheckoutRow): CheckoutState {
  const view = toView(row);
  return {
    view,
    version: checkoutVersion(view),
    terminal: isTerminal(view.status as CheckoutStatus),
    retryAfter: (now = Date.now()) => retryAfterSeconds(row, now),
  };
}

/** The followers of checkouts in one API process (see the file comment). */
export class CheckoutWatch {
  readonly #options: CheckoutWatchOptions;
  readonly #entries = new Map<string, Entry>();
  #seq = 0;
  #started = false;
  #closing = false;
  #sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: CheckoutWatchOptions) {
    this.#options = options;
  }

  /** True once `shutdown` was called. */
  get closing(): boolean {
    return this.#closing;
  }

  /** How many checkouts are followed, and by how many followers in all. */
  get size(): { checkouts: number; followers: number } {
    let followers = 0;
    for (const entry of this.#entries.values()) followers += entry.active.size + entry.arriving.size;
    return { checkouts: this.#entries.size, followers };
  }

  /**
   * Follows checkout `id`: reads it (a read that began after following did, so no change can fall
   * between the two), then calls `handlers.changed` with each later state of another version until
   * `stop()`. Rejects when the first read fails (PostgreSQL unreachable); later failed reads are
   * retried by the next sweep.
   */
  async follow(id: string, handlers: FollowHandlers): Promise<Following> {
    this.#start();
    let entry = this.#entries.get(id);
    if (!entry) {
      entry = { active: new Set(), arriving: new Set(), version: undefined, reading: false, again: false };
      this.#entries.set(id, entry);
    }
    const first = deferred<CheckoutState | null>();
    const follower: Follower = { handlers, after: this.#seq, first };
    entry.arriving.add(follower);
    const stop = () => this.#unfollow(id, follower);
    this.#refresh([id]);
    let current: CheckoutState | null;
    try {
      current = await first.promise;
    } catch (error) {
      stop();
      throw error;
    }
    if (!current) {
      stop();
      return { current, stop() {} };
    }
    if (this.#closing) queueMicrotask(() => follower.handlers.closing());
    return { current, stop };
  }

  /**
   * Waits until checkout `id` has a version other than `version` (a held read), at most
   * `timeoutMs`, or until the process shuts down, or until the caller gives up: `onAbandon` is
   * handed a function to call then (e.g. when the client went away). Resolves with the newest
   * state read by then: one of another version when it changed, else one of `version`; null when
   * there is no such checkout. Rejects when the first read fails.
   */
  async waitForChange(
    id: string,
    version: string,
    timeoutMs: number,
    onAbandon?: (abandon: () => void) => void,
  ): Promise<CheckoutState | null> {
    let settle: (state: CheckoutState | null) => void = () => {};
    const settled = new Promise<CheckoutState | null>((resolve) => {
      settle = resolve;
    });
    let current: CheckoutState | null = null;
    let done = false;
    onAbandon?.(() => {
      done = true;
      settle(current);
    });
    const following = await this.follow(id, {
      changed: (state) => settle(state),
      closing: () => {
        done = true;
        if (current) settle(current);
      },
    });
    current = following.current;
    if (!current || current.version !== version || done || this.#closing) {
      following.stop();
      return current;
    }
    const timer = setTimeout(() => settle(current), timeoutMs);
    try {
      return await settled;
    } finally {
      clearTimeout(timer);
      following.stop();
    }
  }

  /**
   * Shutdown: every follower is told to finish (`closing`), and so is any that starts from now
   * on. The notifications and sweeps go on until `close`, so held reads answer what is current.
   */
  shutdown(): void {
    if (this.#closing) return;
    this.#closing = true;
    for (const entry of this.#entries.values()) {
      for (const follower of entry.active) this.#call(follower, 'closing');
    }
  }

  /** Stops the sweeps and the notifications (after `shutdown`, once the followers are gone). */
  async close(): Promise<void> {
    this.#closing = true;
    clearInterval(this.#sweepTimer);
    await this.#options.source.close();
  }

  /** Notifications are started with the first follower: a process nobody follows from holds no connection. */
  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#options.source.start({
      notified: (id) => this.#refresh([id]),
      // LISTEN (re)started: whatever changed while nobody listened was not announced.
      resync: () => this.#refresh([...this.#entries.keys()]),
    });
    this.#sweepTimer = setInterval(() => this.#refresh([...this.#entries.keys()]), this.#options.recheckMs);
    this.#sweepTimer.unref();
  }

  #unfollow(id: string, follower: Follower): void {
    const entry = this.#entries.get(id);
    if (!entry) return;
    entry.active.delete(follower);
    entry.arriving.delete(follower);
    if (entry.active.size === 0 && entry.arriving.size === 0 && !entry.reading) this.#entries.delete(id);
  }

  /** Reads the followed ones of `ids` now, or right after the read of each already under way. */
  #refresh(ids: readonly string[]): void {
    const ready: string[] = [];
    for (const id of ids) {
      const entry = this.#entries.get(id);
      if (!entry) continue;
      if (entry.reading) {
        entry.again = true;
      } else {
        entry.reading = true;
        ready.push(id);
      }
    }
    for (let i = 0; i < ready.length; i += SWEEP_BATCH) void this.#read(ready.slice(i, i + SWEEP_BATCH));
  }

  async #read(ids: string[]): Promise<void> {
    const seq = ++this.#seq;
    let rows: Map<string, CheckoutRow> | undefined;
    let failure: unknown;
    try {
      rows = new Map((await this.#options.checkouts.findMany(ids)).map((row) => [row.id, row]));
    } catch (error) {
      failure = error;
      this.#options.log?.warn(
        { err: (error as Error).message, checkouts: ids.length },
        'live status: could not read followed checkouts; the next sweep retries',
      );
    }
    const again: string[] = [];
    for (const id of ids) {
      const entry = this.#entries.get(id);
      if (!entry) continue;
      entry.reading = false;
      if (rows) {
        const row = rows.get(id);
        this.#deliver(entry, seq, row ? stateOf(row) : null);
      } else {
        this.#fail(entry, seq, failure);
      }
      if (entry.again) {
        entry.again = false;
        again.push(id);
      } else if (entry.active.size === 0 && entry.arriving.size === 0) {
        this.#entries.delete(id);
      }
    }
    if (again.length > 0) this.#refresh(again);
  }

  #deliver(entry: Entry, seq: number, state: CheckoutState | null): void {
    if (state && state.version !== entry.version) {
      entry.version = state.version;
      for (const follower of entry.active) this.#call(follower, 'changed', state);
    }
    for (const follower of entry.arriving) {
      // Its first state must come from a read that began after it arrived.
      if (seq <= follower.after) continue;
      entry.arriving.delete(follower);
      if (state) entry.active.add(follower);
      follower.first.resolve(state);
    }
  }

  /** A read failed: followers still waiting for a first state from it get the error. */
  #fail(entry: Entry, seq: number, error: unknown): void {
    for (const follower of entry.arriving) {
      if (seq <= follower.after) continue;
      entry.arriving.delete(follower);
      follower.first.reject(error);
    }
  }

  #call(follower: Follower, what: 'changed' | 'closing', state?: CheckoutState): void {
    try {
      if (what === 'changed' && state) follower.handlers.changed(state);
      else if (what === 'closing') follower.handlers.closing();
    } catch (error) {
      this.#options.log?.error({ err: error }, 'live status: a follower failed');
    }
  }
}
