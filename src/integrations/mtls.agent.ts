/**
 * Transport to one bank: an undici Agent presenting our client certificate (RFC 8705 §2 mutual
 * TLS; the same certificate binds the access tokens, §3) and verifying the bank's certificate
 * (against the bank's CA when configured, else the system store). One Agent per bank, built once
 * and reused: a fresh TLS handshake per request is 70-100× slower than keep-alive (STACK.md).
 */
import { Agent, type Dispatcher, fetch as undiciFetch } from 'undici';
import type { BankConfig } from '../config.ts';

export interface MtlsAgentOptions {
  /** Idle keep-alive sockets are kept this long unless the bank says less (ms). */
  keepAliveTimeoutMs?: number;
  /** Connections per origin (bank host). */
  connections?: number;
}

/** RFC 8705 §2: the Agent that carries every request to `bank`. Never disables verification. */
export function createMtlsAgent(tls: BankConfig['tls'], options: MtlsAgentOptions = {}): Agent {
  return new Agent({
    connect: {
      cert: tls.cert,
      key: tls.key,
      // undefined → Node's default trust store; a configured CA replaces it (a private bank PKI).
      ...(tls.ca ? { ca: tls.ca } : {}),
      minVersion: 'TLSv1.2',
      rejectUnauthorized: true,
    },
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
    keepAliveMaxTimeout: 10 * 60_000,
    connections: options.connections ?? 32,
  });
}

/** What oauth4webapi's `[customFetch]` and jose's `[customFetch]` call. */
export type BankFetch = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * fetch() through the bank's Agent with a deadline per request (AbortSignal.timeout); a caller's
 * own signal is honoured too. The deadline covers the body as well as the headers.
 */
export function createBankFetch(dispatcher: Dispatcher, timeoutMs: number): BankFetch {
  return (url, init = {}) => {
    const deadline = AbortSignal.timeout(timeoutMs);
    const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
    return undiciFetch(url, {
      ...(init as object),
      signal,
      dispatcher,
    }) as unknown as Promise<Response>;
  };
}
