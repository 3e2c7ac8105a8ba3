/**
 * The CIBA protocol with one bank, on oauth4webapi (DESIGN.md §6.2-6.3): discovery, the signed
 * authentication request, its acknowledgement, one token request per call. Request functions
 * return the raw Response; process functions validate it and return a value or throw a BankError
 * with a stable code. Transport (the bank's mTLS fetch) is injected.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import {
  BankError,
  bankErrorCodes,
  isUnavailableStatus,
  parseRetryAfter,
  safeOAuthCode,
  transportError,
  unavailableStatus,
} from './bank.errors.ts';
import type { BackchannelAuthenticationAck, PaymentInitiation, TokenPollOutcome } from './bank.types.ts';
import { type IdTokenAlg, validateIdToken } from './id-token.validator.ts';
import type { JwksCache } from './jwks.cache.ts';
import type { BankFetch } from './mtls.agent.ts';
import type { SigningKey } from './signing-key.loader.ts';

export const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba';
export const PAYMENT_INITIATION_TYPE = 'payment_initiation';

/**
 * FAPI-CIBA §5.2.2: a request object lives at most 60 minutes (exp − nbf); ours 5, the most some
 * servers accept (SimpleIdServer: ≤ 300 s).
 */
export const REQUEST_OBJECT_LIFETIME_SECONDS = 300;
/**
 * `nbf` this far before now: a bank whose clock is behind ours (servers that check nbf ≤ now with
 * no leeway, SimpleIdServer among them) must not see a request object that is not yet valid.
 * FAPI 1.0 Advanced §5.2.2-17 allows nbf up to 60 minutes in the past.
 */
export const REQUEST_OBJECT_CLOCK_SKEW_SECONDS = 30;

/** Everything a protocol call needs, resolved once per bank client (after discovery). */
export interface CibaContext {
  as: oauth.AuthorizationServer;
  client: oauth.Client;
  clientAuth: oauth.ClientAuth;
  fetch: BankFetch;
  now: () => number;
}

type OAuthFetch = NonNullable<oauth.HttpRequestOptions<'POST', URLSearchParams>[typeof oauth.customFetch]>;

function oauthOptions(ctx: Pick<CibaContext, 'fetch'>): { [oauth.customFetch]: OAuthFetch } {
  return { [oauth.customFetch]: ctx.fetch as OAuthFetch };
}

/** oauth4webapi reads its own clock: align it with ours (tests inject `now`). */
export function withClock(client: oauth.Client, now: number): oauth.Client {
  return { ...client, [oauth.clockSkew]: Math.round((now - Date.now()) / 1000) };
}

function isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

function looksLikeTransport(error: unknown): boolean {
  if (isAbort(error)) return true;
  const cause = (error as { cause?: { code?: unknown; name?: unknown } } | null)?.cause;
  return (
    error instanceof TypeError &&
    typeof cause === 'object' &&
    cause !== null &&
    (typeof cause.code === 'string' || isAbort(cause))
  );
}

/**
 * oauth4webapi's processing errors carry the response body (tokens included) in `cause`: only
 * its message (which never holds values) is kept, and ID Token checks map to invalid_id_token.
 */
function processingError(error: unknown, what: string): BankError {
  if (error instanceof BankError) return error;
  if (looksLikeTransport(error)) return transportError(error, what);
  // oauth4webapi wraps a body that could not be read (deadline, reset) as a parse error.
  const cause = (error as { cause?: unknown } | null)?.cause;
  if (looksLikeTransport(cause)) return transportError(cause, what);
  const message = error instanceof Error ? error.message : 'unexpected error';
  const aboutIdToken = /JWT|ID Token|id_token/.test(message);
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.UnsupportedOperationError) {
    return aboutIdToken
      ? new BankError(bankErrorCodes.invalidIdToken, `ID Token rejected: ${message}`)
      : new BankError(bankErrorCodes.invalidBankResponse, `${what}: ${message}`);
  }
  return new BankError(bankErrorCodes.invalidBankResponse, `${what}: the answer could not be processed`);
}

function challengeError(error: oauth.WWWAuthenticateChallengeError): string {
  for (const challenge of error.cause) {
    const code = safeOAuthCode(challenge.parameters.error);
    if (code) return code;
  }
  return 'invalid_client';
}

function description(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value.slice(0, 300) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Discovery

/** OIDC Discovery 1.0 §4: GET {issuer}/.well-known/openid-configuration over the bank's Agent. */
export function bankDiscoveryRequest(issuer: string, fetch: BankFetch): Promise<Response> {
  return oauth.discoveryRequest(new URL(issuer), {
    algorithm: 'oidc',
    [oauth.customFetch]: fetch as NonNullable<oauth.DiscoveryRequestOptions[typeof oauth.customFetch]>,
  });
}

/**
 * OIDC Discovery 1.0 §4.3 (issuer must match), CIBA Core §4 (backchannel endpoint), RFC 8705 §5
 * (mtls_endpoint_aliases, preferred by the client when present): the bank's metadata.
 */
export async function processBankDiscoveryResponse(
  issuer: string,
  response: Response,
  now: number,
): Promise<oauth.AuthorizationServer> {
  if (isUnavailableStatus(response.status)) {
    await response.body?.cancel();
    throw unavailableStatus(response, 'discovery', now);
  }
  let as: oauth.AuthorizationServer;
  try {
    as = await oauth.processDiscoveryResponse(new URL(issuer), response);
  } catch (error) {
    if (looksLikeTransport(error)) throw transportError(error, 'discovery');
    const message = error instanceof Error ? error.message : 'unexpected error';
    throw new BankError(bankErrorCodes.configurationError, `discovery: ${message}`, {
      retryable: false,
      status: response.status,
    });
  }
  for (const endpoint of ['backchannel_authentication_endpoint', 'token_endpoint'] as const) {
    // The alias when published (what oauth4webapi uses with use_mtls_endpoint_aliases), else the endpoint.
    const url = as.mtls_endpoint_aliases?.[endpoint] ?? as[endpoint];
    if (typeof url !== 'string' || URL.parse(url)?.protocol !== 'https:') {
      throw new BankError(
        bankErrorCodes.configurationError,
        `discovery: the bank publishes no usable https ${endpoint}`,
        { retryable: false },
      );
    }
  }
  if (typeof as.jwks_uri !== 'string' || !as.jwks_uri.startsWith('https://')) {
    throw new BankError(
      bankErrorCodes.configurationError,
      'discovery: the bank publishes no https jwks_uri',
      {
        retryable: false,
      },
    );
  }
  const modes = as.backchannel_token_delivery_modes_supported;
  if (Array.isArray(modes) && !modes.includes('poll')) {
    throw new BankError(bankErrorCodes.configurationError, 'discovery: the bank does not offer poll mode', {
      retryable: false,
    });
  }
  return as;
}

// ---------------------------------------------------------------------------------------------
// Authentication request (CIBA Core §7)

export interface BackchannelAuthenticationParams {
  scope: string;
  loginHint: string;
  bindingMessage: string;
  requestedExpiry: number;
  /** RFC 9396 §2, when the bank takes authorization_details. */
  payment?: PaymentInitiation | undefined;
}

/** RFC 9396 §2: the one `payment_initiation` detail of a checkout. */
export function paymentAuthorizationDetails(payment: PaymentInitiation): Array<Record<string, unknown>> {
  return [{ type: PAYMENT_INITIATION_TYPE, ...payment }];
}

/** CIBA Core §7.1: the authentication request parameters, exactly one hint (login_hint). */
export function backchannelAuthenticationClaims(
  params: BackchannelAuthenticationParams,
): Record<string, unknown> {
  return {
    scope: params.scope,
    login_hint: params.loginHint,
    binding_message: params.bindingMessage,
    requested_expiry: params.requestedExpiry,
    ...(params.payment ? { authorization_details: paymentAuthorizationDetails(params.payment) } : {}),
  };
}

/**
 * CIBA Core §7.1.1 (signed authentication request) and FAPI-CIBA §5.2.2: a JWT signed with our
 * registered key (its kid) holding every parameter plus iss, aud, iat, nbf (30 s back, for clock
 * skew), exp (300 s after nbf) and a random jti.
 */
export async function signBackchannelRequestObject(
  params: BackchannelAuthenticationParams,
  signer: { clientId: string; audience: string; key: SigningKey; now: number },
): Promise<string> {
  const iat = Math.floor(signer.now / 1000);
  return new SignJWT(backchannelAuthenticationClaims(params))
    .setProtectedHeader({ alg: signer.key.alg, kid: signer.key.kid })
    .setIssuer(signer.clientId)
    .setAudience(signer.audience)
    .setIssuedAt(iat)
    .setNotBefore(iat - REQUEST_OBJECT_CLOCK_SKEW_SECONDS)
    .setExpirationTime(iat - REQUEST_OBJECT_CLOCK_SKEW_SECONDS + REQUEST_OBJECT_LIFETIME_SECONDS)
    .setJti(randomUUID())
    .sign(signer.key.key);
}

/** CIBA Core §7.1: the parameters as a plain form, for banks that take unsigned requests. */
export function plainBackchannelParameters(params: BackchannelAuthenticationParams): URLSearchParams {
  const form = new URLSearchParams({
    scope: params.scope,
    login_hint: params.loginHint,
    binding_message: params.bindingMessage,
    requested_expiry: String(params.requestedExpiry),
  });
  if (params.payment) {
    form.set('authorization_details', JSON.stringify(paymentAuthorizationDetails(params.payment)));
  }
  return form;
}

/**
 * CIBA Core §7.1: POST to the backchannel authentication endpoint (its RFC 8705 §5 mTLS alias
 * when published), authenticated by the client certificate or a client assertion.
 */
export function backchannelAuthenticationRequest(
  ctx: CibaContext,
  parameters: URLSearchParams,
): Promise<Response> {
  return oauth.backchannelAuthenticationRequest(
    ctx.as,
    withClock(ctx.client, ctx.now()),
    ctx.clientAuth,
    parameters,
    oauthOptions(ctx),
  );
}

/**
 * CIBA Core §7.3 (acknowledgement: auth_req_id and expires_in required, interval optional) and
 * §13 (error codes, returned as the BankError's code, not retryable).
 */
export async function processBackchannelAuthenticationAck(
  ctx: CibaContext,
  response: Response,
): Promise<BackchannelAuthenticationAck> {
  if (isUnavailableStatus(response.status)) {
    await response.body?.cancel();
    throw unavailableStatus(response, 'bc-authorize', ctx.now());
  }
  let ack: oauth.BackchannelAuthenticationResponse;
  try {
    ack = await oauth.processBackchannelAuthenticationResponse(ctx.as, ctx.client, response);
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      const code = safeOAuthCode(error.error) ?? bankErrorCodes.invalidBankResponse;
      if (code === 'temporarily_unavailable') {
        throw new BankError(
          bankErrorCodes.bankUnavailable,
          'bc-authorize: the bank is temporarily unavailable',
          {
            status: error.status,
          },
        );
      }
      throw new BankError(code, `bc-authorize: the bank refused the request (${code})`, {
        retryable: false,
        status: error.status,
      });
    }
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      const code = challengeError(error);
      throw new BankError(code, `bc-authorize: the bank refused our client (${code})`, {
        retryable: false,
        status: error.status,
      });
    }
    throw processingError(error, 'bc-authorize');
  }
  if (!(ack.expires_in > 0)) {
    throw new BankError(bankErrorCodes.invalidBankResponse, 'bc-authorize: expires_in must be positive');
  }
  return {
    authReqId: ack.auth_req_id,
    expiresIn: Math.floor(ack.expires_in),
    interval: ack.interval === undefined ? undefined : Math.ceil(ack.interval),
  };
}

// ---------------------------------------------------------------------------------------------
// Token request (CIBA Core §10)

/** CIBA Core §10.1: exactly one token request for the auth_req_id (grant_type urn:openid:params:grant-type:ciba). */
export function backchannelTokenRequest(ctx: CibaContext, authReqId: string): Promise<Response> {
  return oauth.backchannelAuthenticationGrantRequest(
    ctx.as,
    withClock(ctx.client, ctx.now()),
    ctx.clientAuth,
    authReqId,
    oauthOptions(ctx),
  );
}

export interface TokenExpectations {
  authReqId: string;
  keys: JwksCache;
  idTokenAlg: IdTokenAlg;
  /** Set when the bank's subjects are the logins sent as login_hint. */
  expectedSubject: string | undefined;
}

/**
 * CIBA Core §10.1.1 (tokens, ID Token validated before anything is returned), §11 (pending,
 * slow_down, access_denied, expired_token, ...); 503/429 → unavailable with Retry-After; other
 * 5xx → BankError bank_unavailable.
 */
export async function processBackchannelTokenResponse(
  ctx: CibaContext,
  response: Response,
  expected: TokenExpectations,
): Promise<TokenPollOutcome> {
  if (response.status === 503 || response.status === 429) {
    await response.body?.cancel();
    return {
      kind: 'unavailable',
      retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after'), ctx.now()),
    };
  }
  if (isUnavailableStatus(response.status)) {
    await response.body?.cancel();
    throw unavailableStatus(response, 'token', ctx.now());
  }
  let json: oauth.TokenEndpointResponse;
  try {
    json = await oauth.processBackchannelAuthenticationGrantResponse(
      ctx.as,
      withClock(ctx.client, ctx.now()),
      response,
    );
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      switch (error.error) {
        case 'authorization_pending':
          return { kind: 'pending' };
        case 'slow_down':
          return { kind: 'slow_down' };
        case 'access_denied':
          return { kind: 'denied' };
        case 'expired_token':
          return { kind: 'expired' };
        case 'temporarily_unavailable':
          return {
            kind: 'unavailable',
            retryAfterSeconds: parseRetryAfter(response.headers.get('retry-after'), ctx.now()),
          };
        default: {
          const desc = description(error.error_description);
          return {
            kind: 'failed',
            code: safeOAuthCode(error.error) ?? bankErrorCodes.invalidBankResponse,
            ...(desc ? { description: desc } : {}),
          };
        }
      }
    }
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      return { kind: 'failed', code: challengeError(error) };
    }
    throw processingError(error, 'token');
  }
  if (json.token_type !== 'bearer') {
    throw new BankError(
      bankErrorCodes.invalidBankResponse,
      `token: unexpected token_type ${json.token_type}`,
    );
  }
  if (typeof json.id_token !== 'string') {
    throw new BankError(bankErrorCodes.invalidIdToken, 'ID Token missing from the token response');
  }
  const claims = await validateIdToken(json.id_token, expected.keys.getKey, {
    issuer: ctx.as.issuer,
    clientId: ctx.client.client_id,
    algorithm: expected.idTokenAlg,
    authReqId: expected.authReqId,
    accessToken: json.access_token,
    expectedSubject: expected.expectedSubject,
    now: ctx.now(),
  });
  return {
    kind: 'tokens',
    tokens: {
      accessToken: json.access_token,
      idToken: json.id_token,
      ...(typeof json.expires_in === 'number' ? { expiresIn: json.expires_in } : {}),
    },
    subject: claims.sub,
  };
}
