/**
 * Development PKI for mutual TLS between Bankpay and the sandbox bank.
 *
 * Generates (once; existing files are kept) a CA, the sandbox bank's server certificate (localhost,
 * 127.0.0.1, and `sandbox` for Docker Compose),
 * the shop's client certificate (CN=client, as the sandbox bank registers the client for
 * RFC 8705 tls_client_auth), a second client certificate signed by the same CA (for proving
 * that a certificate-bound token is refused with another certificate), and the RSA key that
 * signs CIBA authentication request objects. Uses the openssl CLI: no hand-written ASN.1.
 *
 * Usage: npm run certs [-- --dir certs]
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const certificateFiles = {
  caCert: 'ca.pem',
  caKey: 'ca-key.pem',
  serverCert: 'server.pem',
  serverKey: 'server-key.pem',
  clientCert: 'client.pem',
  clientKey: 'client-key.pem',
  otherClientCert: 'other-client.pem',
  otherClientKey: 'other-client-key.pem',
  signingKey: 'signing-key.pem',
  signingPublicKey: 'signing-key.pub.pem',
} as const;

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
export function ensureDevCertificates(dir: string): Record<keyof typeof certificateFiles, string> {
  const root = resolve(dir);
  mkdirSync(root, { recursive: true, mode: 0o700 });
  const paths = Object.fromEntries(
    Object.entries(certificateFiles).map(([k, f]) => [k, join(root, f)]),
  ) as Record<keyof typeof certificateFiles, string>;

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
  if (caMissing || !existsSync(paths.clientCert) || !existsSync(paths.clientKey)) {
    issueLeaf(
      root,
      'client',
      '/CN=client',
      'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n',
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
  rmSync(join(root, 'ca.srl'), { force: true });
  return paths;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--dir');
  const dir = i > 0 ? (process.argv[i + 1] ?? 'certs') : 'certs';
  const paths = ensureDevCertificates(dir);
  console.log(`development certificates ready in ${resolve(dir)}`);
  for (const p of Object.values(paths)) console.log(`  ${p}`);
}
