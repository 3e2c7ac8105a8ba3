import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { inject } from 'vitest';
import { certificateFiles } from '../../devstack/certificates.ts';
import { sandboxBankEntry } from '../../sandbox/banks-entry.ts';

const certificatePaths = (dir: string) => ({
  caCert: join(dir, certificateFiles.caCert),
  clientCert: join(dir, certificateFiles.clientCert),
  clientKey: join(dir, certificateFiles.clientKey),
  signingKey: join(dir, certificateFiles.signingKey),
});

let banksFile: string | undefined;

/** The banks file of the test run: the sandbox bank, as `npm run dev` configures it. */
export function sandboxBanksFile(): string {
  if (banksFile) return banksFile;
  const certs = inject('certsDir');
  const bank = inject('bank');
  // Beside the run's certificates: the global setup removes that folder at the end.
  banksFile = join(dirname(certs), `banks-${process.pid}.json`);
  const sandbox = sandboxBankEntry(
    {
      issuer: bank.issuer,
      paymentsApiUrl: bank.paymentsApiUrl,
      clients: { tlsClientAuth: bank.clientId as 'shop' },
    },
    certificatePaths(certs),
  );
  writeFileSync(
    banksFile,
    JSON.stringify({
      banks: [
        sandbox,
        // The same bank with a 3-second approval window, for expiry tests.
        { ...sandbox, id: 'sandbox-short', name: 'Sandbox Bank (3 s expiry)', requestedExpiry: 3 },
        // The same bank marked as unable to take RFC 9396 details: the amount goes in the binding message.
        {
          ...sandbox,
          id: 'sandbox-no-details',
          name: 'Sandbox Bank (no details)',
          authorizationDetails: false,
        },
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
    CLIENT_SECRET_KEYS: randomBytes(32).toString('base64'),
    LOG_LEVEL: 'silent',
    ...overrides,
  };
}
