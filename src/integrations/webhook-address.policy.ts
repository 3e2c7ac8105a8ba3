/**
 * Where a webhook may go (DESIGN.md §7.3): `https`, or `http` to a loopback address; never a
 * private, link-local, metadata or otherwise non-public address, whatever the scheme. A merchant
 * registers the URL, but Bankpay's worker makes the request from inside the operator's network:
 * without these rules an endpoint could make it call the cloud metadata service, a database admin
 * page or anything else only reachable from there (server-side request forgery).
 *
 * Checked twice: the URL as written when the endpoint is registered and as each attempt is sent
 * (webhookUrlRefusal), and every address its host name resolves to, as each connection is made
 * (webhookLookup), so a name that pointed at a public address when registered and at 10.0.0.5
 * later is refused then.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { type AddressResolver, blockList, refusedHostReason } from './bank-endpoints.policy.ts';

/** The longest URL an endpoint may have (characters). */
export const WEBHOOK_URL_MAX_LENGTH = 2048;

/**
 * Loopback itself: 127.0.0.0/8 and ::1 (and IPv4-mapped ::ffff:127.x, which BlockList matches).
 * Not its NAT64 form (64:ff9b::7f00:1, RFC 6052): that one leaves the host, through a translator.
 */
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * Addresses that are not on the public internet (IANA special-purpose registries, RFC 6890),
 * loopback apart: private networks (RFC 1918, RFC 4193), shared address space (RFC 6598),
 * link-local (RFC 3927, RFC 4291), "this network", multicast, reserved, documentation and
 * benchmarking blocks, and the unspecified address (0.0.0.0 and :: reach the host itself).
 */
const NOT_PUBLIC = blockList(
  ['255.255.255.255', '::'],
  [
    '0.0.0.0/8',
    '10.0.0.0/8',
    '127.0.0.0/8', // reached here only in its NAT64 form (loopback itself is allowed above)
    '100.64.0.0/10',
    '169.254.0.0/16',
    '172.16.0.0/12',
    '192.0.0.0/24',
    '192.0.2.0/24',
    '192.88.99.0/24',
    '192.168.0.0/16',
    '198.18.0.0/15',
    '198.51.100.0/24',
    '203.0.113.0/24',
    '224.0.0.0/4',
    '240.0.0.0/4',
    'fc00::/7',
    'fe80::/10',
    'ff00::/8',
    '2001:db8::/32',
    '100::/64',
  ],
);

/**
 * IPv6 on the internet is global unicast, 2000::/3 (RFC 4291 §2.4, IANA IPv6 Address Space);
 * the rest is reserved or special-purpose: IPv4-compatible ::a.b.c.d (deprecated, RFC 4291
 * §2.5.5.1), the local-use translation prefix 64:ff9b:1::/48 (RFC 8215), ::2, 1::1... Two
 * prefixes outside it carry an IPv4 address and are judged by it (NOT_PUBLIC has their forms):
 * IPv4-mapped ::ffff:0:0/96 and the NAT64 well-known prefix 64:ff9b::/96 (RFC 6052), which DNS64
 * answers with for a public IPv4-only host.
 */
const GLOBAL_UNICAST = new BlockList();
GLOBAL_UNICAST.addSubnet('2000::', 3, 'ipv6');
const IPV4_IN_IPV6 = new BlockList();
IPV4_IN_IPV6.addSubnet('::ffff:0:0', 96, 'ipv6');
IPV4_IN_IPV6.addSubnet('64:ff9b::', 96, 'ipv6');

function isPublicIpv6(ip: string): boolean {
  return GLOBAL_UNICAST.check(ip, 'ipv6') || IPV4_IN_IPV6.check(ip, 'ipv6');
}

function family(ip: string): 'ipv4' | 'ipv6' {
  return isIP(ip) === 4 ? 'ipv4' : 'ipv6';
}

/** True for 127.0.0.0/8 and ::1 (and their IPv4-mapped forms). */
export function isLoopbackAddress(address: string): boolean {
  const ip = address.replace(/%.*$/, '');
  return isIP(ip) !== 0 && LOOPBACK.check(ip, family(ip));
}

/**
 * Why a webhook may not be sent to this IP address, or undefined. `httpOnlyLoopback`: the URL is
 * plain http, which only loopback may use (nothing else may see the body unencrypted).
 */
export function webhookAddressRefusal(address: string, httpOnlyLoopback: boolean): string | undefined {
  const ip = address.replace(/%.*$/, '');
  if (isIP(ip) === 0) return `${address} is not an IP address`;
  if (LOOPBACK.check(ip, family(ip))) return undefined;
  const metadata = refusedHostReason(ip);
  if (metadata) return `${ip} is ${metadata}`;
  if (NOT_PUBLIC.check(ip, family(ip))) return `${ip} is not a public address`;
  if (family(ip) === 'ipv6' && !isPublicIpv6(ip)) return `${ip} is not a public address`;
  if (httpOnlyLoopback) return `${ip} is not a loopback address, and plain http is only for loopback`;
  return undefined;
}

function isLocalhostName(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost'); // RFC 6761 §6.3
}

/**
 * Why `input` cannot be a webhook endpoint URL, in words for the merchant, or undefined. The rules
 * of DESIGN.md §7.3: https, or http to a loopback address (127.0.0.0/8, ::1, localhost); no user
 * name or password (they would be sent on every request and shown in every listing); no fragment;
 * ASCII only (an internationalized host name in its xn-- form, so what is shown is what is
 * called); an IP address must be public or loopback.
 */
export function webhookUrlRefusal(input: string): string | undefined {
  if (input.length > WEBHOOK_URL_MAX_LENGTH) return `is longer than ${WEBHOOK_URL_MAX_LENGTH} characters`;
  const url = URL.parse(input);
  if (!url) return 'is not an absolute URL';
  if (/[^\x21-\x7e]/.test(input)) {
    return url.hostname && !/^[\x21-\x7e]*$/.test(input.split('/')[2] ?? '')
      ? `has a non-ASCII host name: write it in its ASCII form (${url.hostname})`
      : 'has characters outside visible ASCII: percent-encode them';
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return `uses ${url.protocol.slice(0, -1)}: only https (or http to a loopback address) is allowed`;
  }
  if (url.username || url.password) return 'carries a user name or password: credentials do not belong in it';
  if (url.hash || input.includes('#')) return 'has a fragment (#...): drop it';
  let host = url.hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = host.replace(/\.$/, '');
  const plainHttp = url.protocol === 'http:';
  if (isIP(host) !== 0) {
    const refusal = webhookAddressRefusal(host, plainHttp);
    return refusal ? `names ${refusal}` : undefined;
  }
  const metadata = refusedHostReason(host);
  if (metadata) return `names ${metadata}`;
  if (plainHttp && !isLocalhostName(host)) {
    return 'uses http to a host that is not loopback: use https (http is only for 127.0.0.1, [::1] or localhost)';
  }
  return undefined;
}

/** A connection refused by the address rules (the attempt's error class: address_refused). */
export class WebhookAddressRefusedError extends Error {
  override name = 'WebhookAddressRefusedError';
  readonly code = 'WEBHOOK_ADDRESS_REFUSED';
}

const systemResolver: AddressResolver = (hostname, options, callback) =>
  dnsLookup(hostname, options, callback);

type LookupCallback = (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;

/**
 * One lookup per host name and family at a time, its answer shared by every connection that asked
 * meanwhile. dns.lookup runs getaddrinfo on libuv's small thread pool (4 threads by default): an
 * endpoint whose DNS hangs, opening its many connections at once, would otherwise take every thread
 * and hold up the lookups of all other endpoints. This way it holds one.
 */
function singleFlight(resolve: AddressResolver): AddressResolver {
  const waiting = new Map<string, LookupCallback[]>();
  return (hostname, options, callback) => {
    const key = `${hostname}|${options.family ?? 0}|${options.hints ?? 0}`;
    const callbacks = waiting.get(key);
    if (callbacks) {
      callbacks.push(callback);
      return;
    }
    waiting.set(key, [callback]);
    resolve(hostname, options, (error, addresses) => {
      const all = waiting.get(key) ?? [];
      waiting.delete(key);
      for (const cb of all) cb(error, addresses);
    });
  };
}

/**
 * A `lookup` for net/tls.connect that refuses a host name when any address it resolves to breaks
 * the rules (webhookAddressRefusal), before a connection is made: checked at every connection, so
 * a DNS change after registration cannot point a webhook into the operator's network. (IP
 * literals never reach a lookup: webhookUrlRefusal checks them at registration and again as each
 * attempt is sent, webhook.sender.ts.) `httpOnlyLoopback` for the http agent.
 */
export function webhookLookup(
  httpOnlyLoopback: boolean,
  resolve: AddressResolver = systemResolver,
): LookupFunction {
  const lookup = singleFlight(resolve);
  return (hostname: string, options: LookupOptions, callback) => {
    lookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) {
        callback(error, '');
        return;
      }
      for (const { address } of addresses) {
        const refusal = webhookAddressRefusal(address, httpOnlyLoopback);
        if (refusal) {
          callback(new WebhookAddressRefusedError(`${hostname} resolves to ${refusal}`), '');
          return;
        }
      }
      const [first] = addresses;
      if (options.all) callback(null, addresses);
      else if (first) callback(null, first.address, first.family);
      else callback(Object.assign(new Error(`${hostname}: no address`), { code: 'ENOTFOUND' }), '');
    });
  };
}
