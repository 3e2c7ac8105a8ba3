/**
 * Development PKI for mutual TLS between Bankpay and the sandbox bank. Made here, once, so that
 * the sandbox bank, `npm run dev`, the tests, chaos and the benchmarks all trust the same files
 * and none of them has to know how they are made.
 *
 * Generates (once; existing files are kept) a CA, the sandbox bank's server certificate (localhost,
 * 127.0.0.1, and `sandbox` for Docker Compose),
 * the shop's client certificate (CN=client, as the sandbox bank registers the client for
 * RFC 8705 tls_client_auth), a second client certificate signed by the same CA (for proving
 * that a certificate-bound token is refused with another certificate), the RSA key that
 * signs CIBA authentication request objects, and an EC P-256 key so that the ES256 path of the
 * sandbox's `shop-jwt` client can be exercised too. The shop's client certificate is also written
 * as a PKCS#12 bundle (`client.pfx`, passphrase DEV_CLIENT_PFX_PASSPHRASE), the form banks'
 * admin consoles hand out. Certificates come from the openssl CLI (no
 * hand-written ASN.1); the EC key from node:crypto, which writes PEM directly.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const certificateFiles = {
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client.pem',
  clientKey: 'client-key.pem',
  clientPfx: 'client.pfx',
  otherClientCert: 'other-client.pem',
  otherClientKey: 'other-client-key.pem',
  signingKey: 'signing-key.pem',
  signingPublicKey: 'signing-key.pub.pem',
  es256Key: 'es256-signing-key.pem',
  es256PublicKey: 'es256-signing-key.pub.pem',
} as const;

/** The development passphrase of `client.pfx` (published: development only). */
export const DEV_CLIENT_PFX_PASSPHRASE = 'bankpay-development';
/** The variable a development banks file names for that passphrase (`tlsClientPfxPassphraseEnv`). */
export const DEV_CLIENT_PFX_PASSPHRASE_ENV = 'SANDBOX_CLIENT_PFX_PASSPHRASE';

/** Absolute paths of the development PKI's files. */
export type DevCertificates = Record<keyof typeof certificateFiles, string>;

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (err.code === 'ENOENT') {
      throw new Error('openssl was not found on PATH: install it (Debian: apt-get install -y openssl)');
    }
    throw new Error(`openssl ${args[0]} failed: ${err.stderr?.toString() ?? err.message}`);
  }
}

function issueLeaf(dir: string, name: string, subject: string, extensions: string): void {
  const ext = `${name}.ext`;
  writeFileSync(join(dir, ext), extensions);
  openssl(['genrsa', '-out', `${name}-key.pem`, '2048'], dir);
  openssl(['req', '-new', '-key', `${name}-key.pem`, '-subj', subject, '-out', `${name}.csr`], dir);
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca-key.pem',
      '-CAcreateserial',
      '-days',
      '825',
      '-sha256',
      '-extfile',
      ext,
      '-out',
      `${name}.pem`,
    ],
    dir,
  );
  rmSync(join(dir, `${name}.csr`));
  rmSync(join(dir, ext));
}

/** Creates whatever part of the development PKI is missing in `dir`; returns absolute paths. */
export function ensureDevCertificates(dir: string): DevCertificates {
  const root = resolve(dir);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const paths = Object.fromEntries(
    Object.entries(certificateFiles).map(([k, f]) => [k, join(root, f)]),
  ) as DevCertificates;

  const caMissing = !existsSync(paths.caCert) || !existsSync(paths.caKey);
  if (caMissing) {
    openssl(['genrsa', '-out', 'ca-key.pem', '2048'], root);
    openssl(
      [
        'req',
        '-x509',
        '-new',
        '-key',
        'ca-key.pem',
        '-sha256',
        '-days',
        '3650',
        '-subj',
        '/CN=Bankpay Development CA',
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
        '-out',
        'ca.pem',
      ],
      root,
    );
  }
  // Leaves signed by an older CA would no longer verify, so a new CA reissues them all.
  if (caMissing || !existsSync(paths.serverCert) || !existsSync(paths.serverKey)) {
    issueLeaf(
      root,
      'server',
      '/CN=localhost',
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,DNS:sandbox,IP:127.0.0.1,IP:::1\n',
    );
  }
  const clientMissing = caMissing || !existsSync(paths.clientCert) || !existsSync(paths.clientKey);
  if (clientMissing) {
    issueLeaf(
      root,
      'client',
      '/CN=client',
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
    );
  }
  if (clientMissing || !existsSync(paths.clientPfx)) {
    openssl(
      [
        'pkcs12',
        '-export',
        '-in',
        'client.pem',
        '-inkey',
        'client-key.pem',
        '-name',
        'client',
        '-out',
        'client.pfx',
        '-passout',
        `pass:${DEV_CLIENT_PFX_PASSPHRASE}`,
      ],
      root,
    );
  }
  if (caMissing || !existsSync(paths.otherClientCert) || !existsSync(paths.otherClientKey)) {
    issueLeaf(
      root,
      'other-client',
      '/CN=other-client',
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
    );
  }
  if (!existsSync(paths.signingKey) || !existsSync(paths.signingPublicKey)) {
    openssl(
      ['genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'signing-key.pem'],
      root,
    );
    openssl(['pkey', '-in', 'signing-key.pem', '-pubout', '-out', 'signing-key.pub.pem'], root);
  }
  if (!existsSync(paths.es256Key) || !existsSync(paths.es256PublicKey)) {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    writeFileSync(paths.es256Key, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    writeFileSync(paths.es256PublicKey, publicKey.export({ type: 'spki', format: 'pem' }));
  }
  rmSync(join(root, 'ca.srl'), { force: true });
  return paths;
}
