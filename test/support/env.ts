import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inject } from 'vitest';

let banksFile: string | undefined;

/** The banks file of the test run: the sandbox bank, as `npm run dev` configures it. */
export function sandboxBanksFile(): string {
  if (banksFile) return banksFile;
  const certs = inject('certsDir');
  const bank = inject('bank');
  // Beside the run's certificates: the global setup removes that folder at the end.
  banksFile = join(dirname(certs), `banks-${process.pid}.json`);
  const sandbox = {
    id: 'sandbox',
    name: 'Sandbox Bank',
    issuer: bank.issuer,
    clientId: bank.clientId,
    tlsClientCertFile: join(certs, 'client.pem'),
    tlsClientKeyFile: join(certs, 'client-key.pem'),
    caFile: join(certs, 'ca.pem'),
    tokenEndpointAuthMethod: 'tls_client_auth',
    requestObjectSigningAlg: 'PS256',
    requestObjectKeyFile: join(certs, 'signing-key.pem'),
    idTokenSignedResponseAlg: 'PS256',
    scope: 'openid payments',
    deliveryMode: 'poll',
    requestedExpiry: 300,
    authorizationDetails: true,
    loginHintIsSubject: true,
    paymentsApiUrl: bank.paymentsApiUrl,
  };
  writeFileSync(
    banksFile,
    JSON.stringify({
      banks: [
        sandbox,
        // The same bank with a 3-second approval window, for expiry tests.
        { ...sandbox, id: 'sandbox-short', name: 'Sandbox Bank (3 s expiry)', requestedExpiry: 3 },
      ],
    }),
  );
  return banksFile;
}

/** Environment variables for the API and worker, pointing at the test run's services. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  const redisUrl = inject('redisUrl');
  return {
    DATABASE_URL: inject('databaseUrl'),
    ...(redisUrl ? { QUEUE_BACKEND: 'redis', REDIS_URL: redisUrl } : { QUEUE_BACKEND: 'postgres' }),
    BANKS_FILE: sandboxBanksFile(),
    HOST: '127.0.0.1',
    PORT: '0',
    MERCHANT_NAME: 'Acme Shop',
    MERCHANT_IBAN: 'DE89370400440532013000',
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
    ...overrides,
  };
}
