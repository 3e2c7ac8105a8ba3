/**
 * Clients of the live status as a browser and a server have them: a WHATWG EventSource (the
 * `eventsource` package: reconnection, Last-Event-ID, a 204 that stops it), and the raw bytes of a
 * stream read with fetch, for what EventSource hides (comment lines, the end of the response).
 */
import { EventSource } from 'eventsource';
import { createParser } from 'eventsource-parser';
import { Agent, fetch as undiciFetch } from 'undici';

export interface CheckoutEvent {
  id: string;
  checkout: Record<string, unknown> & { status: string; updatedAt: string };
}

export interface FollowedStream {
  source: EventSource;
  events: CheckoutEvent[];
  /** Resolves with the first event (from the start) for which `match` holds. */
  event(match: (e: CheckoutEvent) => boolean, timeoutMs?: number): Promise<CheckoutEvent>;
  /** Resolves once the EventSource gave up for good (readyState CLOSED), as it does after a 204. */
  closed(timeoutMs?: number): Promise<void>;
  close(): void;
}

/**
 * An EventSource on `url` (a stream route), with `token` as a Bearer header when given (a server);
 * without, the URL carries the clientSecret as a browser's would.
 */
export function followStream(url: string, token?: string): FollowedStream {
  // Its own connections, destroyed on close: an aborted request's pool would otherwise open a
  // fresh connection that never sends a request, which a server shutting down waits for.
  const agent = new Agent();
  const source = new EventSource(url, {
    fetch: (input, init) =>
      undiciFetch(input, {
        ...(init as object),
        dispatcher: agent,
        headers: { ...init?.headers, ...(token ? { authorization: `Bearer ${token}` } : {}) },
      }) as unknown as Promise<Response>,
  });
  const events: CheckoutEvent[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  source.addEventListener('checkout', (e) => {
    events.push({ id: e.lastEventId, checkout: JSON.parse(e.data) });
    wake();
  });
  source.addEventListener('error', wake);
  const until = <T>(check: () => T | undefined, timeoutMs: number, what: string) =>
    new Promise<T>((resolve, reject) => {
      const attempt = () => {
        const value = check();
        if (value === undefined) return;
        cleanup();
        resolve(value);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`${what} within ${timeoutMs} ms; events: ${JSON.stringify(events)}`));
      }, timeoutMs);
      const poll = setInterval(attempt, 50);
      const cleanup = () => {
        clearTimeout(timer);
        clearInterval(poll);
        waiters.delete(attempt);
      };
      waiters.add(attempt);
      attempt();
    });
  return {
    source,
    events,
    event: (match, timeoutMs = 20_000) => until(() => events.find(match), timeoutMs, 'no matching event'),
    closed: (timeoutMs = 20_000) =>
      until(
        () => (source.readyState === EventSource.CLOSED ? true : undefined),
        timeoutMs,
        'not closed',
      ).then(() => {}),
    close: () => {
      source.close();
      void agent.destroy();
    },
  };
}

export interface RawStream {
  status: number;
  headers: { get(name: string): string | null };
  /** The `checkout` events received so far, in order (parsed by eventsource-parser). */
  events: CheckoutEvent[];
  /** The comment lines received so far (heartbeats). */
  comments: string[];
  /** Resolves once `check` holds (checked at every chunk). */
  until(check: () => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves once the server ended the response. */
  ended: Promise<void>;
  abort(): void;
}

/**
 * A GET read with fetch, the body fed to eventsource-parser as it arrives: what EventSource hides
 * (comments, the end of the response) is visible, and nothing reconnects.
 */
export async function readRaw(url: string, headers: Record<string, string> = {}): Promise<RawStream> {
  const controller = new AbortController();
  const agent = new Agent();
  const res = await undiciFetch(url, { headers, signal: controller.signal, dispatcher: agent });
  const events: CheckoutEvent[] = [];
  const comments: string[] = [];
  const parser = createParser({
    onEvent: (e) => {
      if (e.event === 'checkout') events.push({ id: e.id ?? '', checkout: JSON.parse(e.data) });
    },
    onComment: (comment) => comments.push(comment),
  });
  const listeners = new Set<() => void>();
  let done = false;
  const ended = (async () => {
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body ?? []) {
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        for (const l of [...listeners]) l();
      }
    } catch {
      // aborted by the test
    }
    done = true;
    for (const l of [...listeners]) l();
  })();
  return {
    status: res.status,
    headers: res.headers,
    events,
    comments,
    until: (check, timeoutMs = 20_000) =>
      new Promise((resolve, reject) => {
        const attempt = () => {
          if (check()) {
            cleanup();
            resolve();
          } else if (done) {
            cleanup();
            reject(new Error(`the response ended first; events ${JSON.stringify(events)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`not within ${timeoutMs} ms; events ${JSON.stringify(events)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(attempt);
        };
        listeners.add(attempt);
        attempt();
      }),
    ended,
    abort: () => {
      controller.abort();
      void agent.destroy();
    },
  };
}
