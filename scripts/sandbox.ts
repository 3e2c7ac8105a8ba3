/**
 * Runs the sandbox bank as its own process: `npm run sandbox -- [options]`. Here rather than in
 * sandbox/ because the bank only reads certificate files; the development PKI it serves with
 * comes from devstack/, like everywhere else the sandbox runs.
 *
 *   --port N           bank HTTPS port (env SANDBOX_PORT, default 5001; 0 = random)
 *   --app-port N       bank app / control HTTP port (env SANDBOX_APP_PORT, default 5002)
 *   --host H           listen address (env SANDBOX_HOST, default 127.0.0.1)
 *   --certs DIR        dev PKI directory, created when missing (env SANDBOX_CERTS_DIR, default certs)
 *   --realm NAME       issuer path (env SANDBOX_REALM, default master)
 *   --test-mode        enable the control API (env SANDBOX_TEST_MODE=1)
 *   --merchant NAME    merchant name shown in the bank app (env MERCHANT_NAME)
 *   --public-host H    host name in the issuer URL (env SANDBOX_PUBLIC_HOST, default localhost)
 *   --interval N       default `interval` of CIBA acknowledgements, seconds (env SANDBOX_INTERVAL)
 *   --database URL     keep the bank's state in PostgreSQL, schema sandbox_bank, across restarts
 *                      (env SANDBOX_DATABASE_URL; without it everything lives in memory)
 */
import { parseArgs } from 'node:util';
import { startDevSandbox } from '../devstack/sandbox.service.ts';

function port(value: string | undefined, fallback: number, name: string): number {
  if (value === undefined || value === '') return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new Error(`${name} must be a port number, got ${value}`);
  return n;
}

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'app-port': { type: 'string' },
    host: { type: 'string' },
    certs: { type: 'string' },
    realm: { type: 'string' },
    'test-mode': { type: 'boolean' },
    merchant: { type: 'string' },
    'public-host': { type: 'string' },
    interval: { type: 'string' },
    database: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});

if (values.help) {
  console.log(
    'usage: npm run sandbox -- [--port 5001] [--app-port 5002] [--certs certs] [--realm master] [--test-mode] [--interval 1] [--database postgres://…]',
  );
  process.exit(0);
}

const env = process.env;
const testModeEnv = env.SANDBOX_TEST_MODE;
const merchantName = values.merchant ?? env.MERCHANT_NAME;
const interval = values.interval ?? env.SANDBOX_INTERVAL;
const databaseUrl = values.database ?? env.SANDBOX_DATABASE_URL;
const { bank } = await startDevSandbox({
  host: values.host ?? env.SANDBOX_HOST ?? '127.0.0.1',
  port: port(values.port ?? env.SANDBOX_PORT, 5001, 'port'),
  appPort: port(values['app-port'] ?? env.SANDBOX_APP_PORT, 5002, 'app port'),
  certsDir: values.certs ?? env.SANDBOX_CERTS_DIR ?? 'certs',
  realm: values.realm ?? env.SANDBOX_REALM ?? 'master',
  testMode: values['test-mode'] ?? (testModeEnv === '1' || testModeEnv === 'true'),
  ...(merchantName ? { merchantName } : {}),
  publicHost: values['public-host'] ?? env.SANDBOX_PUBLIC_HOST ?? 'localhost',
  ...(interval ? { defaultInterval: Number(interval) } : {}),
  ...(databaseUrl ? { database: { url: databaseUrl } } : {}),
});

console.log(`sandbox bank issuer:  ${bank.issuer}`);
console.log(`payments API:         ${bank.paymentsApiUrl}`);
console.log(`bank app:             ${bank.appUrl}`);
console.log(`control API:          ${bank.controlUrl ?? 'off (start with --test-mode)'}`);
console.log(
  `state:                ${databaseUrl ? 'kept in PostgreSQL, schema sandbox_bank' : 'in memory (--database to keep it)'}`,
);
console.log(
  `clients:              ${bank.clients.tlsClientAuth} (tls_client_auth), ${bank.clients.privateKeyJwt} (private_key_jwt)`,
);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    bank.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  });
}
