/**
 * The banks file is written by operators by hand: whatever one field of a bank holds (any JSON
 * value, the field missing, an unknown field beside it), loadConfig either accepts it (when the
 * value is valid) or stops with a ConfigError that starts with BANKS_FILE and names the field;
 * never another kind of exception.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.ts';

const certs = inject('certsDir');
const files = {
  cert: join(certs, 'client.pem'),
  key: join(certs, 'client-key.pem'),
  ca: join(certs, 'ca.pem'),
  signingKey: join(certs, 'signing-key.pem'),
  es256Key: join(certs, 'es256-signing-key.pem'),
} as const;
const dir = mkdtempSync(join(tmpdir(), 'bankpay-banks-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const validBank = {
  id: 'sandbox',
  name: 'Sandbox Bank',
  issuer: 'https://localhost:5001/master',
  clientId: 'shop',
  tlsClientCertFile: files.cert,
  tlsClientKeyFile: files.key,
  caFile: files.ca,
  tokenEndpointAuthMethod: 'tls_client_auth',
  requestObjectSigningAlg: 'PS256',
  requestObjectKeyFile: files.signingKey,
  idTokenSignedResponseAlg: 'PS256',
  scope: 'openid payments',
  deliveryMode: 'poll',
  requestedExpiry: 300,
  authorizationDetails: true,
  paymentsApiUrl: 'https://localhost:5001/api',
  loginHintIsSubject: false,
  allowedEndpointOrigins: ['https://mtls.localhost:5443'],
  requireAuthReqIdClaim: false,
  requireAtHash: true,
} as const;

/** Every field a bank may have (the valid bank above lacks the client assertion pair). */
const FIELDS = [...Object.keys(validBank), 'clientAssertionKeyFile', 'clientAssertionSigningAlg'] as (
  | keyof typeof validBank
  | 'clientAssertionKeyFile'
  | 'clientAssertionSigningAlg'
)[];
const REQUIRED = new Set([
  'id',
  'name',
  'issuer',
  'clientId',
  'tlsClientCertFile',
  'tlsClientKeyFile',
  'tokenEndpointAuthMethod',
  'idTokenSignedResponseAlg',
  'scope',
  'deliveryMode',
  'paymentsApiUrl',
]);

/** Values that are almost right, so that valid ones come up too (and the checks after the schema run). */
const PLAUSIBLE = [
  '',
  ' ',
  'sandbox',
  'Sandbox Bank',
  'bank-2',
  'a'.repeat(40),
  'a'.repeat(41),
  'x'.repeat(101),
  'https://bank.example',
  'https://',
  'https://[::1',
  'https://bank.example:99999/',
  'http://bank.example',
  'openid',
  'payments',
  'openid payments',
  ' openid ',
  'tls_client_auth',
  'private_key_jwt',
  'client_secret_basic',
  'PS256',
  'ES256',
  'RS256',
  'HS256',
  'none',
  'poll',
  'ping',
  'push',
  files.cert,
  files.key,
  files.ca,
  files.signingKey,
  files.es256Key,
  certs,
  '/nonexistent.pem',
  'relative/none.pem',
  'file\u0000.pem',
  0,
  1,
  -1,
  300,
  3600,
  3601,
  1.5,
  true,
  false,
  null,
  [],
  {},
  ['https://mtls.bank.example'],
  ['https://mtls.bank.example/'],
  ['http://mtls.bank.example'],
  ['https://169.254.169.254'],
  'https://169.254.169.254/api',
  'https://metadata.google.internal',
];

/** JSON text of a value, including what JSON.stringify cannot write (1e400, deep nesting). */
const valueText = fc.oneof(
  { arbitrary: fc.constantFrom(...PLAUSIBLE).map((v) => JSON.stringify(v)), weight: 4 },
  {
    arbitrary: fc.jsonValue({ maxDepth: 3, stringUnit: 'binary' }).map((v) => JSON.stringify(v) ?? 'null'),
    weight: 3,
  },
  { arbitrary: fc.constantFrom('1e400', '-1e400', '1e-400', '9007199254740993', '-0', '300.0'), weight: 1 },
  { arbitrary: fc.integer({ min: 1, max: 5000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`), weight: 1 },
);

type Mutation =
  | { kind: 'replace'; field: string; value: string }
  | { kind: 'delete'; field: string }
  | { kind: 'add'; field: string; value: string };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('replace' as const), field: fc.constantFrom(...FIELDS), value: valueText }),
  fc.record({ kind: fc.constant('delete' as const), field: fc.constantFrom(...FIELDS) }),
  fc
    .record({
      kind: fc.constant('add' as const),
      field: fc.oneof(
        fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }),
        fc.constantFrom('__proto__', 'constructor', 'ID', 'clientSecret', 'tls'),
      ),
      value: valueText,
    })
    .filter((m) => !(FIELDS as string[]).includes(m.field)),
);

let n = 0;
function banksFileWith(m: Mutation): string {
  const pairs = Object.entries(validBank).map(([k, v]): [string, string] => [k, JSON.stringify(v)]);
  const mutated =
    m.kind === 'delete'
      ? pairs.filter(([k]) => k !== m.field)
      : m.kind === 'replace' && pairs.some(([k]) => k === m.field)
        ? pairs.map(([k, v]): [string, string] => [k, k === m.field ? m.value : v])
        : [...pairs, [m.field, m.value] as [string, string]];
  const bank = `{${mutated.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  const file = join(dir, `banks-${n++}.json`);
  writeFileSync(file, `{"banks":[${bank}]}`);
  return file;
}

function env(banksFile: string): Record<string, string> {
  return {
    DATABASE_URL: 'postgresql://u:p@127.0.0.1:5432/db',
    REDIS_URL: 'redis://127.0.0.1:6379',
    BANKS_FILE: banksFile,
    MERCHANT_NAME: 'Acme Shop',
    MERCHANT_IBAN: 'DE89370400440532013000',
    TOKEN_ENCRYPTION_KEYS: Buffer.alloc(32, 7).toString('base64'),
    CLIENT_SECRET_KEYS: Buffer.alloc(32, 8).toString('base64'),
    // Set, so that "deliveryMode": "ping" is judged by the banks file alone.
    PUBLIC_URL: 'https://pay.shop.example',
  };
}

function describeMutation(m: Mutation): string {
  return JSON.stringify(m).slice(0, 300);
}

describe('the banks file, one field fuzzed', () => {
  it('starts from a valid bank', () => {
    const config = loadConfig(env(banksFileWith({ kind: 'delete', field: 'none-such' })));
    expect(config.banks[0]).toMatchObject({ id: 'sandbox', requestedExpiry: 300 });
  });

  it('is accepted, or refused with a ConfigError "BANKS_FILE ..." naming the field', () => {
    let accepted = 0;
    let refused = 0;
    fc.assert(
      fc.property(mutation, (m) => {
        let error: unknown;
        try {
          loadConfig(env(banksFileWith(m)));
        } catch (e) {
          error = e;
        }
        if (error === undefined) {
          accepted++;
          if (m.kind === 'add') throw new Error(`an unknown field was accepted: ${describeMutation(m)}`);
          if (m.kind === 'delete' && REQUIRED.has(m.field)) {
            throw new Error(`a required field could be left out: ${describeMutation(m)}`);
          }
          return;
        }
        refused++;
        if (!(error instanceof ConfigError)) {
          throw new Error(`not a ConfigError for ${describeMutation(m)}: ${String(error)}`);
        }
        if (!error.message.startsWith('BANKS_FILE ')) {
          throw new Error(`"${error.message}" does not start with BANKS_FILE (${describeMutation(m)})`);
        }
        // A bad value is named by its path; a missing field as required; an unknown one as JSON
        // writes its name (escaped).
        const path = new RegExp(`banks\\[0\\]\\.${m.field}(?![A-Za-z])`);
        const named =
          m.kind === 'add'
            ? error.message.includes(JSON.stringify(m.field).slice(1, -1))
            : path.test(error.message) ||
              (m.kind === 'delete' && error.message.includes(`required properties ${m.field}`));
        if (!named) {
          throw new Error(
            `"${error.message.slice(0, 300)}" does not name ${m.field} (${describeMutation(m)})`,
          );
        }
      }),
      { numRuns: 1500 },
    );
    // Both outcomes came up: the property was not vacuous either way.
    expect(accepted).toBeGreaterThan(10);
    expect(refused).toBeGreaterThan(100);
  });
});
