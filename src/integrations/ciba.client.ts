/**
 * The CIBA protocol with one bank, on oauth4webapi (DESIGN.md §6.2-6.3): discovery, the signed
 * authentication request, its acknowledgement, one token request per call. Request functions
 * return the raw Response; process functions read it in full, decide what it is by the table in
 * bank.answers.ts, hand what is readable to oauth4webapi, and return a value or throw a
 * BankError with a stable code. Transport (the bank's mTLS fetch) is injected.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import * as oauth from 'oauth4webapi';
import {
  ackExpiresIn,
  ackInterval,
  answerError,
  type BankAnswer,
  bankAnswerOf,
  isNonEmptyString,
  readBankAnswer,
  replayAnswer,
  retryAfterOf,
  unreadableBody,
  withoutUnreadableOptionals,
} from './bank.answers.ts';
import { BankError, bankErrorCodes, safeOAuthCode, transportError } from './bank.errors.ts';
import type { BackchannelAuthenticationAck, PaymentInitiation, TokenPollOutcome } from './bank.types.ts';
import { endpointRefusal } from './bank-endpoints.policy.ts';
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

/**
 * oauth4webapi's refusal of an answer already read in full and checked by the table's rows
 * (bank.answers.ts), so never a transport error: its processing errors carry the body (tokens
 * included) in `cause`, so only the message (which never holds values) is kept. ID Token checks
 * map to invalid_id_token (row idToken); anything else is a readable answer we cannot use.
 */
function processingError(error: unknown, what: string): BankError {
  if (error instanceof BankError) return error;
  const message = error instanceof Error ? error.message : 'unexpected error';
  if (error instanceof oauth.OperationProcessingError || error instanceof oauth.UnsupportedOperationError) {
    return /JWT|ID Token|id_token/.test(message)
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
 * The endpoints of a bank's metadata that Bankpay may call, each one the document lists: the
 * backchannel and token endpoints (CIBA Core §4, RFC 8414 §2) and their RFC 8705 §5 mTLS aliases
 * (oauth4webapi takes the alias when there is one, the endpoint otherwise; both are checked, so
 * that neither choice can lead elsewhere), and jwks_uri (OIDC Discovery §3).
 */
function endpointsToCall(as: oauth.AuthorizationServer): Array<[string, unknown]> {
  const aliases: Record<string, unknown> =
    typeof as.mtls_endpoint_aliases === 'object' && as.mtls_endpoint_aliases !== null
      ? (as.mtls_endpoint_aliases as Record<string, unknown>)
      : {};
  const endpoints: Array<[string, unknown]> = [];
  for (const endpoint of ['backchannel_authentication_endpoint', 'token_endpoint'] as const) {
    endpoints.push([endpoint, as[endpoint]]);
    endpoints.push([`mtls_endpoint_aliases.${endpoint}`, aliases[endpoint]]);
  }
  endpoints.push(['jwks_uri', as.jwks_uri]);
  return endpoints.filter(([, url]) => url !== undefined && url !== null);
}

/**
 * OIDC Discovery 1.0 §4.3 (issuer must match), CIBA Core §4 (backchannel endpoint), RFC 8705 §5
 * (mtls_endpoint_aliases, preferred by the client when present): the bank's metadata.
 *
 * The issuer check (OIDC Discovery §4.3, RFC 8414 §3.3) proves whose document this is, not that
 * the endpoints it names belong to that bank: every endpoint Bankpay calls must be https on the
 * issuer's origin or on one of `allowedEndpointOrigins` (the bank entry's), and never a
 * link-local or metadata address (bank-endpoints.policy.ts). Our client certificate, signed
 * request objects and client assertions go to these endpoints.
 */
export async function processBankDiscoveryResponse(
  issuer: string,
  response: Response,
  now: number,
  allowedEndpointOrigins: readonly string[] = [],
): Promise<oauth.AuthorizationServer> {
  // The table's rows in bank.answers.ts: later, otherStatus, noAnswer, notJson, discovery*.
  const answer = await readBankAnswer(response, 'discovery', now, (status) => status === 200);
  if (!answer.json) throw unreadableBody('discovery', answer, now);
  if (typeof answer.json.issuer !== 'string') {
    throw answerError('discoveryIncomplete', 'discovery', 'the metadata has no issuer', answer, now);
  }
  const unusable = (message: string) =>
    answerError('discoveryUnusable', 'discovery', message, answer, now, bankErrorCodes.configurationError);
  let as: oauth.AuthorizationServer;
  try {
    as = await oauth.processDiscoveryResponse(new URL(issuer), replayAnswer(answer));
  } catch (error) {
    throw unusable(error instanceof Error ? error.message : 'unexpected error');
  }
  for (const endpoint of ['backchannel_authentication_endpoint', 'token_endpoint'] as const) {
    // The alias when published (what oauth4webapi uses with use_mtls_endpoint_aliases), else the endpoint.
    const url = as.mtls_endpoint_aliases?.[endpoint] ?? as[endpoint];
    if (typeof url !== 'string' || URL.parse(url)?.protocol !== 'https:') {
      throw unusable(`the bank publishes no usable https ${endpoint}`);
    }
  }
  if (typeof as.jwks_uri !== 'string' || !as.jwks_uri.startsWith('https://')) {
    throw unusable('the bank publishes no https jwks_uri');
  }
  for (const [name, url] of endpointsToCall(as)) {
    const refusal = endpointRefusal(typeof url === 'string' ? url : '', issuer, allowedEndpointOrigins);
    if (refusal) {
      throw answerError(
        'discoveryForeignEndpoint',
        'discovery',
        `${name} ${refusal}`,
        answer,
        now,
        bankErrorCodes.configurationError,
      );
    }
  }
  const modes = as.backchannel_token_delivery_modes_supported;
  if (Array.isArray(modes) && !modes.includes('poll')) throw unusable('the bank does not offer poll mode');
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
  /** CIBA Core §7.1: the bearer token the bank's ping must carry (ping mode only). */
  clientNotificationToken?: string | undefined;
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
    ...(params.clientNotificationToken ? { client_notification_token: params.clientNotificationToken } : {}),
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
  if (params.clientNotificationToken) form.set('client_notification_token', params.clientNotificationToken);
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

/** CIBA Core §13 and RFC 6749 §5.2: the statuses of a readable bc-authorize answer. */
const ACK_STATUSES = [200, 400, 401, 403];

/**
 * CIBA Core §7.3 (acknowledgement: auth_req_id required; expires_in and interval read leniently,
 * because the customer may already have the notification) and §13 (error codes, returned as the
 * BankError's code, not retryable). Every other answer is decided by the table in
 * bank.answers.ts; `requestedExpiry` is what we asked for (row ackExpiresIn).
 */
export async function processBackchannelAuthenticationAck(
  ctx: CibaContext,
  response: Response,
  requestedExpiry: number,
): Promise<BackchannelAuthenticationAck> {
  const now = ctx.now();
  const answer = await readBankAnswer(response, 'bc-authorize', now, (s) => ACK_STATUSES.includes(s));
  if (answer.status !== 200) throw await backchannelAuthenticationError(ctx, answer);
  const json = answer.json;
  if (!json) throw unreadableBody('bc-authorize', answer, now);
  if (!isNonEmptyString(json.auth_req_id)) {
    throw answerError(
      'ackWithoutAuthReqId',
      'bc-authorize',
      'the acknowledgement has no auth_req_id',
      answer,
      now,
    );
  }
  const expiresIn = ackExpiresIn(json.expires_in, requestedExpiry);
  const interval = ackInterval(json.interval);
  const { interval: _odd, ...members } = json;
  let ack: oauth.BackchannelAuthenticationResponse;
  try {
    // oauth4webapi checks what is left: auth_req_id, and expires_in as we read it.
    ack = await oauth.processBackchannelAuthenticationResponse(
      ctx.as,
      ctx.client,
      replayAnswer(answer, { ...members, expires_in: expiresIn, ...(interval ? { interval } : {}) }),
    );
  } catch (error) {
    throw processingError(error, 'bc-authorize');
  }
  return { authReqId: ack.auth_req_id, expiresIn, interval };
}

/** CIBA Core §13 / RFC 6749 §5.2 (row ackError); an error nobody can read is transient (notJson). */
async function backchannelAuthenticationError(ctx: CibaContext, answer: BankAnswer): Promise<BankError> {
  const now = ctx.now();
  try {
    await oauth.processBackchannelAuthenticationResponse(ctx.as, ctx.client, replayAnswer(answer));
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      const code = safeOAuthCode(error.error);
      if (code === 'temporarily_unavailable') {
        return new BankError(
          bankErrorCodes.bankUnavailable,
          'bc-authorize: the bank is temporarily unavailable',
          {
            retryable: true,
            retryAfterSeconds: retryAfterOf(answer.headers, now),
            status: answer.status,
          },
        );
      }
      if (code) {
        return answerError(
          'ackError',
          'bc-authorize',
          `the bank refused the request (${code})`,
          answer,
          now,
          code,
        );
      }
    }
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      const code = challengeError(error);
      return answerError(
        'ackError',
        'bc-authorize',
        `the bank refused our client (${code})`,
        answer,
        now,
        code,
      );
    }
  }
  return unreadableBody('bc-authorize', answer, now);
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
  /** The bank entry's requireAuthReqIdClaim and requireAtHash: refuse an ID Token without them. */
  requireAuthReqIdClaim: boolean;
  requireAtHash: boolean;
}

/** RFC 6749 §5.1/§5.2: the statuses of a readable token answer. */
const TOKEN_STATUSES = [200, 400, 401];

/**
 * CIBA Core §10.1.1 (tokens, ID Token validated before anything is returned), §11 (pending,
 * slow_down, access_denied, expired_token, ...; with the answer's Retry-After when it has one);
 * 503/429 → unavailable with Retry-After. Every other answer is decided by the table in
 * bank.answers.ts: an unreadable one throws BankError bank_unavailable (poll again).
 */
export async function processBackchannelTokenResponse(
  ctx: CibaContext,
  response: Response,
  expected: TokenExpectations,
): Promise<TokenPollOutcome> {
  let body: string;
  try {
    body = await response.text();
  } catch (error) {
    throw transportError(error, 'token');
  }
  return processBackchannelTokenAnswer(
    ctx,
    { status: response.status, headers: response.headers, body },
    expected,
  );
}

/**
 * `processBackchannelTokenResponse` for an answer already read whole: the token poller reads it,
 * keeps it (when it may settle the checkout), and only then has it interpreted here, once.
 */
export async function processBackchannelTokenAnswer(
  ctx: CibaContext,
  read: { status: number; headers: Headers; body: string },
  expected: TokenExpectations,
): Promise<TokenPollOutcome> {
  const now = ctx.now();
  if (read.status === 503 || read.status === 429) {
    return { kind: 'unavailable', retryAfterSeconds: retryAfterOf(read.headers, now) };
  }
  const answer = bankAnswerOf(read, 'token', now, (status) => TOKEN_STATUSES.includes(status));
  if (answer.status !== 200) return tokenErrorOutcome(ctx, answer);
  if (!answer.json) throw unreadableBody('token', answer, now);
  const { access_token: accessToken, token_type: tokenType } = answer.json;
  if (!isNonEmptyString(accessToken) || !isNonEmptyString(tokenType)) {
    throw answerError(
      'tokenIncomplete',
      'token',
      'the answer has no access_token or token_type',
      answer,
      now,
    );
  }
  if (tokenType.toLowerCase() !== 'bearer') {
    throw answerError('tokenType', 'token', `unexpected token_type ${tokenType.slice(0, 20)}`, answer, now);
  }
  let json: oauth.TokenEndpointResponse;
  try {
    json = await oauth.processBackchannelAuthenticationGrantResponse(
      ctx.as,
      withClock(ctx.client, now),
      replayAnswer(answer, withoutUnreadableOptionals(answer.json)),
    );
  } catch (error) {
    throw processingError(error, 'token');
  }
  if (typeof json.id_token !== 'string') {
    throw answerError('idToken', 'token', 'ID Token missing', answer, now, bankErrorCodes.invalidIdToken);
  }
  const claims = await validateIdToken(json.id_token, expected.keys.getKey, {
    issuer: ctx.as.issuer,
    clientId: ctx.client.client_id,
    algorithm: expected.idTokenAlg,
    authReqId: expected.authReqId,
    requireAuthReqIdClaim: expected.requireAuthReqIdClaim,
    accessToken: json.access_token,
    requireAtHash: expected.requireAtHash,
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

/**
 * CIBA Core §11 / RFC 6749 §5.2 (row tokenError): a 400/401 answer's meaning. A Retry-After comes
 * along with every answer that means "later". An error nobody can read is transient (notJson).
 */
async function tokenErrorOutcome(ctx: CibaContext, answer: BankAnswer): Promise<TokenPollOutcome> {
  const now = ctx.now();
  const retryAfterSeconds = retryAfterOf(answer.headers, now);
  const later = retryAfterSeconds === undefined ? {} : { retryAfterSeconds };
  // Nearly every poll: "ask again" (RFC 6749 §5.2 error body, CIBA Core §11), read from the JSON
  // already parsed rather than rebuilt into a Response for oauth4webapi to parse again.
  const code = answer.status === 400 ? safeOAuthCode(answer.json?.error) : undefined;
  if (code === 'authorization_pending') return { kind: 'pending', ...later };
  if (code === 'slow_down') return { kind: 'slow_down', ...later };
  try {
    await oauth.processBackchannelAuthenticationGrantResponse(
      ctx.as,
      withClock(ctx.client, now),
      replayAnswer(answer),
    );
  } catch (error) {
    if (error instanceof oauth.ResponseBodyError) {
      const code = safeOAuthCode(error.error);
      switch (code) {
        case undefined:
          break;
        case 'authorization_pending':
          return { kind: 'pending', ...later };
        case 'slow_down':
          return { kind: 'slow_down', ...later };
        case 'access_denied':
          return { kind: 'denied' };
        case 'expired_token':
          return { kind: 'expired' };
        case 'temporarily_unavailable':
          return { kind: 'unavailable', retryAfterSeconds };
        default: {
          const desc = description(error.error_description);
          return { kind: 'failed', code, ...(desc ? { description: desc } : {}) };
        }
      }
    }
    if (error instanceof oauth.WWWAuthenticateChallengeError) {
      return { kind: 'failed', code: challengeError(error) };
    }
  }
  throw unreadableBody('token', answer, now);
}
