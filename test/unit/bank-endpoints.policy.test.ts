/**
 * Where Bankpay sends its client certificate, request objects and client assertions
 * (src/integrations/bank-endpoints.policy.ts): the bank's origins only, never a link-local or
 * cloud metadata address, whether it is written in a URL or a host name resolves to it.
 */
import type { LookupAddress } from 'node:dns';
import type { Dispatcher } from 'undici';
import { describe, expect, it } from 'vitest';
import { bankErrorCodes, transportError } from '../../src/integrations/bank.errors.ts';
import {
  BankEndpointRefusedError,
  endpointRefusal,
  refusedHostReason,
  refusingLookup,
} from '../../src/integrations/bank-endpoints.policy.ts';
import { createBankFetch } from '../../src/integrations/mtls.agent.ts';

/** The hostname as a URL gives it (numeric IPv4 forms and IPv6 notations normalised). */
const hostOf = (origin: string) => new URL(origin).hostname;

describe('refusedHostReason: link-local and metadata addresses, always', () => {
  it.each([
    ['https://169.254.169.254', /cloud metadata address/],
    ['https://169.254.170.2', /cloud metadata address/],
    ['https://169.254.0.1', /link-local address \(169\.254\.0\.1\)/],
    ['https://169.254.255.255', /link-local/],
    ['https://0xA9FEA9FE', /cloud metadata address \(169\.254\.169\.254\)/],
    ['https://2852039166', /cloud metadata address \(169\.254\.169\.254\)/],
    ['https://169.254.43518', /cloud metadata address \(169\.254\.169\.254\)/],
    ['https://[fe80::1]', /link-local address \(fe80::1\)/],
    ['https://[febf:ffff::1]', /link-local/],
    ['https://[fd00:ec2::254]', /cloud metadata address/],
    ['https://[fd00:ec2::23]', /cloud metadata address/],
    ['https://[::ffff:169.254.169.254]', /cloud metadata address/],
    ['https://[::ffff:169.254.1.1]', /link-local/],
    ['https://[64:ff9b::169.254.169.254]', /cloud metadata address/],
    ['https://100.100.100.200', /cloud metadata address/],
    ['https://192.0.0.192', /cloud metadata address/],
    ['https://168.63.129.16', /cloud metadata address/],
    ['https://metadata.google.internal', /cloud metadata name \(metadata\.google\.internal\)/],
    ['https://METADATA.Google.Internal.', /cloud metadata name \(metadata\.google\.internal\)/],
    ['https://metadata.goog', /cloud metadata name/],
    ['https://metadata', /cloud metadata name/],
    ['https://instance-data', /cloud metadata name/],
    ['https://instance-data.ec2.internal', /cloud metadata name/],
    ['https://metadata.tencentyun.com', /cloud metadata name/],
  ])('refuses %s', (origin, reason) => {
    expect(refusedHostReason(hostOf(origin))).toMatch(reason);
  });

  it.each([
    'https://localhost',
    'https://127.0.0.1',
    'https://[::1]',
    'https://bank.example',
    'https://10.0.0.1',
    'https://169.253.255.255',
    'https://169.255.0.1',
    'https://100.100.100.201',
    'https://[fec0::1]',
    'https://[fd00:ec2::253]',
    'https://metadata.bank.example',
    'https://google.internal',
  ])('allows %s', (origin) => {
    expect(refusedHostReason(hostOf(origin))).toBeUndefined();
  });
});

describe('endpointRefusal: the issuer origin or an allowed one (OIDC Discovery §4.3, RFC 8414 §3.3)', () => {
  const issuer = 'https://bank.example/realms/retail';

  it('allows the issuer origin, and an allowed origin', () => {
    expect(endpointRefusal('https://bank.example/token', issuer, [])).toBeUndefined();
    expect(endpointRefusal('https://BANK.example:443/x', issuer, [])).toBeUndefined();
    expect(
      endpointRefusal('https://mtls.bank.example/token', issuer, ['https://mtls.bank.example']),
    ).toBeUndefined();
  });

  it('refuses another host, another port, http, and what is not a URL', () => {
    expect(endpointRefusal('https://evil.example/token', issuer, [])).toMatch(
      /is on https:\/\/evil\.example, neither the issuer's origin nor one of the bank's allowedEndpointOrigins/,
    );
    expect(endpointRefusal('https://bank.example:8443/token', issuer, [])).toMatch(/bank\.example:8443/);
    expect(
      endpointRefusal('https://mtls.bank.example/token', issuer, ['https://mtls.bank.example:8443']),
    ).toMatch(/is on https:\/\/mtls\.bank\.example,/);
    expect(endpointRefusal('http://bank.example/token', issuer, ['http://bank.example'])).toBe(
      'is not an https URL',
    );
    expect(endpointRefusal('/token', issuer, [])).toBe('is not an https URL');
  });

  it('refuses a metadata or link-local address even when allowed', () => {
    expect(endpointRefusal('https://169.254.169.254/jwks', issuer, ['https://169.254.169.254'])).toMatch(
      /is a cloud metadata address/,
    );
    expect(endpointRefusal('https://[fe80::1]/token', 'https://[fe80::1]/', [])).toMatch(/is a link-local/);
  });
});

describe('refusingLookup: every address a bank host name resolves to, at connection time', () => {
  const resolveTo =
    (addresses: LookupAddress[]) =>
    (_host: string, _options: unknown, callback: (e: null, a: LookupAddress[]) => void) =>
      callback(null, addresses);

  function lookupOnce(lookup: ReturnType<typeof refusingLookup>, all: boolean) {
    return new Promise<{ error: NodeJS.ErrnoException | null; address: unknown; family?: number }>(
      (resolve) =>
        lookup('bank.example', { all }, (error, address, family) => resolve({ error, address, family })),
    );
  }

  it('passes the addresses on, one or all as asked', async () => {
    const lookup = refusingLookup(
      resolveTo([
        { address: '192.0.2.10', family: 4 },
        { address: '2001:db8::10', family: 6 },
      ]),
    );
    expect(await lookupOnce(lookup, false)).toEqual({ error: null, address: '192.0.2.10', family: 4 });
    expect((await lookupOnce(lookup, true)).address).toEqual([
      { address: '192.0.2.10', family: 4 },
      { address: '2001:db8::10', family: 6 },
    ]);
  });

  it('refuses a name when any of its addresses is link-local or a metadata address', async () => {
    for (const addresses of [
      [{ address: '169.254.169.254', family: 4 }],
      [
        { address: '192.0.2.10', family: 4 },
        { address: 'fe80::1%eth0', family: 6 },
      ],
      [{ address: '::ffff:169.254.169.254', family: 6 }],
    ]) {
      for (const all of [false, true]) {
        const { error } = await lookupOnce(refusingLookup(resolveTo(addresses)), all);
        expect(error).toBeInstanceOf(BankEndpointRefusedError);
        expect(error?.code).toBe('ERR_BANK_ENDPOINT_REFUSED');
        expect(error?.message).toMatch(/^bank\.example resolves to a (cloud metadata|link-local) address/);
      }
    }
  });

  it('passes a DNS failure on as it is (transient, not refused)', async () => {
    const failing = refusingLookup((_host, _options, callback) =>
      callback(Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' }), []),
    );
    const { error } = await lookupOnce(failing, false);
    expect(error?.code).toBe('ENOTFOUND');
    expect(transportError(error, 'token')).toMatchObject({ code: 'bank_unavailable', retryable: true });
  });

  it('is a configuration_error once it reaches the client, not retried', () => {
    const refused = new BankEndpointRefusedError(
      'bank.example resolves to a link-local address (169.254.1.1)',
    );
    const wrapped = new TypeError('fetch failed', { cause: refused });
    expect(transportError(wrapped, 'token')).toMatchObject({
      code: bankErrorCodes.configurationError,
      retryable: false,
      message: 'token: bank.example resolves to a link-local address (169.254.1.1)',
    });
  });
});

describe('createBankFetch: only the bank origins leave', () => {
  function recordingDispatcher() {
    const origins: string[] = [];
    const dispatcher = {
      request: async (options: { origin: string }) => {
        origins.push(String(options.origin));
        return {
          statusCode: 200,
          headers: { 'content-type': 'application/json' },
          body: { arrayBuffer: async () => new TextEncoder().encode('{}').buffer },
        };
      },
    } as unknown as Dispatcher;
    return { dispatcher, origins };
  }

  it('calls the bank origins, and refuses any other before a request leaves', async () => {
    const { dispatcher, origins } = recordingDispatcher();
    const fetch = createBankFetch(
      dispatcher,
      1_000,
      new Set(['https://bank.example', 'https://mtls.bank.example']),
    );
    expect((await fetch('https://mtls.bank.example/token', { method: 'POST' })).status).toBe(200);
    await expect(fetch('https://evil.example/token', { method: 'POST' })).rejects.toMatchObject({
      code: 'ERR_BANK_ENDPOINT_REFUSED',
      message: "https://evil.example is not one of this bank's origins",
    });
    await expect(fetch('http://bank.example/token')).rejects.toBeInstanceOf(BankEndpointRefusedError);
    expect(origins).toEqual(['https://mtls.bank.example']);
  });

  it('never calls a literal link-local or metadata address, even among the origins or with none given', async () => {
    const { dispatcher, origins } = recordingDispatcher();
    for (const fetch of [
      createBankFetch(dispatcher, 1_000, new Set(['https://169.254.169.254', 'https://[fe80::1]'])),
      createBankFetch(dispatcher, 1_000),
    ]) {
      await expect(fetch('https://169.254.169.254/latest/meta-data/')).rejects.toMatchObject({
        message:
          'https://169.254.169.254 is a cloud metadata address (169.254.169.254), which Bankpay never calls',
      });
      await expect(fetch('https://[fe80::1]/token')).rejects.toBeInstanceOf(BankEndpointRefusedError);
    }
    expect(origins).toEqual([]);
  });
});
