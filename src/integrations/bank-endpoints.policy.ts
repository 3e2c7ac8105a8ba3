/**
 * Where Bankpay may send what it sends a bank: its client certificate (RFC 8705 §2, presented on
 * every connection), signed request objects (CIBA Core §7.1.1) and client assertions (RFC 7523).
 *
 * Discovery (OIDC Discovery §4.3, RFC 8414 §3.3) authenticates the issuer only: the document at
 * {issuer}/.well-known/openid-configuration must name that issuer, but nothing in either spec ties
 * the endpoints it lists to the issuer's host. A tampered or misconfigured document could point the
 * token endpoint, the backchannel endpoint, their RFC 8705 §5 mTLS aliases or jwks_uri at any host,
 * and our credentials would follow. So an endpoint must be https on the issuer's origin, or on an
 * origin the operator listed for that bank (`allowedEndpointOrigins` in the banks file).
 *
 * Link-local and cloud metadata addresses are refused always, whatever the allow-list: on a cloud
 * host they serve the machine's own credentials (AWS IMDS, GCP and Azure metadata, ECS task
 * roles, ...), never a bank. They are checked three times: the names and literal addresses of the
 * banks file at start (config.ts), every URL before a request leaves (createBankFetch), and every
 * address a bank host name resolves to, as the connection is made (the Agent's DNS lookup), so a
 * name that resolves to 169.254.169.254, now or after a DNS change, is refused too. Loopback stays
 * allowed (development and tests run the bank on https://localhost).
 */
import { lookup as dnsLookup, type LookupAddress, type LookupAllOptions, type LookupOptions } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { ENDPOINT_REFUSED_CODE } from './bank.errors.ts';

/**
 * Cloud instance metadata and platform addresses. Most metadata services live at 169.254.169.254
 * (AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean, Hetzner, ...), inside the link-local block
 * below; these are the ones outside it, or worth naming.
 */
const METADATA_ADDRESSES = [
  '169.254.169.254', // AWS, GCP, Azure, Oracle, OpenStack, DigitalOcean, ... instance metadata
  '169.254.170.2', // AWS ECS task credentials
  '169.254.170.23', // AWS EKS Pod Identity
  'fd00:ec2::254', // AWS instance metadata over IPv6
  'fd00:ec2::23', // AWS EKS Pod Identity over IPv6
  '100.100.100.200', // Alibaba Cloud instance metadata
  '192.0.0.192', // Oracle Cloud instance metadata (legacy address)
  '168.63.129.16', // Azure platform (WireServer)
] as const;

/** Names of metadata services (compared lower-case, without a trailing dot). */
const METADATA_NAMES = [
  'metadata.google.internal', // GCP
  'metadata.goog', // GCP
  'metadata', // GCP, through the instance's search domain
  'instance-data', // AWS
  'instance-data.ec2.internal', // AWS
  'metadata.tencentyun.com', // Tencent Cloud
] as const;

/** Link-local blocks: RFC 3927 (IPv4) and RFC 4291 §2.5.6 (IPv6). */
const LINK_LOCAL_BLOCKS = ['169.254.0.0/16', 'fe80::/10'] as const;

/** NAT64 (RFC 6052 §2.1): 64:ff9b::a.b.c.d reaches a.b.c.d through a translator. */
function nat64(ipv4: string): string {
  const [a = 0, b = 0, c = 0, d = 0] = ipv4.split('.').map(Number);
  return `64:ff9b::${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
}

/**
 * A BlockList of `addresses` and `subnets` (CIDR), each IPv4 entry also in its NAT64 form. It also
 * matches the IPv4-mapped IPv6 forms (::ffff:10.0.0.1).
 */
export function blockList(addresses: readonly string[], subnets: readonly string[]): BlockList {
  const list = new BlockList();
  for (const address of addresses) {
    const type = isIP(address) === 4 ? 'ipv4' : 'ipv6';
    list.addAddress(address, type);
    if (type === 'ipv4') list.addAddress(nat64(address), 'ipv6');
  }
  for (const subnet of subnets) {
    const [network = '', prefix = ''] = subnet.split('/');
    const type = isIP(network) === 4 ? 'ipv4' : 'ipv6';
    list.addSubnet(network, Number(prefix), type);
    if (type === 'ipv4') list.addSubnet(nat64(network), 96 + Number(prefix), 'ipv6');
  }
  return list;
}

const metadataAddresses = blockList(METADATA_ADDRESSES, []);
const linkLocal = blockList([], LINK_LOCAL_BLOCKS);
const metadataNames = new Set<string>(METADATA_NAMES);

/** Why Bankpay never connects to this IP address (link-local or metadata), or undefined. */
export function refusedAddressReason(address: string): string | undefined {
  const ip = address.replace(/%.*$/, ''); // an IPv6 zone (fe80::1%eth0)
  const family = isIP(ip);
  if (family === 0) return undefined;
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (metadataAddresses.check(ip, type)) return `a cloud metadata address (${ip})`;
  if (linkLocal.check(ip, type)) return `a link-local address (${ip})`;
  return undefined;
}

/**
 * Why Bankpay never calls this host (a URL's `hostname`: a name, an IPv4 address, or an IPv6
 * address in brackets), or undefined. Names other than the metadata ones are checked when they
 * resolve (refusingLookup).
 */
export function refusedHostReason(hostname: string): string | undefined {
  let host = hostname.toLowerCase();
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  host = host.replace(/\.$/, '');
  if (metadataNames.has(host)) return `a cloud metadata name (${host})`;
  return refusedAddressReason(host);
}

/**
 * OIDC Discovery §4.3 / RFC 8414 §3.3 vouch for the issuer only: why Bankpay will not call `url`,
 * an endpoint a bank's metadata names (RFC 8705 §5 aliases included), or undefined when it is
 * https on the issuer's origin or on one of `allowedOrigins` (and not a refused address).
 */
export function endpointRefusal(
  url: string,
  issuer: string,
  allowedOrigins: readonly string[],
): string | undefined {
  const parsed = URL.parse(url);
  if (!parsed || parsed.protocol !== 'https:') return 'is not an https URL';
  // Refused whatever allowedEndpointOrigins says.
  const address = refusedHostReason(parsed.hostname);
  if (address) return `is ${address}`;
  if (parsed.origin === new URL(issuer).origin || allowedOrigins.includes(parsed.origin)) return undefined;
  return `is on ${parsed.origin}, neither the issuer's origin nor one of the bank's allowedEndpointOrigins`;
}

/** A request Bankpay refused to make (mapped to configuration_error by transportError). */
export class BankEndpointRefusedError extends Error {
  override name = 'BankEndpointRefusedError';
  readonly code = ENDPOINT_REFUSED_CODE;
}

/** Resolves a host name to all its addresses (dns.lookup with `all`; tests stand in for DNS). */
export type AddressResolver = (
  hostname: string,
  options: LookupAllOptions,
  callback: (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void,
) => void;

const systemResolver: AddressResolver = (hostname, options, callback) =>
  dnsLookup(hostname, options, callback);

/**
 * A `lookup` for net/tls.connect that refuses a host name when any address it resolves to is
 * link-local or a metadata address, before a connection is made. Checked at every connection,
 * not once at discovery: a DNS answer can change between the two.
 */
export function refusingLookup(resolve: AddressResolver = systemResolver): LookupFunction {
  return (hostname: string, options: LookupOptions, callback) => {
    resolve(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) {
        callback(error, '');
        return;
      }
      for (const { address } of addresses) {
        const reason = refusedAddressReason(address);
        if (reason) {
          callback(
            new BankEndpointRefusedError(`${hostname} resolves to ${reason}, which Bankpay never calls`),
            '',
          );
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
