import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureDevCertificates } from '../../devstack/certificates.ts';
import { ConfigError, isValidIban, loadConfig } from '../../src/config.ts';

// Created at load time: the it.each tables below are built while the file is collected.
const dir = mkdtempSync(join(tmpdir(), 'bankpay-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const certs = ensureDevCertificates(join(dir, 'certs'));

function bank(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'sandbox',
    name: 'Sandbox Bank',
    issuer: 'https://localhost:5001/master',
    clientId: 'shop',
    tlsClientCertFile: certs.clientCert,
    tlsClientKeyFile: certs.clientKey,
    caFile: certs.caCert,
    tokenEndpointAuthMethod: 'tls_client_auth',
    requestObjectSigningAlg: 'PS256',
    requestObjectKeyFile: certs.signingKey,
    idTokenSignedResponseAlg: 'PS256',
    scope: 'openid payments',
    deliveryMode: 'poll',
    requestedExpiry: 300,
    authorizationDetails: true,
    paymentsApiUrl: 'https://localhost:5001/api',
    ...overrides,
  };
}

let n = 0;
function env(
  banks: unknown,
  overrides: Record<string, string | undefined> = {},
): Record<string, string | undefined> {
  const file = join(dir, `banks-${n++}.json`);
  writeFileSync(file, typeof banks === 'string' ? banks : JSON.stringify(banks));
  return {
    DATABASE_URL: 'postgresql://u:p@127.0.0.1:5432/db',
    REDIS_URL: 'redis://127.0.0.1:6379',
    BANKS_FILE: file,
    MERCHANT_NAME: 'Acme Shop',
    MERCHANT_IBAN: 'DE89 3704 0044 0532 0130 00',
    TOKEN_ENCRYPTION_KEYS: Buffer.alloc(32, 7).toString('base64'),
    CLIENT_SECRET_KEYS: Buffer.alloc(32, 8).toString('base64'),
    ...overrides,
  };
}

function errorOf(e: Record<string, string | undefined>): string {
  try {
    loadConfig(e);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('loadConfig', () => {
  it('accepts a valid configuration and reads the bank files', () => {
    const config = loadConfig(env({ banks: [bank()] }));
    expect(config.merchant.iban).toBe('DE89370400440532013000');
    expect(config.queue).toEqual({ backend: 'redis', redisUrl: 'redis://127.0.0.1:6379' });
    expect(config.port).toBe(3000);
    expect(config.banks[0]?.tls).toMatchObject({ cert: expect.stringContaining('BEGIN CERTIFICATE') });
    expect(config.banks[0]?.requestObjectKey).toContain('PRIVATE KEY');
    expect(config.tokenEncryptionKeys).toHaveLength(1);
  });

  it('has the customer approve the payment itself unless the bank entry says its server cannot', () => {
    expect(
      loadConfig(env({ banks: [bank({ authorizationDetails: undefined })] })).banks[0]?.authorizationDetails,
    ).toBe(true);
    expect(
      loadConfig(env({ banks: [bank({ authorizationDetails: false })] })).banks[0]?.authorizationDetails,
    ).toBe(false);
  });

  it('resolves relative bank file paths from the banks file folder', () => {
    const config = loadConfig(
      env({
        banks: [bank({ tlsClientCertFile: 'certs/client.pem', tlsClientKeyFile: './certs/client-key.pem' })],
      }),
    );
    expect(config.banks[0]?.tls).toMatchObject({ key: expect.stringContaining('PRIVATE KEY') });
  });

  it.each([
    ['DATABASE_URL', undefined, /^DATABASE_URL is not set/],
    ['DATABASE_URL', 'mysql://x/y', /^DATABASE_URL must use postgres/],
    ['REDIS_URL', undefined, /^REDIS_URL is not set/],
    ['BANKS_FILE', undefined, /^BANKS_FILE is not set/],
    ['BANKS_FILE', '/nonexistent/banks.json', /^BANKS_FILE .*cannot read it \(ENOENT\)/],
    ['MERCHANT_NAME', undefined, /^MERCHANT_NAME is not set/],
    ['MERCHANT_IBAN', 'DE00370400440532013000', /^MERCHANT_IBAN is not a valid IBAN/],
    ['TOKEN_ENCRYPTION_KEYS', 'c2hvcnQ=', /^TOKEN_ENCRYPTION_KEYS: key 1 is not 32 bytes/],
    ['CLIENT_SECRET_KEYS', undefined, /^CLIENT_SECRET_KEYS is not set/],
    ['CLIENT_SECRET_KEYS', 'c2hvcnQ=', /^CLIENT_SECRET_KEYS: key 1 is not 32 bytes/],
    ['PORT', '70000', /^PORT must be an integer/],
    ['LOG_LEVEL', 'loud', /^LOG_LEVEL must be one of/],
    ['QUEUE_BACKEND', 'kafka', /^QUEUE_BACKEND must be/],
  ])('names %s when it is %s', (name, value, message) => {
    expect(errorOf(env({ banks: [bank()] }, { [name]: value }))).toMatch(message);
  });

  it.each([
    [undefined, false],
    ['0', false],
    ['false', false],
    ['10.0.0.2', ['10.0.0.2']],
    [' 10.0.0.0/8, 2001:db8::/32 ,loopback', ['10.0.0.0/8', '2001:db8::/32', 'loopback']],
  ])('reads TRUST_PROXY=%s as the proxies %j', (value, proxies) => {
    expect(loadConfig(env({ banks: [bank()] }, { TRUST_PROXY: value })).http.trustProxy).toEqual(proxies);
  });

  it.each([
    ['true', /^TRUST_PROXY=true would trust every hop: .*leftmost X-Forwarded-For entry.*10\.0\.0\.0\/8/],
    ['yes', /^TRUST_PROXY=yes would trust every hop/],
    ['1', /^TRUST_PROXY=1: hop counts are not supported/],
    ['0.0.0.0/0', /"0\.0\.0\.0\/0" trusts every address/],
    ['::/0', /"::\/0" trusts every address/],
    ['10.0.0.0/33', /"10\.0\.0\.0\/33" is not an IP address, a CIDR/],
    ['proxy.internal', /"proxy\.internal" is not an IP address/],
    ['10.0.0.1,', /"" is not an IP address/],
  ])('refuses TRUST_PROXY=%s, saying why', (value, message) => {
    expect(errorOf(env({ banks: [bank()] }, { TRUST_PROXY: value }))).toMatch(message);
  });

  it('reads allowedEndpointOrigins (default none); loopback is allowed for development', () => {
    expect(loadConfig(env({ banks: [bank()] })).banks[0]?.allowedEndpointOrigins).toEqual([]);
    const origins = ['https://mtls.bank.example', 'https://127.0.0.1:8443', 'https://[::1]:5443'];
    const config = loadConfig(env({ banks: [bank({ allowedEndpointOrigins: origins })] }));
    expect(config.banks[0]?.allowedEndpointOrigins).toEqual(origins);
  });

  it('reads requireAuthReqIdClaim and requireAtHash (default false)', () => {
    expect(loadConfig(env({ banks: [bank()] })).banks[0]).toMatchObject({
      requireAuthReqIdClaim: false,
      requireAtHash: false,
    });
    const strict = loadConfig(env({ banks: [bank({ requireAuthReqIdClaim: true, requireAtHash: true })] }));
    expect(strict.banks[0]).toMatchObject({ requireAuthReqIdClaim: true, requireAtHash: true });
    expect(errorOf(env({ banks: [bank({ requireAtHash: 'yes' })] }))).toMatch(
      /^BANKS_FILE banks\[0\]\.requireAtHash: /,
    );
  });

  it('reads the live status limits and intervals, with defaults', () => {
    expect(loadConfig(env({ banks: [bank()] })).live).toEqual({
      maxStreams: 10_000,
      maxHeldReads: 10_000,
      maxPerApiKey: 1_000,
      maxPerClientSecret: 4,
      heartbeatMs: 15_000,
      recheckMs: 5_000,
    });
    const live = loadConfig(
      env(
        { banks: [bank()] },
        {
          LIVE_MAX_STREAMS: '50',
          LIVE_MAX_HELD_READS: '0',
          LIVE_MAX_PER_API_KEY: '20',
          LIVE_MAX_PER_CLIENT_SECRET: '1',
          LIVE_HEARTBEAT_MS: '500',
          LIVE_RECHECK_MS: '2000',
        },
      ),
    ).live;
    expect(live).toEqual({
      maxStreams: 50,
      maxHeldReads: 0,
      maxPerApiKey: 20,
      maxPerClientSecret: 1,
      heartbeatMs: 500,
      recheckMs: 2_000,
    });
  });

  it.each([
    ['LIVE_HEARTBEAT_MS', '20000', /^LIVE_HEARTBEAT_MS must be an integer from 100 to 15000/],
    ['LIVE_RECHECK_MS', '10', /^LIVE_RECHECK_MS must be an integer from 100 to 60000/],
    ['LIVE_MAX_STREAMS', '-1', /^LIVE_MAX_STREAMS must be an integer/],
    ['LIVE_MAX_PER_CLIENT_SECRET', 'many', /^LIVE_MAX_PER_CLIENT_SECRET must be an integer/],
  ])('refuses %s=%s', (name, value, message) => {
    expect(errorOf(env({ banks: [bank()] }, { [name]: value }))).toMatch(message);
  });

  it('does not need REDIS_URL with the PostgreSQL queue backend', () => {
    const config = loadConfig(env({ banks: [bank()] }, { REDIS_URL: undefined, QUEUE_BACKEND: 'postgres' }));
    expect(config.queue.backend).toBe('postgres');
  });

  it.each([
    ['not JSON', '{ banks: ', /invalid JSON/],
    ['no banks', { banks: [] }, /BANKS_FILE banks: /],
    [
      'an unknown field',
      { banks: [bank({ colour: 'red' })] },
      /BANKS_FILE banks\[0\]: must not have additional properties.*colour/,
    ],
    ['an id that is not a slug', { banks: [bank({ id: 'Sand Box' })] }, /BANKS_FILE banks\[0\]\.id: /],
    [
      'an http issuer',
      { banks: [bank({ issuer: 'http://bank.example' })] },
      /BANKS_FILE banks\[0\]\.issuer: /,
    ],
    [
      'an unknown auth method',
      { banks: [bank({ tokenEndpointAuthMethod: 'client_secret_basic' })] },
      /BANKS_FILE banks\[0\]\.tokenEndpointAuthMethod/,
    ],
    ['a scope without openid', { banks: [bank({ scope: 'payments' })] }, /BANKS_FILE banks\[0\]\.scope/],
    [
      'the none algorithm',
      { banks: [bank({ idTokenSignedResponseAlg: 'none' })] },
      /BANKS_FILE banks\[0\]\.idTokenSignedResponseAlg/,
    ],
    [
      'a missing certificate',
      { banks: [bank({ tlsClientCertFile: '/nope.pem' })] },
      /BANKS_FILE banks\[0\]\.tlsClientCertFile: cannot read \/nope\.pem \(ENOENT\)/,
    ],
    [
      'an empty certificate path',
      { banks: [bank({ tlsClientCertFile: '' })] },
      /BANKS_FILE banks\[0\]\.tlsClientCertFile/,
    ],
    [
      'a certificate where a key belongs',
      { banks: [bank({ tlsClientKeyFile: '__CERT__' })] },
      /BANKS_FILE banks\[0\]\.tlsClientKeyFile: not a PEM private key/,
    ],
    [
      'a key that does not belong to the certificate',
      { banks: [bank({ tlsClientKeyFile: '__OTHER_KEY__' })] },
      /BANKS_FILE banks\[0\]\.tlsClientKeyFile and banks\[0\]\.tlsClientCertFile: the key does not belong/,
    ],
    [
      'a CA certificate as the client certificate',
      { banks: [bank({ tlsClientCertFile: '__CA__', tlsClientKeyFile: '__CA_KEY__' })] },
      /BANKS_FILE banks\[0\]\.tlsClientCertFile: a CA certificate/,
    ],
    ['duplicate ids', { banks: [bank(), bank()] }, /duplicate bank id "sandbox"/],
    [
      'a signing alg without a key',
      { banks: [bank({ requestObjectKeyFile: undefined })] },
      /requestObjectKeyFile: required/,
    ],
    [
      'a requestedExpiry out of range',
      { banks: [bank({ requestedExpiry: 0 })] },
      /BANKS_FILE banks\[0\]\.requestedExpiry/,
    ],
    [
      'an http allowed endpoint origin',
      { banks: [bank({ allowedEndpointOrigins: ['http://mtls.bank.example'] })] },
      /BANKS_FILE banks\[0\]\.allowedEndpointOrigins\[0\]: must use https:/,
    ],
    [
      'an allowed endpoint origin with a path',
      {
        banks: [bank({ allowedEndpointOrigins: ['https://bank.example', 'https://mtls.bank.example/api'] })],
      },
      /BANKS_FILE banks\[0\]\.allowedEndpointOrigins\[1\]: .* must be an origin only, e\.g\. https:\/\/mtls\.bank\.example$/,
    ],
    [
      'an allowed endpoint origin with a trailing slash',
      { banks: [bank({ allowedEndpointOrigins: ['https://mtls.bank.example/'] })] },
      /BANKS_FILE banks\[0\]\.allowedEndpointOrigins\[0\]: .* must be an origin only/,
    ],
    [
      'an allowed endpoint origin that is not a URL',
      { banks: [bank({ allowedEndpointOrigins: ['mtls.bank.example'] })] },
      /BANKS_FILE banks\[0\]\.allowedEndpointOrigins\[0\]: .* is not an origin/,
    ],
    [
      'the metadata address as an allowed endpoint origin',
      { banks: [bank({ allowedEndpointOrigins: ['https://169.254.169.254'] })] },
      /BANKS_FILE banks\[0\]\.allowedEndpointOrigins\[0\]: a cloud metadata address \(169\.254\.169\.254\) is never a bank endpoint/,
    ],
    [
      'a link-local IPv6 allowed endpoint origin',
      { banks: [bank({ allowedEndpointOrigins: ['https://[fe80::1]:8443'] })] },
      /BANKS_FILE banks\[0\]\.allowedEndpointOrigins\[0\]: a link-local address \(fe80::1\)/,
    ],
    [
      'an issuer on the metadata address',
      { banks: [bank({ issuer: 'https://169.254.169.254/master' })] },
      /BANKS_FILE banks\[0\]\.issuer: a cloud metadata address/,
    ],
    [
      'a payment API on a metadata name',
      { banks: [bank({ paymentsApiUrl: 'https://metadata.google.internal/api' })] },
      /BANKS_FILE banks\[0\]\.paymentsApiUrl: a cloud metadata name \(metadata\.google\.internal\)/,
    ],
    [
      'a payment API on a link-local address (written in hex)',
      { banks: [bank({ paymentsApiUrl: 'https://0xa9fe0a14/api' })] },
      /BANKS_FILE banks\[0\]\.paymentsApiUrl: a link-local address \(169\.254\.10\.20\)/,
    ],
    [
      "a payment API on Alibaba Cloud's metadata address",
      { banks: [bank({ paymentsApiUrl: 'https://100.100.100.200/api' })] },
      /BANKS_FILE banks\[0\]\.paymentsApiUrl: a cloud metadata address/,
    ],
  ])('rejects a banks file with %s, naming the field', (_label, content, message) => {
    const text = JSON.stringify(content)
      .replace('"__CERT__"', JSON.stringify(certs.clientCert))
      .replace('"__OTHER_KEY__"', JSON.stringify(certs.otherClientKey))
      .replace('"__CA__"', JSON.stringify(certs.caCert))
      .replace('"__CA_KEY__"', JSON.stringify(certs.caKey));
    expect(errorOf(env(typeof content === 'string' ? content : JSON.parse(text)))).toMatch(message);
  });
});

describe('isValidIban', () => {
  it.each(['DE89370400440532013000', 'GB82WEST12345698765432', 'FR1420041010050500013M02606'])(
    'accepts %s',
    (iban) => {
      expect(isValidIban(iban)).toBe(true);
    },
  );
  it.each(['DE89370400440532013001', 'XX', 'DE8937040044053201300Ä', ''])('rejects %s', (iban) => {
    expect(isValidIban(iban)).toBe(false);
  });
});
