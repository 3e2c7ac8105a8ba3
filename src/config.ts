/**
 * Configuration, read and validated once at start. Nothing else in the code reads the environment.
 * An invalid value stops the process with a message that names the field and says what is expected.
 */
import { createHash, createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { createSecureContext, TLSSocket } from 'node:tls';
import { type Static, Type } from 'typebox';
import { Value } from 'typebox/value';
import { refusedHostReason } from './integrations/bank-endpoints.policy.ts';
import { DEFAULT_RETRY_SCHEDULE_SECONDS } from './jobs/webhook-retry.policy.ts';

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** JWS algorithms for our request objects and client assertions (FAPI allows PS256 and ES256; some banks take only RS256). */
const SigningAlgSchema = Type.Union([Type.Literal('PS256'), Type.Literal('ES256'), Type.Literal('RS256')]);

const BankSchema = Type.Object(
  {
    id: Type.String({
      pattern: '^[a-z0-9][a-z0-9_-]{0,39}$',
      description: 'lower-case slug, used in the API',
    }),
    name: Type.String({ minLength: 1, maxLength: 100 }),
    issuer: Type.String({ pattern: '^https://', description: 'the OpenID Provider issuer (https)' }),
    clientId: Type.String({ minLength: 1 }),
    tlsClientCertFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM client certificate' })),
    tlsClientKeyFile: Type.Optional(Type.String({ minLength: 1, description: 'its PEM private key' })),
    tlsClientPfxFile: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'the client certificate and key as one PKCS#12 file (.pfx/.p12), instead of the PEM pair',
      }),
    ),
    tlsClientPfxPassphraseEnv: Type.Optional(
      Type.String({
        pattern: '^[A-Z_][A-Z0-9_]{0,63}$',
        description: 'the name of the environment variable that holds the PKCS#12 passphrase',
      }),
    ),
    caFile: Type.Optional(Type.String({ minLength: 1 })),
    tokenEndpointAuthMethod: Type.Union([Type.Literal('tls_client_auth'), Type.Literal('private_key_jwt')]),
    requestObjectSigningAlg: Type.Optional(SigningAlgSchema),
    requestObjectKeyFile: Type.Optional(Type.String({ minLength: 1 })),
    requestObjectKid: Type.Optional(
      Type.String({
        pattern: '^[\\x21-\\x7e]{1,128}$',
        description:
          'the kid the bank registered the request-object key under (default: its RFC 7638 thumbprint)',
      }),
    ),
    publishedKeyFiles: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        maxItems: 4,
        description:
          'more keys whose public parts are published with ours (the next key during a rotation, or the previous one)',
      }),
    ),
    clientAssertionKeyFile: Type.Optional(Type.String({ minLength: 1 })),
    clientAssertionSigningAlg: Type.Optional(SigningAlgSchema),
    idTokenSignedResponseAlg: Type.Union([
      Type.Literal('PS256'),
      Type.Literal('ES256'),
      Type.Literal('RS256'),
    ]),
    scope: Type.String({ pattern: '(^|\\s)openid(\\s|$)', description: 'must include openid' }),
    deliveryMode: Type.Union([Type.Literal('poll'), Type.Literal('ping')], {
      description:
        'how the bank tells us of the decision (CIBA Core §5): poll (we ask every interval) or ping ' +
        '(it notifies {PUBLIC_URL}/ciba/notify/{id}, then we ask once; needs PUBLIC_URL). FAPI-CIBA allows no push.',
    }),
    requestedExpiry: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 3600, description: 'seconds (CIBA Core §7.1); default 300' }),
    ),
    authorizationDetails: Type.Optional(
      Type.Boolean({
        description:
          'default true: the CIBA request carries the payment as RFC 9396 authorization_details. ' +
          'false marks a bank that cannot take them: the binding message then carries amount and currency',
      }),
    ),
    paymentsApiUrl: Type.String({ pattern: '^https://' }),
    allowedEndpointOrigins: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        maxItems: 16,
        description:
          "https origins besides the issuer's where discovery may place the bank's endpoints " +
          '(e.g. https://mtls.bank.example for RFC 8705 §5 aliases on another host)',
      }),
    ),
    loginHintIsSubject: Type.Optional(
      Type.Boolean({
        description:
          'true when the bank uses the login we send as login_hint as the ID Token sub (the sandbox does): ' +
          'the ID Token is then refused unless sub equals the checkout login hint. Default false.',
      }),
    ),
    requireAuthReqIdClaim: Type.Optional(
      Type.Boolean({
        description:
          'true to refuse an ID Token without the urn:openid:params:jwt:claim:auth_req_id claim ' +
          '(optional in CIBA Core §10.3.1 outside push mode; FAPI banks send it). Default false.',
      }),
    ),
    requireAtHash: Type.Optional(
      Type.Boolean({
        description:
          'true to refuse an ID Token without at_hash (optional in OIDC Core §3.1.3.6; FAPI banks send it). ' +
          'Default false.',
      }),
    ),
  },
  { additionalProperties: false },
);

const BanksFileSchema = Type.Object(
  { banks: Type.Array(BankSchema, { minItems: 1 }) },
  { additionalProperties: false },
);

export type BankFileEntry = Static<typeof BankSchema>;

/** A configured bank, with its files already read (so an unreadable file fails at start). */
export interface BankConfig
  extends Omit<
    BankFileEntry,
    | 'requestedExpiry'
    | 'authorizationDetails'
    | 'loginHintIsSubject'
    | 'allowedEndpointOrigins'
    | 'requireAuthReqIdClaim'
    | 'requireAtHash'
  > {
  requestedExpiry: number;
  authorizationDetails: boolean;
  /** The ID Token's sub must equal the login hint (banks whose subjects are their logins). */
  loginHintIsSubject: boolean;
  /** Origins besides the issuer's that the bank's discovered endpoints may be on (none by default). */
  allowedEndpointOrigins: string[];
  /** The ID Token must carry the auth_req_id claim (CIBA Core §10.3.1), not only match it when present. */
  requireAuthReqIdClaim: boolean;
  /** The ID Token must carry at_hash (OIDC Core §3.1.3.6), not only match it when present. */
  requireAtHash: boolean;
  /** RFC 8705 §2 client certificate, as a PEM pair or one PKCS#12 bundle (Node's TLS takes both). */
  tls: ({ cert: string; key: string } | { pfx: Buffer; passphrase?: string }) & { ca?: string };
  requestObjectKey?: string;
  clientAssertionKey?: string;
  /** PEM keys (public or private) whose public parts are published beside the signing keys. */
  publishedKeys: string[];
}

export type QueueBackend = 'redis' | 'postgres';

export interface Config {
  databaseUrl: string;
  /** `prefix` namespaces the queue (Redis key prefix / PostgreSQL schema suffix). */
  queue: ({ backend: 'redis'; redisUrl: string } | { backend: 'postgres' }) & { prefix?: string };
  host: string;
  port: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  merchant: { name: string; iban: string };
  /** AES-256-GCM keys for tokens at rest; the first encrypts, all decrypt (rotation). */
  tokenEncryptionKeys: Buffer[];
  /** HMAC keys for clientSecrets (their own, so rotating token keys leaves them alone); first signs, all verify. */
  clientSecretKeys: Buffer[];
  banks: BankConfig[];
  banksFile: string;
  /**
   * The API's external base URL (no trailing slash), as banks reach it; null when unset. Required
   * when a bank uses ping mode: its client_notification_endpoint is {publicUrl}/ciba/notify/{bankId}.
   */
  publicUrl: string | null;
  worker: WorkerSettings;
  http: HttpSettings;
  live: LiveSettings;
  webhooks: WebhookSettings;
}

/** Webhook delivery (DESIGN.md §7.3), per worker process. */
export interface WebhookSettings {
  /** The deadline of one attempt (ms): a 2xx within it counts; 10 s by DESIGN.md §7.3. */
  timeoutMs: number;
  /** Attempts in flight at once per worker process, over all endpoints. */
  concurrency: number;
  /** Attempts in flight at once per worker process to one endpoint (a slow one cannot take them all). */
  perEndpointConcurrency: number;
  /** Seconds to wait after the 1st, 2nd, … failed attempt; the last repeats (webhook-retry.policy.ts). */
  retryScheduleSeconds: number[];
}

/** Held reads and streams of checkouts (DESIGN.md §7.2), per API process. */
export interface LiveSettings {
  /** Open streams at once in one API process. */
  maxStreams: number;
  /** Held reads (`Prefer: wait`) at once in one API process. */
  maxHeldReads: number;
  /** Open streams, and held reads (each counted apart), per merchant API key. */
  maxPerApiKey: number;
  /** Open streams, and held reads (each counted apart), per checkout read with its clientSecret. */
  maxPerClientSecret: number;
  /** A comment line on every open stream this often (ms); at most 15 s (DESIGN.md §7.2). */
  heartbeatMs: number;
  /** Every followed checkout is read again this often (ms), in case a notification was lost. */
  recheckMs: number;
}

export interface HttpSettings {
  /** Requests per credential (API key, clientSecret, else client IP) per window, per API process. */
  rateLimit: { max: number; timeWindowMs: number };
  /**
   * The reverse proxies (addresses, CIDRs, or proxy-addr's names loopback, linklocal, uniquelocal)
   * whose X-Forwarded-For entries are believed (Fastify trustProxy); false: none, the client is the
   * socket's peer.
   */
  trustProxy: string[] | false;
  /** Web origins whose pages may read a checkout with its clientSecret (CORS); none by default. */
  corsOrigins: string[];
  /** CIBA pings accepted per bank per rateLimit window, per API process (POST /ciba/notify/{bankId}). */
  notifyRateLimitMax: number;
}

export interface WorkerSettings {
  /** Jobs run at once per worker process (each is one bank request or a short DB step). */
  concurrency: number;
  /** BullMQ job lock: a worker that dies loses its jobs to another after about this long. */
  lockDurationMs: number;
  /** Token requests in flight at once per worker process and bank (the token poller). */
  pollConcurrency: number;
  /** Deadline of every request to a bank. */
  bankTimeoutMs: number;
  /** How often the reconciler looks for checkouts without a live job. */
  reconcileEveryMs: number;
  /** How long a checkout may go without progress before the reconciler steps in. */
  reconcileGraceMs: number;
  /**
   * Crash tests only: the token poller waits this long after storing a settling bank answer and
   * before validating it, so a test can kill the worker in that gap (0: never; refused in production).
   */
  pauseAfterTokenAnswerStoredMs: number;
}

type Env = Record<string, string | undefined>;

function required(env: Env, name: string, hint: string): string {
  const value = env[name]?.trim();
  if (!value) throw new ConfigError(`${name} is not set: ${hint}`);
  return value;
}

function parseUrl(name: string, value: string, protocols: string[]): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`${name} is not a valid URL`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(`${name} must use ${protocols.join(' or ')} (got ${url.protocol})`);
  }
  return value;
}

/**
 * A bank URL of the banks file must not name a link-local or cloud metadata address
 * (bank-endpoints.policy.ts): they serve the host's cloud credentials, never a bank, and our
 * client certificate and signed requests must not go there.
 */
function assertNotRefusedHost(field: string, value: string): void {
  const reason = refusedHostReason(new URL(value).hostname);
  if (reason) throw new ConfigError(`${field}: ${reason} is never a bank endpoint`);
}

/** `allowedEndpointOrigins`: each an https origin only (scheme, host, port), never a refused address. */
function endpointOrigins(at: string, values: readonly string[]): string[] {
  return values.map((value, k) => {
    const field = `BANKS_FILE ${at}.allowedEndpointOrigins[${k}]`;
    const url = URL.parse(value);
    if (!url) throw new ConfigError(`${field}: "${value}" is not an origin like https://mtls.bank.example`);
    if (url.protocol !== 'https:') throw new ConfigError(`${field}: must use https: (got ${url.protocol})`);
    if (url.origin !== value) {
      throw new ConfigError(`${field}: "${value}" must be an origin only, e.g. ${url.origin}`);
    }
    assertNotRefusedHost(field, value);
    return value;
  });
}

/** ISO 13616 IBAN check: country code, check digits, mod-97 over the rearranged number. */
export function isValidIban(value: string): boolean {
  const iban = value.replace(/\s+/g, '').toUpperCase();
  if (!/^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$/.test(iban)) return false;
  const rearranged = iban.slice(4) + iban.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const digits = /[A-Z]/.test(ch) ? String(ch.charCodeAt(0) - 55) : ch;
    for (const d of digits) remainder = (remainder * 10 + Number(d)) % 97;
  }
  return remainder === 1;
}

/** A file the banks file names, as text (PEM) or, for a PKCS#12 bundle, as bytes. */
function readFileField(banksDir: string, field: string, path: string): string;
function readFileField(banksDir: string, field: string, path: string, binary: 'binary'): Buffer;
function readFileField(banksDir: string, field: string, path: string, binary?: 'binary'): string | Buffer {
  const full = isAbsolute(path) ? path : resolve(banksDir, path);
  try {
    return binary ? readFileSync(full) : readFileSync(full, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ConfigError(`BANKS_FILE ${field}: cannot read ${full} (${code ?? 'error'})`);
  }
}

function requirePem(field: string, text: string, kind: 'CERTIFICATE' | 'PRIVATE KEY' | 'KEY'): string {
  const ok =
    kind === 'CERTIFICATE'
      ? /-----BEGIN CERTIFICATE-----/.test(text)
      : kind === 'KEY'
        ? /-----BEGIN (RSA |EC )?(PRIVATE|PUBLIC) KEY-----/.test(text)
        : /-----BEGIN (RSA |EC )?PRIVATE KEY-----/.test(text);
  if (!ok) throw new ConfigError(`BANKS_FILE ${field}: not a PEM ${kind.toLowerCase()}`);
  return text;
}

/** RFC 8705 §2: the client certificate and its key must belong together, or every handshake fails. */
function assertKeyMatchesCertificate(at: string, certPem: string, keyPem: string): void {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw new ConfigError(`BANKS_FILE ${at}.tlsClientCertFile: not a readable X.509 certificate`);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch {
    throw new ConfigError(
      `BANKS_FILE ${at}.tlsClientKeyFile: not a readable private key (encrypted keys are not supported)`,
    );
  }
  if (!cert.checkPrivateKey(key)) {
    throw new ConfigError(
      `BANKS_FILE ${at}.tlsClientKeyFile and ${at}.tlsClientCertFile: the key does not belong to the certificate`,
    );
  }
  if (cert.ca)
    throw new ConfigError(`BANKS_FILE ${at}.tlsClientCertFile: a CA certificate, not a client certificate`);
}

/** The client certificate inside a PKCS#12 bundle, opened with its passphrase as TLS will open it. */
function certificateOfPfx(at: string, pfx: Buffer, passphrase: string | undefined, passphraseEnv?: string) {
  let context: ReturnType<typeof createSecureContext>;
  try {
    context = createSecureContext({ pfx, ...(passphrase !== undefined ? { passphrase } : {}) });
  } catch (error) {
    const reason = (error as Error).message;
    if (/mac verify failure|bad decrypt/i.test(reason)) {
      throw new ConfigError(
        `BANKS_FILE ${at}.tlsClientPfxFile: wrong passphrase (${passphraseEnv ? `set ${passphraseEnv}` : 'set tlsClientPfxPassphraseEnv'})`,
      );
    }
    if (/key values mismatch/i.test(reason)) {
      throw new ConfigError(`BANKS_FILE ${at}.tlsClientPfxFile: the key does not belong to the certificate`);
    }
    throw new ConfigError(`BANKS_FILE ${at}.tlsClientPfxFile: not a readable PKCS#12 file (${reason})`);
  }
  const raw = new TLSSocket(null as never, { secureContext: context }).getCertificate();
  if (!raw || !('raw' in raw)) {
    throw new ConfigError(`BANKS_FILE ${at}.tlsClientPfxFile: holds no client certificate`);
  }
  return new X509Certificate(raw.raw);
}

/**
 * The client certificate of bank entry `b`: a PEM pair (tlsClientCertFile + tlsClientKeyFile) or
 * one PKCS#12 file (tlsClientPfxFile, its passphrase from the variable tlsClientPfxPassphraseEnv
 * names). Either way the key must belong to the certificate, which must not be a CA.
 */
function clientCertificate(at: string, dir: string, b: BankFileEntry, env: Env): BankConfig['tls'] {
  const ca = b.caFile
    ? { ca: requirePem(`${at}.caFile`, readFileField(dir, `${at}.caFile`, b.caFile), 'CERTIFICATE') }
    : {};
  const pem = b.tlsClientCertFile !== undefined || b.tlsClientKeyFile !== undefined;
  if (b.tlsClientPfxFile !== undefined) {
    if (pem) {
      throw new ConfigError(
        `BANKS_FILE ${at}.tlsClientPfxFile: give either tlsClientPfxFile or tlsClientCertFile with tlsClientKeyFile, not both`,
      );
    }
    const pfx = readFileField(dir, `${at}.tlsClientPfxFile`, b.tlsClientPfxFile, 'binary');
    const envName = b.tlsClientPfxPassphraseEnv;
    const passphrase = envName === undefined ? undefined : env[envName];
    if (envName !== undefined && passphrase === undefined) {
      throw new ConfigError(`${envName} is not set: the passphrase of BANKS_FILE ${at}.tlsClientPfxFile`);
    }
    const cert = certificateOfPfx(at, pfx, passphrase, envName);
    if (cert.ca)
      throw new ConfigError(`BANKS_FILE ${at}.tlsClientPfxFile: a CA certificate, not a client certificate`);
    return { pfx, ...(passphrase !== undefined ? { passphrase } : {}), ...ca };
  }
  if (b.tlsClientCertFile === undefined || b.tlsClientKeyFile === undefined) {
    // Name the member that is missing: the one of the pair left out, else the certificate.
    const missing = b.tlsClientCertFile === undefined ? 'tlsClientCertFile' : 'tlsClientKeyFile';
    throw new ConfigError(
      `BANKS_FILE ${at}.${missing}: a client certificate is required (tlsClientCertFile with tlsClientKeyFile, or tlsClientPfxFile)`,
    );
  }
  if (b.tlsClientPfxPassphraseEnv !== undefined) {
    throw new ConfigError(`BANKS_FILE ${at}.tlsClientPfxPassphraseEnv: only with tlsClientPfxFile`);
  }
  const tls = {
    cert: requirePem(
      `${at}.tlsClientCertFile`,
      readFileField(dir, `${at}.tlsClientCertFile`, b.tlsClientCertFile),
      'CERTIFICATE',
    ),
    key: requirePem(
      `${at}.tlsClientKeyFile`,
      readFileField(dir, `${at}.tlsClientKeyFile`, b.tlsClientKeyFile),
      'PRIVATE KEY',
    ),
  };
  assertKeyMatchesCertificate(at, tls.cert, tls.key);
  return { ...tls, ...ca };
}

/**
 * Reads and checks the banks file (DESIGN.md §3); `env` supplies the passphrases its PKCS#12
 * entries name. Throws ConfigError naming the field.
 */
export function loadBanks(banksFile: string, env: Env = process.env): BankConfig[] {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(banksFile, 'utf8'));
  } catch (error) {
    const reason =
      error instanceof SyntaxError
        ? `invalid JSON (${error.message})`
        : `cannot read it (${(error as NodeJS.ErrnoException).code})`;
    throw new ConfigError(`BANKS_FILE ${banksFile}: ${reason}`);
  }
  const first = Value.Errors(BanksFileSchema, raw).find((e) => e.keyword !== 'boolean');
  if (first) {
    const where =
      first.instancePath
        .replace(/^\//, '')
        .replace(/\/(\d+)/g, '[$1]')
        .replace(/\//g, '.') || '(root)';
    const extra = first.keyword === 'additionalProperties' ? ` (${JSON.stringify(first.params)})` : '';
    throw new ConfigError(`BANKS_FILE ${where}: ${first.message}${extra}`);
  }
  const file = raw as Static<typeof BanksFileSchema>;
  const dir = dirname(resolve(banksFile));
  const seen = new Set<string>();
  return file.banks.map((b, i) => {
    const at = `banks[${i}]`;
    if (seen.has(b.id)) throw new ConfigError(`BANKS_FILE ${at}.id: duplicate bank id "${b.id}"`);
    seen.add(b.id);
    parseUrl(`BANKS_FILE ${at}.issuer`, b.issuer, ['https:']);
    parseUrl(`BANKS_FILE ${at}.paymentsApiUrl`, b.paymentsApiUrl, ['https:']);
    assertNotRefusedHost(`BANKS_FILE ${at}.issuer`, b.issuer);
    assertNotRefusedHost(`BANKS_FILE ${at}.paymentsApiUrl`, b.paymentsApiUrl);
    const allowedEndpointOrigins = endpointOrigins(at, b.allowedEndpointOrigins ?? []);
    if (b.requestObjectSigningAlg && !b.requestObjectKeyFile) {
      throw new ConfigError(`BANKS_FILE ${at}.requestObjectKeyFile: required with requestObjectSigningAlg`);
    }
    if (
      b.tokenEndpointAuthMethod === 'private_key_jwt' &&
      !(b.clientAssertionKeyFile ?? b.requestObjectKeyFile)
    ) {
      throw new ConfigError(`BANKS_FILE ${at}.clientAssertionKeyFile: required with private_key_jwt`);
    }
    const tls = clientCertificate(at, dir, b, env);
    if (b.requestObjectKid !== undefined && !b.requestObjectKeyFile) {
      throw new ConfigError(`BANKS_FILE ${at}.requestObjectKid: only with requestObjectKeyFile`);
    }
    const publishedKeys = (b.publishedKeyFiles ?? []).map((file, k) =>
      requirePem(
        `${at}.publishedKeyFiles[${k}]`,
        readFileField(dir, `${at}.publishedKeyFiles[${k}]`, file),
        'KEY',
      ),
    );
    const requestObjectKey = b.requestObjectKeyFile
      ? requirePem(
          `${at}.requestObjectKeyFile`,
          readFileField(dir, `${at}.requestObjectKeyFile`, b.requestObjectKeyFile),
          'PRIVATE KEY',
        )
      : undefined;
    const clientAssertionKey = b.clientAssertionKeyFile
      ? requirePem(
          `${at}.clientAssertionKeyFile`,
          readFileField(dir, `${at}.clientAssertionKeyFile`, b.clientAssertionKeyFile),
          'PRIVATE KEY',
        )
      : requestObjectKey;
    return {
      ...b,
      requestedExpiry: b.requestedExpiry ?? 300,
      // The customer approves the payment itself unless the bank entry says its server cannot
      // take RFC 9396 details (then the binding message carries the amount).
      authorizationDetails: b.authorizationDetails ?? true,
      loginHintIsSubject: b.loginHintIsSubject ?? false,
      allowedEndpointOrigins,
      requireAuthReqIdClaim: b.requireAuthReqIdClaim ?? false,
      requireAtHash: b.requireAtHash ?? false,
      tls,
      publishedKeys,
      ...(requestObjectKey ? { requestObjectKey } : {}),
      ...(clientAssertionKey && b.tokenEndpointAuthMethod === 'private_key_jwt'
        ? { clientAssertionKey }
        : {}),
    };
  });
}

/** SHA-256 of keys this repository has published (an earlier docker-compose.yml default). */
const PUBLISHED_KEYS = new Set(['561c9f2cc0e720388ff4e57611e7bce3d0b3d5b44563b15486646372b0f4ffc9']);

/**
 * A key anyone could know: one this repository published, or one with a pattern instead of
 * randomness (32 random bytes hold about 31 distinct values; fewer than 16 means zeros or a
 * repeated byte, as every key written into our tests and examples is).
 */
export function isPublishedKey(key: Buffer): boolean {
  return PUBLISHED_KEYS.has(createHash('sha256').update(key).digest('hex')) || new Set(key).size < 16;
}

function parseKeys(name: string, value: string, production: boolean): Buffer[] {
  return value.split(',').map((part, i) => {
    const key = Buffer.from(part.trim(), 'base64');
    if (key.length !== 32) {
      throw new ConfigError(
        `${name}: key ${i + 1} is not 32 bytes of base64 (generate one with: openssl rand -base64 32)`,
      );
    }
    // Anyone who knows such a key can forge clientSecrets or read stored tokens.
    if (production && isPublishedKey(key)) {
      throw new ConfigError(
        `${name}: key ${i + 1} is a published or non-random key, refused with NODE_ENV=production (generate one with: openssl rand -base64 32)`,
      );
    }
    return key;
  });
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const text = env[name]?.trim();
  if (!text) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max} (got "${text}")`);
  }
  return value;
}

/**
 * WEBHOOK_RETRY_SCHEDULE: seconds to wait after each failed webhook attempt, comma-separated
 * (1 to 20 steps of 1 s to 1 day; the last repeats). Deliveries are retried for 3 days whatever
 * the schedule (webhook-retry.policy.ts).
 */
function retrySchedule(env: Env): number[] {
  const text = env.WEBHOOK_RETRY_SCHEDULE?.trim();
  if (!text) return [...DEFAULT_RETRY_SCHEDULE_SECONDS];
  const steps = text.split(',').map((s) => Number(s.trim()));
  if (steps.length > 20 || steps.some((n) => !Number.isInteger(n) || n < 1 || n > 86_400)) {
    throw new ConfigError(
      `WEBHOOK_RETRY_SCHEDULE must be 1 to 20 comma-separated whole seconds from 1 to 86400 (got "${text}")`,
    );
  }
  return steps;
}

const PROXY_RANGE_NAMES = ['loopback', 'linklocal', 'uniquelocal'];

/**
 * TRUST_PROXY: the proxies in front of the API, by address. X-Forwarded-For is read from the
 * right, entry by entry, while the hop that wrote it is one of them; the first address that is not
 * is the client. Failed authentications are counted per client address, so this decides whose
 * address a client can make us count against.
 *
 * `true` (trust every hop) is refused: the client would be the leftmost entry, which the client
 * writes itself. A hop count is refused too: it cannot tell a proxy from a client that connects
 * directly and writes enough entries itself (Fastify 5.12.1 dropped hop counts for that reason).
 */
function trustedProxies(env: Env): string[] | false {
  const text = env.TRUST_PROXY?.trim();
  if (!text || text === '0' || text.toLowerCase() === 'false') return false;
  const example = 'e.g. TRUST_PROXY=10.0.0.0/8, TRUST_PROXY=192.0.2.10,192.0.2.11 or TRUST_PROXY=loopback';
  if (['true', 'yes'].includes(text.toLowerCase())) {
    throw new ConfigError(
      `TRUST_PROXY=${text} would trust every hop: the client address would be the leftmost X-Forwarded-For entry, which any client writes itself. List your proxies' addresses or CIDRs instead (${example})`,
    );
  }
  if (/^\d+$/.test(text)) {
    throw new ConfigError(
      `TRUST_PROXY=${text}: hop counts are not supported (a count cannot tell a proxy from a client that connects directly and writes X-Forwarded-For itself). List your proxies' addresses or CIDRs instead (${example}), or 0 for none`,
    );
  }
  return text.split(',').map((part) => {
    const entry = part.trim();
    if (PROXY_RANGE_NAMES.includes(entry)) return entry;
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    const bits = family === 4 ? 32 : 128;
    const ok =
      family !== 0 &&
      extra === undefined &&
      (prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits));
    if (!ok) {
      throw new ConfigError(
        `TRUST_PROXY: "${entry}" is not an IP address, a CIDR or one of ${PROXY_RANGE_NAMES.join(', ')} (${example})`,
      );
    }
    if (prefix !== undefined && Number(prefix) === 0) {
      throw new ConfigError(
        `TRUST_PROXY: "${entry}" trusts every address, as true would; name your proxies (${example})`,
      );
    }
    return entry;
  });
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/**
 * PUBLIC_URL: an http(s) origin with an optional path prefix, no query or fragment; returned
 * without a trailing slash. https in production unless the host is a loopback address (CIBA Core
 * §4 registers the client_notification_endpoint as an https URL).
 */
function parsePublicUrl(env: Env, production: boolean): string | null {
  const text = env.PUBLIC_URL?.trim();
  if (!text) return null;
  const url = URL.parse(text);
  const example = 'e.g. PUBLIC_URL=https://pay.shop.example';
  if (!url || (url.protocol !== 'https:' && url.protocol !== 'http:'))
    throw new ConfigError(`PUBLIC_URL is not an http(s) URL (${example})`);
  if (url.search || url.hash || url.username || url.password)
    throw new ConfigError(`PUBLIC_URL must have no query, fragment or credentials (${example})`);
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname);
  if (production && url.protocol !== 'https:' && !loopback)
    throw new ConfigError(`PUBLIC_URL must use https in production (${example})`);
  return url.href.replace(/\/+$/, '');
}

export function loadConfig(env: Env = process.env): Config {
  const production = env.NODE_ENV?.trim() === 'production';
  const databaseUrl = parseUrl(
    'DATABASE_URL',
    required(env, 'DATABASE_URL', 'a PostgreSQL URL, e.g. postgresql://user:pass@127.0.0.1:5432/bankpay'),
    ['postgres:', 'postgresql:'],
  );
  const backend = (env.QUEUE_BACKEND?.trim() || 'redis') as QueueBackend;
  if (backend !== 'redis' && backend !== 'postgres') {
    throw new ConfigError(`QUEUE_BACKEND must be "redis" or "postgres" (got "${backend}")`);
  }
  const queue: Config['queue'] =
    backend === 'redis'
      ? {
          backend,
          redisUrl: parseUrl(
            'REDIS_URL',
            required(
              env,
              'REDIS_URL',
              'a Redis URL, e.g. redis://127.0.0.1:6379 (or set QUEUE_BACKEND=postgres)',
            ),
            ['redis:', 'rediss:'],
          ),
        }
      : { backend };
  const prefix = env.QUEUE_PREFIX?.trim();
  if (prefix) {
    if (!/^[a-z][a-z0-9_]{0,30}$/.test(prefix))
      throw new ConfigError('QUEUE_PREFIX must be 1-31 of a-z, 0-9, _ starting with a letter');
    queue.prefix = prefix;
  }
  const portText = env.PORT?.trim() || '3000';
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new ConfigError(`PORT must be an integer 0-65535 (got "${portText}")`);
  const logLevel = (env.LOG_LEVEL?.trim() || 'info') as Config['logLevel'];
  if (!LOG_LEVELS.includes(logLevel))
    throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}`);
  const merchantName = required(
    env,
    'MERCHANT_NAME',
    'the creditor name shown to customers, e.g. "Acme Shop"',
  );
  if (merchantName.length > 70) throw new ConfigError('MERCHANT_NAME must be at most 70 characters');
  const iban = required(env, 'MERCHANT_IBAN', 'the IBAN payments are made to')
    .replace(/\s+/g, '')
    .toUpperCase();
  if (!isValidIban(iban)) throw new ConfigError('MERCHANT_IBAN is not a valid IBAN (checksum or format)');
  const banksFile = resolve(
    required(env, 'BANKS_FILE', 'the path of the banks JSON file (see banks.example.json)'),
  );
  const banks = loadBanks(banksFile, env);
  const publicUrl = parsePublicUrl(env, production);
  const pingBank = banks.find((b) => b.deliveryMode === 'ping');
  if (pingBank && !publicUrl) {
    throw new ConfigError(
      `PUBLIC_URL is not set: bank "${pingBank.id}" uses ping mode and must be given our notification endpoint, ` +
        `PUBLIC_URL/ciba/notify/${pingBank.id} (e.g. PUBLIC_URL=https://pay.shop.example)`,
    );
  }
  return {
    databaseUrl,
    queue,
    host: env.HOST?.trim() || '0.0.0.0',
    port,
    logLevel,
    merchant: { name: merchantName, iban },
    tokenEncryptionKeys: parseKeys(
      'TOKEN_ENCRYPTION_KEYS',
      required(env, 'TOKEN_ENCRYPTION_KEYS', 'comma-separated base64 32-byte keys (openssl rand -base64 32)'),
      production,
    ),
    clientSecretKeys: parseKeys(
      'CLIENT_SECRET_KEYS',
      required(
        env,
        'CLIENT_SECRET_KEYS',
        'comma-separated base64 32-byte keys that sign clientSecrets (openssl rand -base64 32)',
      ),
      production,
    ),
    banks,
    banksFile,
    publicUrl,
    http: {
      rateLimit: {
        max: integer(env, 'RATE_LIMIT_MAX', 1_000, 1, 10_000_000),
        timeWindowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 10_000, 100, 3_600_000),
      },
      trustProxy: trustedProxies(env),
      notifyRateLimitMax: integer(env, 'CIBA_NOTIFY_RATE_LIMIT_MAX', 10_000, 1, 10_000_000),
      corsOrigins: (env.CORS_ORIGINS ?? '')
        .split(',')
        .map((o) => o.trim())
        .filter(Boolean)
        .map((o) => {
          let url: URL;
          try {
            url = new URL(o);
          } catch {
            throw new ConfigError(`CORS_ORIGINS: "${o}" is not an origin like https://shop.example`);
          }
          if (url.origin !== o)
            throw new ConfigError(`CORS_ORIGINS: "${o}" must be an origin only, e.g. ${url.origin}`);
          return o;
        }),
    },
    live: {
      maxStreams: integer(env, 'LIVE_MAX_STREAMS', 10_000, 0, 1_000_000),
      maxHeldReads: integer(env, 'LIVE_MAX_HELD_READS', 10_000, 0, 1_000_000),
      maxPerApiKey: integer(env, 'LIVE_MAX_PER_API_KEY', 1_000, 0, 1_000_000),
      maxPerClientSecret: integer(env, 'LIVE_MAX_PER_CLIENT_SECRET', 4, 0, 1_000_000),
      heartbeatMs: integer(env, 'LIVE_HEARTBEAT_MS', 15_000, 100, 15_000),
      recheckMs: integer(env, 'LIVE_RECHECK_MS', 5_000, 100, 60_000),
    },
    webhooks: {
      timeoutMs: integer(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 10_000),
      concurrency: integer(env, 'WEBHOOK_CONCURRENCY', 256, 1, 10_000),
      perEndpointConcurrency: integer(env, 'WEBHOOK_ENDPOINT_CONCURRENCY', 64, 1, 10_000),
      retryScheduleSeconds: retrySchedule(env),
    },
    worker: {
      concurrency: integer(env, 'WORKER_CONCURRENCY', 50, 1, 1000),
      lockDurationMs: integer(env, 'WORKER_LOCK_MS', 15_000, 1_000, 600_000),
      pollConcurrency: integer(env, 'POLL_CONCURRENCY', 200, 1, 10_000),
      bankTimeoutMs: integer(env, 'BANK_TIMEOUT_MS', 10_000, 100, 120_000),
      reconcileEveryMs: integer(env, 'RECONCILE_EVERY_MS', 10_000, 100, 3_600_000),
      reconcileGraceMs: integer(env, 'RECONCILE_GRACE_MS', 30_000, 100, 3_600_000),
      pauseAfterTokenAnswerStoredMs: integer(
        env,
        'WORKER_PAUSE_AFTER_TOKEN_ANSWER_STORED_MS',
        0,
        0,
        production ? 0 : 60_000,
      ),
    },
  };
}
