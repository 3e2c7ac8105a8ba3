/**
 * `npm run certs [-- --dir certs]`: the development PKI (devstack/certificates.ts) in a folder of
 * your choice, for running the sandbox bank or Bankpay by hand, or in Docker Compose.
 */
import { resolve } from 'node:path';
import { ensureDevCertificates } from '../devstack/certificates.ts';

const i = process.argv.indexOf('--dir');
const dir = i > 0 ? (process.argv[i + 1] ?? 'certs') : 'certs';
const paths = ensureDevCertificates(dir);
console.log(`development certificates ready in ${resolve(dir)}`);
for (const p of Object.values(paths)) console.log(`  ${p}`);
