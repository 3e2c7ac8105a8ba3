/**
 * Transport to one bank: an undici Agent presenting our client certificate (RFC 8705 §2 mutual
 * TLS; the same certificate binds the access tokens, §3) and verifying the bank's certificate
 * (against the bank's CA when configured, else the system store). One Agent per bank, built once
 * and reused: a fresh TLS handshake per request is 70-100× slower than keep-alive (STACK.md).
 */
import { EventEmitter } from 'node:events';
import { createSecureContext } from 'node:tls';
import { Agent, type Dispatcher, Headers as UndiciHeaders, Response as UndiciResponse } from 'undici';
import type { BankConfig } from '../config.ts';
import {
  type AddressResolver,
  BankEndpointRefusedError,
  refusedHostReason,
  refusingLookup,
} from './bank-endpoints.policy.ts';

export interface MtlsAgentOptions {
  /** Idle keep-alive sockets are kept this long unless the bank says less (ms). */
  keepAliveTimeoutMs?: number;
  /** Connections per origin (bank host). */
  connections?: number;
  /** Host name resolution (default: the system's, dns.lookup); tests stand in for DNS. */
  resolve?: AddressResolver;
}

/**
 * RFC 8705 §2: the Agent that carries every request to `bank`. Never disables verification, and
 * never connects to a link-local or metadata address, whatever a host name resolves to
 * (bank-endpoints.policy.ts): our certificate is presented on every connection it makes.
 */
export function createMtlsAgent(tls: BankConfig['tls'], options: MtlsAgentOptions = {}): Agent {
  return new Agent({
    connect: {
      // The client certificate and key (PEM pair, or a PKCS#12 bundle with its passphrase), and
      // `ca` when configured: it replaces Node's default trust store (a private bank PKI). Built
      // into one TLS context, once: a PKCS#12 bundle would otherwise be decrypted again (its key
      // derivation included) on every new connection to the bank.
      secureContext: createSecureContext({ ...tls, minVersion: 'TLSv1.2' }),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
      // Checked as the connection is made, so a DNS answer that changed since discovery counts.
      lookup: refusingLookup(options.resolve),
    },
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
    // Bank answers (tokens, discovery, keys, payments) are small: anything larger is refused.
    maxResponseSize: 1024 * 1024,
    keepAliveMaxTimeout: 10 * 60_000,
    connections: options.connections ?? 32,
  });
}

/** What oauth4webapi's `[customFetch]` and jose's `[customFetch]` call. */
export type BankFetch = (url: string, init?: RequestInit) => Promise<Response>;

/** Thrown when a bank request outlives its deadline (mapped to "timed out" by bank.errors.ts). */
export class BankTimeoutError extends Error {
  override name = 'TimeoutError';
}

/**
 * A fetch() for oauth4webapi and jose over the bank's Agent, built on undici's `request` rather
 * than its fetch: the token poller makes thousands of these a second, and fetch's WHATWG
 * machinery (Request objects, an AbortSignal per call) was the largest cost in the worker's CPU
 * profile (bench/RESULTS.md). One deadline covers the whole exchange, body included; a caller's
 * own signal is honoured too. The body is read whole (bank answers are small) and handed over as
 * a standard Response.
 *
 * `origins`, when given, are the only origins it calls (the bank's issuer, its
 * allowedEndpointOrigins and its payment API): the last line behind the checks of discovery, so
 * that no URL from anywhere takes our certificate, request objects or client assertions to
 * another host. A link-local or metadata address is never called (a literal address is not
 * resolved, so the Agent's lookup cannot see it: it is checked here).
 */
export function createBankFetch(
  dispatcher: Dispatcher,
  timeoutMs: number,
  origins?: ReadonlySet<string>,
): BankFetch {
  return async (url, init = {}) => {
    init.signal?.throwIfAborted();
    const target = new URL(url);
    const address = refusedHostReason(target.hostname);
    if (address) {
      throw new BankEndpointRefusedError(`${target.origin} is ${address}, which Bankpay never calls`);
    }
    if (origins && !origins.has(target.origin)) {
      throw new BankEndpointRefusedError(`${target.origin} is not one of this bank's origins`);
    }
    // undici accepts an EventEmitter as the abort signal: far cheaper than an AbortSignal.
    const abort = new EventEmitter();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      abort.emit('abort');
    }, timeoutMs);
    const onCallerAbort = () => abort.emit('abort');
    init.signal?.addEventListener('abort', onCallerAbort, { once: true });
    try {
      const res = await dispatcher.request({
        origin: target.origin,
        path: `${target.pathname}${target.search}`,
        method: (init.method ?? 'GET') as Dispatcher.HttpMethod,
        headers: plainHeaders(init.headers),
        body: init.body === undefined || init.body === null ? null : String(init.body),
        signal: abort,
      });
      const body = Buffer.from(await res.body.arrayBuffer());
      const headers = new UndiciHeaders();
      for (const [name, value] of Object.entries(res.headers)) {
        if (Array.isArray(value)) for (const v of value) headers.append(name, v);
        else if (value !== undefined) headers.set(name, value);
      }
      const empty = res.statusCode === 204 || res.statusCode === 304 || body.length === 0;
      return new UndiciResponse(empty ? null : body, {
        status: res.statusCode,
        headers,
      }) as unknown as Response;
    } catch (error) {
      throw timedOut ? new BankTimeoutError('bank request timed out', { cause: error }) : error;
    } finally {
      clearTimeout(timer);
      init.signal?.removeEventListener('abort', onCallerAbort);
    }
  };
}

/** oauth4webapi and our own clients pass a plain object: used as is; anything else converted. */
function plainHeaders(headers: RequestInit['headers']): Record<string, string> {
  if (!headers) return {};
  if (headers instanceof Headers || Array.isArray(headers)) return Object.fromEntries(new Headers(headers));
  return headers as Record<string, string>;
}
