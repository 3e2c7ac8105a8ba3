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
];

export function loggerOptions(level: string, name: string): LoggerOptions {
  return {
    level,
    name,
    redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
  };
}
