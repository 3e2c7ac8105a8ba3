/**
 * Failed authentications, counted per client address, throttle only the failing path: once an
 * address has spent its budget, credentials this process has not seen succeed are refused before
 * any lookup, while credentials it has seen succeed are still verified and served. So guessing
 * costs the guesser, and nobody who shares an address with a guesser (a NAT, a proxy, a spoofed
 * X-Forwarded-For) loses a valid credential to them.
 *
 * The code that checks a credential says what it concluded (`credentialVerified`,
 * `authenticationFailed`, `credentialIssued`); the security plugin (security.ts) acts on it. Told
 * explicitly rather than read from the status: a 404 is a failure for a clientSecret of another
 * checkout but not for a merchant key reading an unknown id, and a 400 can come before any
 * credential was looked at.
 */
import { isIP, isIPv6 } from 'node:net';
import type { FastifyRequest } from 'fastify';

type Outcome = 'verified' | 'failed';
const outcomes = new WeakMap<FastifyRequest, Outcome>();
const issued = new WeakMap<FastifyRequest, string[]>();

/** The request's credential was checked and is valid. */
export function credentialVerified(request: FastifyRequest): void {
  outcomes.set(request, 'verified');
}

/** The request's credential was checked and refused (whatever status the answer then has). */
export function authenticationFailed(request: FastifyRequest): void {
  outcomes.set(request, 'failed');
}

/**
 * The answer hands out a new credential (a checkout's clientSecret): valid from its first use, so a
 * browser behind an address someone else spent the budget of is served from the start.
 */
export function credentialIssued(request: FastifyRequest, credential: string): void {
  const list = issued.get(request);
  if (list) list.push(credential);
  else issued.set(request, [credential]);
}

export function authenticationOutcome(request: FastifyRequest): Outcome | undefined {
  return outcomes.get(request);
}

export function issuedCredentials(request: FastifyRequest): readonly string[] {
  return issued.get(request) ?? [];
}

/** A Map that keeps its `max` most recently used entries: what an attacker sends cannot grow it. */
class BoundedLru<K, V> {
  readonly #entries = new Map<K, V>();
  constructor(readonly max: number) {}

  get size(): number {
    return this.#entries.size;
  }

  get(key: K): V | undefined {
    const value = this.#entries.get(key);
    if (value !== undefined) {
      this.#entries.delete(key);
      this.#entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.#entries.delete(key);
    this.#entries.set(key, value);
    if (this.#entries.size > this.max) {
      const oldest = this.#entries.keys().next();
      if (!oldest.done) this.#entries.delete(oldest.value);
    }
  }

  delete(key: K): void {
    this.#entries.delete(key);
  }
}

/**
 * The key an address is counted under. An IPv6 client holds at least a /64 (RFC 6177) and can
 * take a fresh address from it for every request, so the /64 is the client; an IPv4-mapped
 * address is the IPv4 address. Anything else (only a trusted proxy could have written it) shares
 * one key, so it cannot fill the table with long strings.
 */
export function addressKey(ip: string | undefined): string {
  if (!ip) return 'unknown';
  const address = ip.replace(/%.*$/, '');
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (!isIPv6(address)) return isIP(address) === 4 ? address : 'unknown';
  const [head = '', tail] = address.split('::');
  const headGroups = head ? head.split(':') : [];
  let groups = headGroups;
  if (tail !== undefined) {
    const tailGroups = tail ? tail.split(':') : [];
    // An embedded IPv4 address takes two groups.
    const tailLength = tailGroups.length + (tail.includes('.') ? 1 : 0);
    groups = [...headGroups, ...Array<string>(8 - headGroups.length - tailLength).fill('0'), ...tailGroups];
  }
  const prefix = groups
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':');
  return `${prefix}::/64`;
}

export interface AuthThrottleOptions {
  /** Failed authentications an address may cause per window before it is throttled. */
  maxFailures: number;
  windowMs: number;
  /** Addresses whose failures are remembered (least recently failing forgotten first). */
  addressesKept: number;
  /** Credential hashes remembered as valid (least recently used forgotten first). */
  credentialsKept: number;
  now?: () => number;
}

export class AuthThrottle {
  readonly #failures: BoundedLru<string, { count: number; resetAt: number }>;
  // Only credentials that succeeded (or that we issued) get in: a guesser cannot add any.
  readonly #valid: BoundedLru<string, true>;
  readonly #options: AuthThrottleOptions;
  readonly #now: () => number;

  constructor(options: AuthThrottleOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#failures = new BoundedLru(options.addressesKept);
    this.#valid = new BoundedLru(options.credentialsKept);
  }

  /**
   * Seconds until `address` may try unknown credentials again, when it must not now; undefined
   * when the request may go on to be verified (always, for a credential known to be valid).
   */
  refusal(address: string, credentialHash: string): number | undefined {
    if (this.#valid.get(credentialHash)) return undefined;
    const spent = this.#failures.get(address);
    const now = this.#now();
    if (!spent || spent.resetAt <= now || spent.count < this.#options.maxFailures) return undefined;
    return Math.max(1, Math.ceil((spent.resetAt - now) / 1000));
  }

  verified(credentialHash: string): void {
    this.#valid.set(credentialHash, true);
  }

  /** A refused credential is forgotten (a revoked key stops passing the throttle at once). */
  failed(address: string, credentialHash: string): void {
    this.#valid.delete(credentialHash);
    const now = this.#now();
    const spent = this.#failures.get(address);
    if (!spent || spent.resetAt <= now) {
      this.#failures.set(address, { count: 1, resetAt: now + this.#options.windowMs });
    } else {
      spent.count += 1;
    }
  }

  /** For tests: how many addresses and credentials are held. */
  get sizes(): { addresses: number; credentials: number } {
    return { addresses: this.#failures.size, credentials: this.#valid.size };
  }
}
