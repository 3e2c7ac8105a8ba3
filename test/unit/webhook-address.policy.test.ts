/**
 * Where a webhook may go (src/integrations/webhook-address.policy.ts, DESIGN.md §7.3): the URL as
 * registered (webhookUrlRefusal), and every address its host name resolves to when a connection
 * is made (webhookLookup). Inputs as an attacker writes them: every notation WHATWG URL parses
 * into an address (decimal, octal, hex, short IPv4; IPv6 with embedded IPv4), trailing dots,
 * upper-case schemes, empty user names, percent-encoded and internationalized hosts.
 */
import type { LookupAddress } from 'node:dns';
import { describe, expect, it } from 'vitest';
import type { AddressResolver } from '../../src/integrations/bank-endpoints.policy.ts';
import {
  isLoopbackAddress,
  WEBHOOK_URL_MAX_LENGTH,
  WebhookAddressRefusedError,
  webhookAddressRefusal,
  webhookLookup,
  webhookUrlRefusal,
} from '../../src/integrations/webhook-address.policy.ts';

describe('webhookUrlRefusal: accepted', () => {
  it.each([
    ['https://shop.example/webhooks/bankpay', 'https://shop.example/webhooks/bankpay'],
    ['HTTPS://Shop.Example/hooks?x=1&y=%20', 'https://shop.example/hooks?x=1&y=%20'],
    ['https://shop.example:8443/h', 'https://shop.example:8443/h'],
    ['https://shop.example./h', 'https://shop.example./h'],
    ['https://xn--mnchen-3ya.de/h', 'https://xn--mnchen-3ya.de/h'],
    ['https://1.1.1.1/h', 'https://1.1.1.1/h'],
    ['https://[2606:4700::1111]/h', 'https://[2606:4700::1111]/h'],
    // A public IPv4 address in its IPv4-mapped or NAT64 (RFC 6052) form is that address.
    ['https://[::ffff:1.1.1.1]/h', 'https://[::ffff:101:101]/h'],
    ['https://[64:ff9b::1.1.1.1]/h', 'https://[64:ff9b::101:101]/h'],
    // Plain http to loopback, however written (WHATWG URL normalises the IPv4 forms).
    ['http://127.0.0.1:3000/h', 'http://127.0.0.1:3000/h'],
    ['HTTP://127.0.0.1/h', 'http://127.0.0.1/h'],
    ['http://2130706433/h', 'http://127.0.0.1/h'],
    ['http://0x7f.1/h', 'http://127.0.0.1/h'],
    ['http://017700000001/h', 'http://127.0.0.1/h'],
    ['http://127.1/h', 'http://127.0.0.1/h'],
    ['http://[::1]/h', 'http://[::1]/h'],
    ['http://[0:0:0:0:0:0:0:1]/h', 'http://[::1]/h'],
    ['http://[::ffff:127.0.0.1]/h', 'http://[::ffff:7f00:1]/h'],
    ['http://localhost/h', 'http://localhost/h'],
    ['http://LOCALHOST./h', 'http://localhost./h'],
    ['http://app.localhost/h', 'http://app.localhost/h'],
  ])('%s (stored as %s)', (input, stored) => {
    expect(webhookUrlRefusal(input)).toBeUndefined();
    expect(new URL(input).href).toBe(stored);
  });
});

describe('webhookUrlRefusal: refused', () => {
  it.each([
    // Not a URL, or not http(s).
    ['', /is not an absolute URL/],
    ['shop.example/hooks', /is not an absolute URL/],
    ['/hooks', /is not an absolute URL/],
    ['https://shop.example:65536/', /is not an absolute URL/],
    ['ftp://shop.example/', /^uses ftp: only https/],
    ['javascript:alert(1)', /^uses javascript:/],
    ['file:///etc/passwd', /^uses file:/],
    ['data:text/plain,x', /^uses data:/],
    ['wss://shop.example/', /^uses wss:/],
    ['gopher://127.0.0.1:6379/_FLUSHALL', /^uses gopher:/],
    // Credentials, however little of them.
    ['https://user:pw@shop.example/', /user name or password/],
    ['https://user@shop.example/', /user name or password/],
    ['https://:pw@shop.example/', /user name or password/],
    ['https://shop.example:443@10.0.0.1/', /user name or password/],
    // A fragment, even an empty one.
    ['https://shop.example/h#x', /fragment/],
    ['https://shop.example/h#', /fragment/],
    // Not visible ASCII: spaces, controls, an internationalized name (its xn-- form is named).
    [' https://shop.example/', /percent-encode/],
    ['https://shop.example/\n', /percent-encode/],
    ['https://shop.example/päth', /percent-encode/],
    ['https://münchen.de/', /non-ASCII host name: write it in its ASCII form \(xn--mnchen-3ya\.de\)/],
    ['https://shop\uff0eexample/', /non-ASCII host name/],
    ['https://shop.example\u3002/', /non-ASCII host name/],
    ['https://sh\top.example/', /non-ASCII host name|percent-encode/],
    // Private, loopback-adjacent and special-purpose addresses, in every notation.
    ['https://10.0.0.5/', /10\.0\.0\.5 is not a public address/],
    ['https://10.1/', /10\.0\.0\.1 is not a public address/],
    ['https://167772161/', /10\.0\.0\.1 is not a public address/],
    ['https://0xa.0.0.1/', /10\.0\.0\.1 is not a public address/],
    ['https://012.0.0.1/', /10\.0\.0\.1 is not a public address/],
    ['https://%31%30.0.0.1/', /10\.0\.0\.1 is not a public address/],
    ['https://192.168.1.1./', /192\.168\.1\.1 is not a public address/],
    ['https://172.16.0.1/', /not a public address/],
    ['https://100.64.0.1/', /not a public address/],
    ['https://198.18.0.1/', /not a public address/],
    ['https://224.0.0.1/', /not a public address/],
    ['https://240.0.0.1/', /not a public address/],
    ['https://255.255.255.255/', /not a public address/],
    ['https://0.0.0.0/', /0\.0\.0\.0 is not a public address/],
    ['https://0/', /0\.0\.0\.0 is not a public address/],
    ['http://0.0.0.0:8080/', /0\.0\.0\.0 is not a public address/],
    ['https://169.254.169.254/latest/meta-data/', /cloud metadata address/],
    ['https://2852039166/', /cloud metadata address \(169\.254\.169\.254\)/],
    ['https://169.254.1.1/', /link-local/],
    ['https://100.100.100.200/', /cloud metadata address/],
    ['https://metadata.google.internal/', /cloud metadata name/],
    ['https://METADATA./', /cloud metadata name \(metadata\)/],
    ['https://[::]/', /:: is not a public address/],
    ['http://[::]:8080/', /:: is not a public address/],
    ['https://[fd00::1]/', /fd00::1 is not a public address/],
    ['https://[fc00::]/', /not a public address/],
    ['https://[fe80::1]/', /link-local/],
    ['https://[ff02::1]/', /not a public address/],
    ['https://[2001:db8::1]/', /not a public address/],
    ['https://[100::1]/', /not a public address/],
    ['https://[fd00:ec2::254]/', /cloud metadata address/],
    ['https://[::ffff:10.0.0.1]/', /::ffff:a00:1 is not a public address/],
    ['https://[::ffff:a00:1]/', /not a public address/],
    ['https://[0:0:0:0:0:ffff:169.254.169.254]/', /cloud metadata address/],
    ['https://[::ffff:0.0.0.0]/', /not a public address/],
    ['https://[64:ff9b::10.0.0.1]/', /not a public address/],
    ['https://[64:ff9b::169.254.169.254]/', /cloud metadata address/],
    // IPv6 outside global unicast (2000::/3): IPv4-compatible (::a.b.c.d, deprecated), reserved,
    // the local-use translation prefix 64:ff9b:1::/48 (RFC 8215).
    ['https://[::10.0.0.1]/', /::a00:1 is not a public address/],
    ['https://[::127.0.0.1]/', /::7f00:1 is not a public address/],
    ['https://[::2]/', /not a public address/],
    ['https://[1::1]/', /not a public address/],
    ['https://[64:ff9b:1::10.0.0.1]/', /not a public address/],
    // NAT64 of loopback is not loopback: the packet leaves the host, through a translator.
    ['http://[64:ff9b::127.0.0.1]/', /not a public address/],
    ['https://[64:ff9b::127.0.0.1]/', /not a public address/],
    // Plain http anywhere but loopback.
    ['http://1.1.1.1/', /1\.1\.1\.1 is not a loopback address, and plain http is only for loopback/],
    ['http://shop.example/', /uses http to a host that is not loopback/],
    ['HTTP://SHOP.EXAMPLE/', /uses http to a host that is not loopback/],
    ['http://localhost.shop.example/', /uses http to a host that is not loopback/],
    ['http://127.0.0.1.nip.io/', /uses http to a host that is not loopback/],
    ['http://[::ffff:1.1.1.1]/', /not a loopback address/],
  ])('%j: %s', (input, reason) => {
    expect(webhookUrlRefusal(input)).toMatch(reason);
  });

  it('the length limit is the schema maximum, counted in characters', () => {
    const base = 'https://shop.example/';
    const longest = base + 'a'.repeat(WEBHOOK_URL_MAX_LENGTH - base.length);
    expect(webhookUrlRefusal(longest)).toBeUndefined();
    expect(webhookUrlRefusal(`${longest}a`)).toMatch(/longer than/);
    expect(webhookUrlRefusal(`https://shop.example/${'a'.repeat(8 * 1024)}`)).toBe(
      'is longer than 2048 characters',
    );
    // A long host name is a name like any other (it fails to resolve, at delivery).
    expect(webhookUrlRefusal(`http://${'a'.repeat(300)}.localhost/`)).toBeUndefined();
    expect(webhookUrlRefusal(`http://${'a'.repeat(300)}.example/`)).toMatch(/not loopback/);
  });

  it('an empty user info leaves no credentials in the stored URL', () => {
    // WHATWG URL drops an empty user info: what is stored and called has none.
    expect(webhookUrlRefusal('https://@shop.example/h')).toBeUndefined();
    expect(new URL('https://@shop.example/h').href).toBe('https://shop.example/h');
    expect(webhookUrlRefusal('https://:@shop.example/h')).toBeUndefined();
    expect(new URL('https://:@shop.example/h').href).toBe('https://shop.example/h');
  });
});

describe('webhookAddressRefusal and isLoopbackAddress', () => {
  it.each([
    ['127.0.0.1', true],
    ['127.255.255.254', true],
    ['::1', true],
    ['::ffff:127.0.0.1', true],
    ['64:ff9b::7f00:1', false],
    ['::7f00:1', false],
    ['128.0.0.1', false],
    ['localhost', false],
  ])('isLoopbackAddress(%s) is %s', (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });

  it('refuses what is not an address', () => {
    expect(webhookAddressRefusal('shop.example', false)).toMatch(/is not an IP address/);
    expect(webhookAddressRefusal('', false)).toMatch(/is not an IP address/);
  });

  it('ignores an IPv6 zone when judging', () => {
    expect(webhookAddressRefusal('fe80::1%eth0', false)).toMatch(/link-local/);
    expect(webhookAddressRefusal('::1%lo', true)).toBeUndefined();
  });
});

describe('webhookLookup: every address a name resolves to, at connection time', () => {
  const resolveTo =
    (...addresses: string[]): AddressResolver =>
    (_host, _options, callback) =>
      callback(
        null,
        addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })),
      );

  function lookupOnce(httpOnlyLoopback: boolean, resolve: AddressResolver, all = false) {
    return new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number }>((done) =>
      webhookLookup(httpOnlyLoopback, resolve)('hooks.shop.example', { all }, (error, address, family) =>
        done({ error, address, family }),
      ),
    );
  }

  it.each([
    ['10.0.0.5'],
    ['169.254.169.254'],
    ['::ffff:10.0.0.1'],
    ['::ffff:169.254.169.254'],
    ['0.0.0.0'],
    ['::'],
    ['fd00::1'],
    ['fe80::1%eth0'],
    ['100.64.0.1'],
    ['192.168.0.10'],
    ['64:ff9b::a00:1'],
    ['::a00:1'],
    ['64:ff9b::7f00:1'],
  ])('a name resolving to %s is refused (https), before any connection', async (address) => {
    for (const all of [false, true]) {
      const { error, address: passed } = await lookupOnce(false, resolveTo(address), all);
      expect(error).toBeInstanceOf(WebhookAddressRefusedError);
      expect(error?.code).toBe('WEBHOOK_ADDRESS_REFUSED');
      expect(error?.message).toMatch(/^hooks\.shop\.example resolves to /);
      expect(passed).toBe('');
    }
  });

  it('one refused address among public ones refuses the name (no address is tried)', async () => {
    const { error } = await lookupOnce(false, resolveTo('1.1.1.1', '2606:4700::1111', '10.0.0.5'), true);
    expect(error).toBeInstanceOf(WebhookAddressRefusedError);
    expect(error?.message).toMatch(/10\.0\.0\.5 is not a public address/);
  });

  it('passes public addresses on for https, one or all as asked', async () => {
    const resolve = resolveTo('1.1.1.1', '2606:4700::1111');
    expect(await lookupOnce(false, resolve)).toEqual({ error: null, address: '1.1.1.1', family: 4 });
    expect((await lookupOnce(false, resolve, true)).address).toEqual([
      { address: '1.1.1.1', family: 4 },
      { address: '2606:4700::1111', family: 6 },
    ]);
    // Loopback is allowed for https too (development, tests).
    expect((await lookupOnce(false, resolveTo('127.0.0.1'))).error).toBeNull();
  });

  it('for plain http, only loopback: a name resolving to a public address is refused', async () => {
    const { error } = await lookupOnce(true, resolveTo('1.1.1.1'));
    expect(error).toBeInstanceOf(WebhookAddressRefusedError);
    expect(error?.message).toMatch(/plain http is only for loopback/);
    expect((await lookupOnce(true, resolveTo('127.0.0.1', '::1'), true)).error).toBeNull();
    expect((await lookupOnce(true, resolveTo('::ffff:127.0.0.1'))).error).toBeNull();
    expect((await lookupOnce(true, resolveTo('127.0.0.1', '1.1.1.1'), true)).error).toBeInstanceOf(
      WebhookAddressRefusedError,
    );
  });

  it('passes a DNS failure on as it is, and no address as ENOTFOUND', async () => {
    const failing: AddressResolver = (_host, _options, callback) =>
      callback(Object.assign(new Error('getaddrinfo EAI_AGAIN'), { code: 'EAI_AGAIN' }), []);
    expect((await lookupOnce(false, failing)).error?.code).toBe('EAI_AGAIN');
    expect((await lookupOnce(false, resolveTo())).error?.code).toBe('ENOTFOUND');
  });

  it('asks the resolver for every address, whatever the caller asked', async () => {
    const asked: unknown[] = [];
    const spy: AddressResolver = (_host, options, callback) => {
      asked.push(options.all);
      callback(null, [{ address: '1.1.1.1', family: 4 }]);
    };
    await lookupOnce(false, spy, false);
    expect(asked).toEqual([true]);
  });
});

describe('webhookLookup: one lookup per host at a time', () => {
  it('connections that ask while a lookup runs share its answer; the next one asks again', async () => {
    const pending: Array<(addresses: LookupAddress[]) => void> = [];
    let calls = 0;
    const slow: AddressResolver = (_host, _options, callback) => {
      calls++;
      pending.push((addresses) => callback(null, addresses));
    };
    const lookup = webhookLookup(false, slow);
    const ask = (host: string) =>
      new Promise<unknown>((done) => lookup(host, { all: true }, (error, address) => done(error ?? address)));
    const answers = [ask('slow.example'), ask('slow.example'), ask('slow.example'), ask('other.example')];
    // Three connections to one host: one lookup; another host: its own.
    expect(calls).toBe(2);
    for (const answer of pending.splice(0)) answer([{ address: '1.1.1.1', family: 4 }]);
    expect(await Promise.all(answers)).toEqual(Array(4).fill([{ address: '1.1.1.1', family: 4 }]));
    void ask('slow.example');
    expect(calls).toBe(3);
  });
});
