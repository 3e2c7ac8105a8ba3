/**
 * One webhook delivery attempt (DESIGN.md §7.3): the event's body, signed as the Standard Webhooks
 * specification says (standardwebhooks.com: `webhook-id`, `webhook-timestamp`, `webhook-signature`
 * = `v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`, space-separated when two secrets sign),
 * POSTed to the endpoint; the answer classified. The signing is the `standardwebhooks` package's,
 * the library receivers verify with, so the two cannot drift apart.
 *
 * A 2xx within the timeout counts as delivered; anything else (another status, a redirect, which
 * is not followed, a timeout, a refused address, a broken connection) is a failed attempt, retried
 * by the caller. The response body is read to at most 64 KiB and then dropped, never stored.
 */
import { Webhook } from 'standardwebhooks';
import { Agent, type Dispatcher, errors, request } from 'undici';
import type { AddressResolver } from './bank-endpoints.policy.ts';
import { WebhookAddressRefusedError, webhookLookup, webhookUrlRefusal } from './webhook-address.policy.ts';

/** The most of a response body ever read (bytes); the rest is discarded with the connection. */
export const RESPONSE_READ_LIMIT_BYTES = 64 * 1024;

export interface WebhookMessage {
  /** The event id: `webhook-id`, the same on every attempt and resend. */
  id: string;
  /** The JSON body, exactly as signed. */
  body: string;
  /** The endpoint's secrets (`whsec_…`), newest first: each signs (two during a rotation). */
  secrets: readonly string[];
}

/**
 * Why an attempt failed when no HTTP status came back: the error classes an attempt records.
 * `timeout` (no answer within the timeout), `connection_refused`, `connection_reset`, `dns_error`
 * (the name did not resolve), `tls_error`, `address_refused` (the name resolved to an address
 * webhooks may not go to), `network_error` (anything else).
 */
export type AttemptErrorClass =
  | 'timeout'
  | 'connection_refused'
  | 'connection_reset'
  | 'dns_error'
  | 'tls_error'
  | 'address_refused'
  | 'network_error';

export interface AttemptResult {
  /** True for a 2xx within the timeout. */
  delivered: boolean;
  /** The HTTP status, when one came back. */
  status: number | null;
  error: AttemptErrorClass | null;
  /** From the request leaving to the status (and at most 64 KiB of body) read, ms. */
  durationMs: number;
}

export interface WebhookSender {
  /** One attempt; never throws (a failure is an AttemptResult). */
  send(url: string, message: WebhookMessage, now?: Date): Promise<AttemptResult>;
  close(): Promise<void>;
}

export interface WebhookSenderOptions {
  /** The deadline of an attempt: status line and headers (ms); 10 s by DESIGN.md §7.3. */
  timeoutMs: number;
  /** Connections kept per endpoint origin. */
  connectionsPerOrigin?: number;
  /** Resolves host names (tests stand in for DNS). */
  resolve?: AddressResolver;
}

/**
 * The `webhook-signature` header value: one `v1,<signature>` per secret, space-separated
 * (Standard Webhooks "Signature scheme"; a receiver accepts the message when any one verifies).
 */
export function signWebhook(
  message: WebhookMessage,
  timestamp: Date,
  signers: (secret: string) => Webhook = (s) => new Webhook(s),
): string {
  return message.secrets.map((secret) => signers(secret).sign(message.id, timestamp, message.body)).join(' ');
}

function errorClass(error: unknown): AttemptErrorClass {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    if (e instanceof WebhookAddressRefusedError) return 'address_refused';
    const err = e as { name?: string; code?: string; cause?: unknown };
    if (err.name === 'TimeoutError' || err.name === 'AbortError') return 'timeout';
    if (err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) return 'timeout';
    if (err instanceof errors.ConnectTimeoutError) return 'timeout';
    switch (err.code) {
      case 'ECONNREFUSED':
        return 'connection_refused';
      case 'ECONNRESET':
      case 'EPIPE':
      case 'UND_ERR_SOCKET':
      case 'UND_ERR_CLOSED':
        return 'connection_reset';
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
      case 'EAI_FAIL':
        return 'dns_error';
      case 'ETIMEDOUT':
        return 'timeout';
    }
    if (
      typeof err.code === 'string' &&
      /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED)/.test(err.code)
    ) {
      return 'tls_error';
    }
    e = err.cause;
  }
  return 'network_error';
}

export function createWebhookSender(options: WebhookSenderOptions): WebhookSender {
  const agent = (httpOnlyLoopback: boolean) =>
    new Agent({
      connections: options.connectionsPerOrigin ?? 64,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      connect: { timeout: options.timeoutMs, lookup: webhookLookup(httpOnlyLoopback, options.resolve) },
    });
  const https = agent(false);
  const http = agent(true);
  // The secret's decoding, once per secret rather than per attempt (a few endpoints, two secrets each).
  const signers = new Map<string, Webhook>();
  const signer = (secret: string) => {
    let webhook = signers.get(secret);
    if (!webhook) {
      if (signers.size > 1000) signers.clear();
      webhook = new Webhook(secret);
      signers.set(secret, webhook);
    }
    return webhook;
  };

  return {
    async send(url, message, now = new Date()) {
      const started = performance.now();
      const elapsed = () => Math.round(performance.now() - started);
      // The URL rules again, as it is sent (DESIGN.md §7.3): an address literal never reaches the
      // lookup below, so an endpoint stored before a rule was added (or by other means than the
      // API) would otherwise be called as it is.
      if (webhookUrlRefusal(url) !== undefined) {
        return { delivered: false, status: null, error: 'address_refused', durationMs: elapsed() };
      }
      // The scheme as the URL parser reads it (HTTP:// is http): plain http gets the loopback-only agent.
      const dispatcher: Dispatcher = new URL(url).protocol === 'http:' ? http : https;
      const signal = AbortSignal.timeout(options.timeoutMs);
      try {
        const response = await request(url, {
          dispatcher,
          method: 'POST',
          signal,
          headers: {
            'content-type': 'application/json',
            'user-agent': 'Bankpay-Webhooks/1',
            'webhook-id': message.id,
            'webhook-timestamp': String(Math.floor(now.getTime() / 1000)),
            'webhook-signature': signWebhook(message, now, signer),
          },
          body: message.body,
        });
        // Read (and drop) at most 64 KiB: enough to keep a small answer's connection for the next
        // delivery, never a flood into memory. A longer body closes the connection.
        await response.body.dump({ limit: RESPONSE_READ_LIMIT_BYTES, signal }).catch(() => undefined);
        const status = response.statusCode;
        return { delivered: status >= 200 && status < 300, status, error: null, durationMs: elapsed() };
      } catch (error) {
        return { delivered: false, status: null, error: errorClass(error), durationMs: elapsed() };
      }
    },
    async close() {
      await Promise.all([https.close(), http.close()]);
    },
  };
}
