/**
 * A bank entry's client certificate as a PKCS#12 bundle (`tlsClientPfxFile`), checked at start
 * like the PEM pair; and the keys a bank registers for our client (`npm run jwks`, the JWKS
 * route): request-object kid override, keys published for a rotation, never a private part.
 */
import { execFileSync } from 'node:child_process';
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK } from 'jose';
import { afterAll, describe, expect, it } from 'vitest';
import {
  DEV_CLIENT_PFX_PASSPHRASE,
  DEV_CLIENT_PFX_PASSPHRASE_ENV,
  ensureDevCertificates,
} from '../../devstack/certificates.ts';
import { ConfigError, loadBanks } from '../../src/config.ts';
import { clientJwks } from '../../src/integrations/signing-key.loader.ts';

const dir = mkdtempSync(join(tmpdir(), 'bankpay-pfx-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const certs = ensureDevCertificates(join(dir, 'certs'));
const passEnv = { [DEV_CLIENT_PFX_PASSPHRASE_ENV]: DEV_CLIENT_PFX_PASSPHRASE };

/** A PKCS#12 bundle of `cert` and `key`, made by openssl as a bank's console would. */
function pfxOf(name: string, cert: string, key: string, passphrase: string): string {
  const out = join(dir, name);
  execFileSync('openssl', [
    'pkcs12',
    '-export',
    '-in',
    cert,
    '-inkey',
    key,
    '-out',
    out,
    '-passout',
    `pass:${passphrase}`,
  ]);
  return out;
}

function bank(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: 'sids',
    name: 'SimpleIdServer',
    issuer: 'https://localhost:5001/master',
    clientId: 'shop',
    tlsClientPfxFile: certs.clientPfx,
    tlsClientPfxPassphraseEnv: DEV_CLIENT_PFX_PASSPHRASE_ENV,
    caFile: certs.caCert,
    tokenEndpointAuthMethod: 'tls_client_auth',
    requestObjectSigningAlg: 'ES256',
    requestObjectKeyFile: certs.es256Key,
    idTokenSignedResponseAlg: 'ES256',
    scope: 'openid payments',
    deliveryMode: 'poll',
    paymentsApiUrl: 'https://localhost:5001/api',
    ...overrides,
  };
}

let n = 0;
function banksFile(...banks: Record<string, unknown>[]): string {
  const file = join(dir, `banks-${n++}.json`);
  // JSON.stringify drops members set to undefined: how a test removes one.
  writeFileSync(file, JSON.stringify({ banks }));
  return file;
}

function errorOf(file: string, env: Record<string, string | undefined> = passEnv): string {
  try {
    loadBanks(file, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('tlsClientPfxFile', () => {
  it('takes the bundle and its passphrase from the variable it names', () => {
    const [config] = loadBanks(banksFile(bank()), passEnv);
    expect(config?.tls).toMatchObject({ passphrase: DEV_CLIENT_PFX_PASSPHRASE });
    expect(config?.tls).toHaveProperty('pfx', expect.any(Buffer));
    expect(config?.tls).not.toHaveProperty('cert');
  });

  it('takes a bundle without a passphrase', () => {
    const open = pfxOf('open.pfx', certs.clientCert, certs.clientKey, '');
    const [config] = loadBanks(
      banksFile(bank({ tlsClientPfxFile: open, tlsClientPfxPassphraseEnv: undefined })),
      {},
    );
    expect(config?.tls).toHaveProperty('pfx');
  });

  it.each([
    [
      'a wrong passphrase',
      bank(),
      { [DEV_CLIENT_PFX_PASSPHRASE_ENV]: 'wrong' },
      /tlsClientPfxFile: wrong passphrase \(set SANDBOX_CLIENT_PFX_PASSPHRASE\)/,
    ],
    [
      'the passphrase variable unset',
      bank(),
      {},
      /^SANDBOX_CLIENT_PFX_PASSPHRASE is not set: the passphrase of BANKS_FILE banks\[0\]\.tlsClientPfxFile/,
    ],
    [
      'no passphrase named for a protected bundle',
      bank({ tlsClientPfxPassphraseEnv: undefined }),
      passEnv,
      /tlsClientPfxFile: wrong passphrase \(set tlsClientPfxPassphraseEnv\)/,
    ],
    [
      'a file that is not PKCS#12',
      bank({ tlsClientPfxFile: certs.clientCert }),
      passEnv,
      /tlsClientPfxFile: not a readable PKCS#12 file/,
    ],
    [
      'a missing file',
      bank({ tlsClientPfxFile: join(dir, 'nope.pfx') }),
      passEnv,
      /tlsClientPfxFile: cannot read .*nope\.pfx \(ENOENT\)/,
    ],
    [
      'both the bundle and the PEM pair',
      bank({ tlsClientCertFile: certs.clientCert, tlsClientKeyFile: certs.clientKey }),
      passEnv,
      /give either tlsClientPfxFile or tlsClientCertFile with tlsClientKeyFile, not both/,
    ],
    [
      'neither',
      bank({ tlsClientPfxFile: undefined }),
      passEnv,
      /banks\[0\]\.tlsClientCertFile: a client certificate is required/,
    ],
    [
      'a passphrase variable with the PEM pair',
      bank({
        tlsClientPfxFile: undefined,
        tlsClientCertFile: certs.clientCert,
        tlsClientKeyFile: certs.clientKey,
      }),
      passEnv,
      /tlsClientPfxPassphraseEnv: only with tlsClientPfxFile/,
    ],
    [
      'a lower-case variable name',
      bank({ tlsClientPfxPassphraseEnv: 'pass' }),
      passEnv,
      /tlsClientPfxPassphraseEnv/,
    ],
  ])('refuses %s, naming the field', (_name, entry, env, message) => {
    expect(errorOf(banksFile(entry), env)).toMatch(message);
  });

  it('refuses a bundle of a CA certificate', () => {
    const ca = pfxOf('ca.pfx', certs.caCert, certs.caKey, 'x');
    expect(
      errorOf(banksFile(bank({ tlsClientPfxFile: ca, tlsClientPfxPassphraseEnv: 'CA_PASS' })), {
        CA_PASS: 'x',
      }),
    ).toMatch(/tlsClientPfxFile: a CA certificate, not a client certificate/);
  });
});

describe('the keys a bank registers for our client', () => {
  const thumbprint = async (file: string) =>
    calculateJwkThumbprint(await exportJWK(createPublicKey(readFileSync(file, 'utf8'))));

  it('publishes the request-object key under its thumbprint, or the kid the bank registered', async () => {
    const [plain] = loadBanks(banksFile(bank()), passEnv);
    const [named] = loadBanks(banksFile(bank({ requestObjectKid: 'shop-2026' })), passEnv);
    expect((await clientJwks([plain!])).keys).toEqual([
      expect.objectContaining({
        kty: 'EC',
        crv: 'P-256',
        alg: 'ES256',
        use: 'sig',
        kid: await thumbprint(certs.es256PublicKey),
      }),
    ]);
    expect((await clientJwks([named!])).keys.map((k) => k.kid)).toEqual(['shop-2026']);
  });

  it('publishes the keys of a rotation beside the signing key, each once, and no private part', async () => {
    const next = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const nextFile = join(dir, 'next.pub.pem');
    writeFileSync(nextFile, next.publicKey.export({ type: 'spki', format: 'pem' }));
    const [a] = loadBanks(banksFile(bank({ publishedKeyFiles: [nextFile, certs.signingKey] })), passEnv);
    const [b] = loadBanks(
      banksFile(
        bank({ id: 'other', requestObjectSigningAlg: 'PS256', requestObjectKeyFile: certs.signingKey }),
      ),
      passEnv,
    );
    const jwks = await clientJwks([a!, b!]);
    expect(jwks.keys.map((k) => k.kid).sort()).toEqual(
      [
        await thumbprint(certs.es256PublicKey),
        await thumbprint(nextFile),
        await thumbprint(certs.signingPublicKey),
      ].sort(),
    );
    const text = JSON.stringify(jwks);
    for (const secret of ['"d"', '"p"', '"q"', '"dp"', '"dq"', '"qi"']) expect(text).not.toContain(secret);
    expect(text).not.toContain(readFileSync(certs.es256Key, 'utf8').split('\n')[1]);
  });

  it('refuses a published key file that holds no key', () => {
    expect(errorOf(banksFile(bank({ publishedKeyFiles: [certs.caCert] })))).toMatch(
      /publishedKeyFiles\[0\]: not a PEM key/,
    );
  });

  it('refuses requestObjectKid without a request-object key', () => {
    expect(
      errorOf(
        banksFile(
          bank({
            requestObjectSigningAlg: undefined,
            requestObjectKeyFile: undefined,
            requestObjectKid: 'k',
          }),
        ),
      ),
    ).toMatch(/requestObjectKid: only with requestObjectKeyFile/);
  });
});
