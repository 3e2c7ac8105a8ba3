/**
 * Pino options shared by the API and the worker: JSON logs with request/job ids, and every place a
 * secret could travel redacted (tokens, keys, client secrets, Authorization headers).
 */
import type { LoggerOptions } from 'pino';

export const REDACTED_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'authorization',
  '*.authorization',
  'access_token',
  'refresh_token',
  'id_token',
  'clientSecret',
  'apiKey',
  '*.access_token',
  '*.refresh_token',
  '*.id_token',
  '*.accessToken',
  '*.refreshToken',
  '*.idToken',
  '*.clientSecret',
  '*.client_secret',
  '*.apiKey',
  '*.privateKey',
  '*.key',
  '*.tokensEncrypted',
  '*.request',
  '*.client_assertion',
  // CIBA's auth_req_id is a bearer handle: whoever holds it (and the client's key) can poll for tokens.
  'auth_req_id',
  '*.auth_req_id',
  'authReqId',
  '*.authReqId',
  'client_secret',
  // Webhook signing secrets (whsec_…), in the clear or sealed.
  'secret',
  '*.secret',
  'secrets',
  '*.secrets',
  '*.secretSealed',
  '*.secretsSealed',
  '*.previousSecretSealed',
  // Node's HTTP parser errors carry the raw request head (request line, Authorization header,
  // URL query) as a byte array: Fastify logs it for a refused request (400, 431).
  'err.rawPacket',
  '*.rawPacket',
  'rawPacket',
];

/**
 * A clientSecret (`chk_…_secret_<signature>`) can travel in a URL: the stream route takes it as
 * `?client_secret=` because a browser's EventSource cannot send headers. Pino's `redact` works on
 * fields, but a URL also ends up inside messages and error texts (Fastify's own warnings quote
 * `request.url`), so every finished line is scrubbed: the query parameter's value, and the
 * signature of anything shaped like a clientSecret, wherever they appear.
 */
const CLIENT_SECRET_PARAMETER = /(client(?:_|%5F)secret=)[^&\s"\\#]*/gi;
// Also percent-encoded (`%5Fsecret%5F`), as a path a client encoded itself is logged.
const CLIENT_SECRET_SIGNATURE = /((?:_|%5F)secret(?:_|%5F))[A-Za-z0-9_%-]+/gi;

/** A webhook signing secret (Standard Webhooks: `whsec_` and base64), wherever it appears. */
const WEBHOOK_SECRET = /(whsec_)[A-Za-z0-9+/=]+/g;

/** `line` with every clientSecret and webhook secret in it replaced by `[redacted]` (see above). */
export function scrubSecrets(line: string): string {
  if (line.includes('whsec_')) line = line.replace(WEBHOOK_SECRET, '$1[redacted]');
  if (!/(?:_|%5F)secret/i.test(line)) return line;
  return line
    .replace(CLIENT_SECRET_PARAMETER, '$1[redacted]')
    .replace(CLIENT_SECRET_SIGNATURE, '$1[redacted]');
}

export function loggerOptions(level: string, name: string): LoggerOptions {
  return {
    level,
    name,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    hooks: { streamWrite: scrubSecrets },
  };
}
