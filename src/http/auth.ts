/**
 * Bearer credentials: a merchant API key, or (for reading one checkout) its clientSecret.
 * Failures are 401 problem+json with `WWW-Authenticate: Bearer` (RFC 6750 §3).
 */
import type { FastifyRequest } from 'fastify';
import { authenticateApiKey } from '../infra/api-keys.ts';
import type { Database } from '../infra/database.ts';
import { credentialVerified } from './auth-throttle.ts';
import { ProblemError } from './problem.ts';

export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return undefined;
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  return match?.[1];
}

export function unauthorized(
  detail = 'Send a merchant API key as "Authorization: Bearer <key>"',
): ProblemError {
  return new ProblemError('unauthorized', detail);
}

/** The merchant API key's id, or a 401. */
export async function requireMerchant(db: Database, request: FastifyRequest): Promise<string> {
  const token = bearerToken(request);
  if (!token) throw unauthorized();
  const apiKeyId = await authenticateApiKey(db, token);
  if (!apiKeyId) throw unauthorized('The API key is not valid');
  credentialVerified(request);
  return apiKeyId;
}
