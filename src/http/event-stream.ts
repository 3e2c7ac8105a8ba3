/**
 * Writing Server-Sent Events (WHATWG HTML, "Server-sent events", §9.2): the body of a stream
 * response is a Readable handed to Fastify's own `reply.send`, so the answer goes through the
 * hooks every other answer goes through (security headers, `Cache-Control: no-store`,
 * `x-request-id`, the access log line when it ends). The frames are encoded by
 * eventsource-encoder (from the maintainers of the `eventsource` client and parser); nothing here
 * parses what a client sends.
 *
 * (@fastify/sse 0.6 was considered: it writes the response head on `reply.raw` itself, which
 * skips the onSend hooks that set those headers, and its heartbeat interval is per plugin rather
 * than per route. Fastify's stream support keeps the one lifecycle.)
 */
import { Readable } from 'node:stream';
import { encode, encodeComment } from 'eventsource-encoder';

/** The `Content-Type` of a stream (WHATWG HTML §9.2.3: anything else fails the EventSource). */
export const EVENT_STREAM_TYPE = 'text/event-stream; charset=utf-8';

export interface StreamEvent {
  /** The `event:` field: the name a client's addEventListener listens for (one line). */
  event: string;
  /** The `id:` field (one line), which the client sends back as `Last-Event-ID` when it reconnects. */
  id?: string;
  /** The `data:`; each of its lines becomes one `data:` line. */
  data: string;
}

/**
 * One event in the event-stream format (WHATWG HTML §9.2.5, §9.2.6): `event:`, `id:`, `data:`
 * lines and the blank line that dispatches it, as UTF-8 (the only encoding of the format): one
 * Buffer can be written to any number of streams without being encoded again for each. Throws
 * TypeError for an event name or id that is not one line, which a client would split.
 */
export function eventFrame(event: StreamEvent): Buffer {
  return Buffer.from(encode(event), 'utf8');
}

/** A comment line (§9.2.6: a line starting with a colon, which clients ignore). */
export function commentFrame(text = ''): Buffer {
  return Buffer.from(encodeComment(text), 'utf8');
}

const HEARTBEAT = commentFrame();

export interface EventStreamOptions {
  /** A comment line this often (ms), so proxies and load balancers see traffic on an idle stream. */
  heartbeatMs: number;
  /**
   * A client that reads nothing while this much is buffered for it is cut off (bytes): what one
   * stream may hold in memory stays bounded.
   */
  maxBufferedBytes?: number;
}

/** The body of one stream response: frames written to it, comments every `heartbeatMs`. */
export class EventStream {
  /** Pass to `reply.send`. A Readable fed by `write`: Fastify pipes it to the response. */
  readonly body = new Readable({ read() {} });
  readonly #maxBuffered: number;
  readonly #heartbeat: NodeJS.Timeout;
  #ended = false;

  constructor(options: EventStreamOptions) {
    this.#maxBuffered = options.maxBufferedBytes ?? 256 * 1024;
    this.#heartbeat = setInterval(() => this.write(HEARTBEAT), options.heartbeatMs);
    this.#heartbeat.unref();
    this.body.once('close', () => clearInterval(this.#heartbeat));
  }

  /** False once the stream ended, or the client went away. */
  get open(): boolean {
    return !this.#ended && !this.body.destroyed;
  }

  /** Writes a frame (`eventFrame`) or comment; nothing once closed. */
  write(frame: Buffer): void {
    if (!this.open) return;
    if (this.body.readableLength > this.#maxBuffered) {
      this.body.destroy();
      return;
    }
    this.body.push(frame);
  }

  /** Ends the response after what was written (idempotent). */
  end(): void {
    clearInterval(this.#heartbeat);
    if (!this.open) return;
    this.#ended = true;
    this.body.push(null);
  }

  /** `listener` runs once when the body closes: ended, or the client went away. */
  onClose(listener: () => void): void {
    if (this.body.closed) queueMicrotask(listener);
    else this.body.once('close', listener);
  }
}
