/**
 * One PostgreSQL LISTEN connection per process: a dedicated `pg.Client` (a pooled connection
 * cannot hold a LISTEN, the pool hands it to other queries), reconnected with backoff whenever it
 * drops. No HTTP semantics, no domain: it hands each notification's payload to its owner, and says
 * when notifications may have been missed (at every (re)connection: PostgreSQL does not keep them
 * for a session that was not listening), so the owner can read again whatever it watches.
 */
import pg from 'pg';

export interface ListenerLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

export interface NotificationHandlers {
  /** One notification on the channel, with its payload (NOTIFY's text, at most 8,000 bytes). */
  notified(payload: string): void;
  /**
   * LISTEN is active again (after the first connection too): anything sent meanwhile was not
   * heard, so whatever depends on the notifications should be read again now.
   */
  resync(): void;
}

/** Something that delivers change notifications to one owner, started on first use. */
export interface NotificationSource {
  /** Starts listening (idempotent; the first call's handlers are kept). Connects in the background. */
  start(handlers: NotificationHandlers): void;
  /** True while LISTEN is active. */
  readonly listening: boolean;
  /** Stops for good: closes the connection, cancels any reconnection. */
  close(): Promise<void>;
}

export interface PgListenerOptions {
  connectionString: string;
  /** The channel (a lower-case SQL identifier: it is written into LISTEN as is). */
  channel: string;
  log?: ListenerLog;
  /** First wait before reconnecting, ms; doubled after each failure up to `retryMaxMs`, ±20 %. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /**
   * A `SELECT 1` on the connection this often (ms): a connection that died without a word (a
   * firewall dropping idle flows, a failover) fails it and is replaced, instead of listening to
   * nothing until TCP gives up.
   */
  pingMs?: number;
}

const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

/** LISTEN on a dedicated connection that comes back by itself (see the file comment). */
export class PgListener implements NotificationSource {
  readonly #options: Required<Omit<PgListenerOptions, 'log'>> & { log: ListenerLog | undefined };
  #handlers: NotificationHandlers | undefined;
  #client: pg.Client | undefined;
  #listening = false;
  #closed = false;
  #failures = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  #pingTimer: NodeJS.Timeout | undefined;

  constructor(options: PgListenerOptions) {
    if (!CHANNEL.test(options.channel)) throw new Error(`not a channel name: ${options.channel}`);
    this.#options = {
      retryMinMs: 100,
      retryMaxMs: 5_000,
      pingMs: 30_000,
      ...options,
      log: options.log,
    };
  }

  get listening(): boolean {
    return this.#listening;
  }

  start(handlers: NotificationHandlers): void {
    if (this.#handlers || this.#closed) return;
    this.#handlers = handlers;
    void this.#connect();
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retryTimer);
    clearInterval(this.#pingTimer);
    this.#listening = false;
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => {});
  }

  async #connect(): Promise<void> {
    if (this.#closed) return;
    const client = new pg.Client({
      connectionString: this.#options.connectionString,
      connectionTimeoutMillis: 5_000,
      query_timeout: 10_000,
      keepAlive: true,
      // Named in pg_stat_activity, so an operator can tell it from the pool's connections.
      application_name: `bankpay-listen-${this.#options.channel}`.slice(0, 63),
    });
    this.#client = client;
    // Without an 'error' listener a dropped connection would crash the process.
    client.on('error', (error) => this.#dropped(client, error));
    client.on('end', () => this.#dropped(client));
    client.on('notification', (message) => {
      if (client === this.#client && message.channel === this.#options.channel) {
        this.#handlers?.notified(message.payload ?? '');
      }
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.#options.channel}`);
    } catch (error) {
      this.#dropped(client, error as Error);
      return;
    }
    if (client !== this.#client || this.#closed) return;
    if (this.#failures > 0) {
      this.#options.log?.info({ channel: this.#options.channel }, 'LISTEN connection restored');
    }
    this.#failures = 0;
    this.#listening = true;
    clearInterval(this.#pingTimer);
    this.#pingTimer = setInterval(() => {
      client.query('SELECT 1').catch((error: Error) => this.#dropped(client, error));
    }, this.#options.pingMs);
    this.#pingTimer.unref();
    this.#handlers?.resync();
  }

  /** The connection `client` failed (once per client: later events of the same one are ignored). */
  #dropped(client: pg.Client, error?: Error): void {
    if (client !== this.#client || this.#closed) return;
    this.#client = undefined;
    this.#listening = false;
    clearInterval(this.#pingTimer);
    client.end().catch(() => {});
    this.#failures += 1;
    const base = Math.min(this.#options.retryMaxMs, this.#options.retryMinMs * 2 ** (this.#failures - 1));
    const wait = Math.round(base * (0.8 + Math.random() * 0.4));
    this.#options.log?.warn(
      { channel: this.#options.channel, err: error?.message, retryInMs: wait, failures: this.#failures },
      'LISTEN connection lost; reconnecting',
    );
    this.#retryTimer = setTimeout(() => void this.#connect(), wait);
    this.#retryTimer.unref();
  }
}
