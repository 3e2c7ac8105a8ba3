/**
 * ID Token validation for the CIBA token response: OIDC Core §3.1.3.7 (signature, iss, aud, azp,
 * exp, iat), §3.2.2.9 (at_hash), CIBA Core §7.4 / §10.1.1 and FAPI-CIBA §5.2.2.x (the ID Token is
 * the client's proof of who approved and which auth_req_id it answers).
 *
 * Pure apart from `keys` (the bank's JWKS, injected): every clock reading comes from `now`. A
 * failure is a BankError 'invalid_id_token' whose message names the check that failed, never the
 * token itself.
 */
import { createHash } from 'node:crypto';
import { errors, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from 'jose';
import { BankError, bankErrorCodes } from './bank.errors.ts';

/** Only asymmetric algorithms; `none` and HS* (a shared secret we do not have) are never accepted. */
export const idTokenAlgorithms = ['PS256', 'ES256', 'RS256'] as const;
export type IdTokenAlg = (typeof idTokenAlgorithms)[number];

/** CIBA Core §7.4 / FAPI-CIBA: the claim tying the ID Token to the authentication request. */
export const AUTH_REQ_ID_CLAIM = 'urn:openid:params:jwt:claim:auth_req_id';

export interface IdTokenExpectations {
  /** The bank's issuer identifier, exactly (discovery's `issuer`). */
  issuer: string;
  clientId: string;
  /** The bank's configured `idTokenSignedResponseAlg`: the only algorithm accepted. */
  algorithm: IdTokenAlg;
  /** The auth_req_id that was polled; checked when the bank includes the claim. */
  authReqId: string;
  /** The claim must be there (the bank entry's requireAuthReqIdClaim; default false). */
  requireAuthReqIdClaim?: boolean;
  /** The access token issued beside it; checked against `at_hash` when present. */
  accessToken: string;
  /** `at_hash` must be there (the bank entry's requireAtHash; default false). */
  requireAtHash?: boolean;
  /** When set, `sub` must equal it (banks whose subjects are the logins we send as login_hint). */
  expectedSubject?: string | undefined;
  /** Epoch milliseconds. */
  now: number;
  /** Seconds of clock difference tolerated (default 30). */
  clockToleranceSeconds?: number;
  /** Freshness: an ID Token issued longer ago than this is refused (seconds, default 300). */
  maxAgeSeconds?: number;
}

export interface IdTokenClaims extends JWTPayload {
  iss: string;
  sub: string;
  aud: string | string[];
  exp: number;
  iat: number;
}

function invalid(check: string): BankError {
  return new BankError(bankErrorCodes.invalidIdToken, `ID Token ${check}`, { retryable: false });
}

/** OIDC Core §3.2.2.9: base64url of the left-most half of the hash of the access token. */
export function accessTokenHash(accessToken: string, alg: IdTokenAlg): string {
  // Every accepted algorithm is a *256 algorithm: SHA-256.
  const hashName = alg.endsWith('256') ? 'sha256' : undefined;
  if (!hashName) throw invalid(`alg ${alg} has no at_hash rule`);
  const digest = createHash(hashName).update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

function mapJoseError(error: unknown, algorithm: IdTokenAlg): BankError {
  // The key set could not be fetched (BankError from the JWKS cache): not the token's fault.
  if (error instanceof BankError) return error;
  if (error instanceof errors.JOSEAlgNotAllowed) return invalid(`alg: not the configured ${algorithm}`);
  if (error instanceof errors.JWSSignatureVerificationFailed)
    return invalid('signature: verification failed');
  if (error instanceof errors.JWKSNoMatchingKey) return invalid('signature: no key of the bank matches');
  if (error instanceof errors.JWKSMultipleMatchingKeys)
    return invalid('signature: several keys of the bank match and none verifies');
  if (error instanceof errors.JWTExpired) return invalid(`${error.claim}: expired`);
  if (error instanceof errors.JWTClaimValidationFailed) return invalid(`${error.claim}: ${error.reason}`);
  if (error instanceof errors.JOSENotSupported) return invalid('header: not supported');
  if (error instanceof errors.JWSInvalid || error instanceof errors.JWTInvalid)
    return invalid('format: not a valid signed JWT');
  return invalid('could not be verified');
}

/**
 * OIDC Core §3.1.3.7 + §3.2.2.9, CIBA Core §7.4 / §10.1.1, FAPI-CIBA: verifies the ID Token's
 * signature with the bank's keys (only `algorithm`) and every claim we rely on; returns the claims.
 */
export async function validateIdToken(
  idToken: string,
  keys: JWTVerifyGetKey,
  expected: IdTokenExpectations,
): Promise<IdTokenClaims> {
  if (!(idTokenAlgorithms as readonly string[]).includes(expected.algorithm)) {
    throw invalid(`alg: ${expected.algorithm} is not an accepted algorithm`);
  }
  const tolerance = expected.clockToleranceSeconds ?? 30;
  const maxAge = expected.maxAgeSeconds ?? 300;
  const nowSeconds = Math.floor(expected.now / 1000);

  let claims: JWTPayload;
  try {
    // §3.1.3.7 items 6-7 (signature with the pinned alg), 9 (exp), and nbf when present.
    ({ payload: claims } = await jwtVerify(idToken, keys, {
      algorithms: [expected.algorithm],
      clockTolerance: tolerance,
      currentDate: new Date(expected.now),
    }));
  } catch (error) {
    throw mapJoseError(error, expected.algorithm);
  }

  // §3.1.3.7 item 2: iss exactly the issuer from discovery.
  if (claims.iss !== expected.issuer) throw invalid('iss: not the bank issuer');

  // Item 3: aud contains our client_id (and nothing else is trusted without azp).
  const aud = claims.aud;
  const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : undefined;
  if (!audiences || audiences.length === 0 || !audiences.every((a) => typeof a === 'string')) {
    throw invalid('aud: missing or malformed');
  }
  if (!audiences.includes(expected.clientId)) throw invalid('aud: does not contain our client_id');
  // Items 4-5: with several audiences azp is required; when present at all it must be us.
  if (audiences.length > 1 && claims.azp === undefined) throw invalid('azp: required with several audiences');
  if (claims.azp !== undefined && claims.azp !== expected.clientId) throw invalid('azp: not our client_id');

  // Item 9: exp is required (jose only checks it when present).
  if (typeof claims.exp !== 'number') throw invalid('exp: missing');

  // Item 10: iat present, not in the future, and fresh (the token answers this very poll).
  if (typeof claims.iat !== 'number' || !Number.isFinite(claims.iat)) throw invalid('iat: missing');
  if (claims.iat > nowSeconds + tolerance) throw invalid('iat: in the future');
  if (claims.iat < nowSeconds - maxAge - tolerance) throw invalid('iat: too old');

  // §2: sub is a non-empty string identifying the end-user at the bank.
  if (typeof claims.sub !== 'string' || claims.sub.length === 0) throw invalid('sub: missing');
  if (expected.expectedSubject !== undefined && claims.sub !== expected.expectedSubject) {
    throw invalid('sub: not the customer the request was made for');
  }

  // CIBA Core §7.4 / FAPI-CIBA: the ID Token answers this auth_req_id. CIBA Core §10.3.1 makes
  // the claim optional outside push mode; a bank that always sends it (FAPI-CIBA) is configured
  // to require it, so that a token without it cannot pass as one answering any request.
  const authReqIdClaim = claims[AUTH_REQ_ID_CLAIM];
  if (expected.requireAuthReqIdClaim && authReqIdClaim === undefined) {
    throw invalid(`auth_req_id (${AUTH_REQ_ID_CLAIM}): missing, and this bank requires it`);
  }
  if (authReqIdClaim !== undefined && authReqIdClaim !== expected.authReqId) {
    throw invalid('auth_req_id: not the polled request');
  }

  // §3.2.2.9: at_hash binds the access token issued beside it. Optional for tokens from the token
  // endpoint (§3.1.3.6); required for a bank configured so (FAPI banks send it).
  if (expected.requireAtHash && claims.at_hash === undefined) {
    throw invalid('at_hash: missing, and this bank requires it');
  }
  if (claims.at_hash !== undefined) {
    if (
      typeof claims.at_hash !== 'string' ||
      claims.at_hash !== accessTokenHash(expected.accessToken, expected.algorithm)
    ) {
      throw invalid('at_hash: does not match the access token');
    }
  }

  return claims as IdTokenClaims;
}
