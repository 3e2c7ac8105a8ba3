/**
 * Everything Bankpay says to a bank, behind one object per configured bank: CIBA (CIBA Core 1.0,
 * poll mode, FAPI-CIBA signed requests) over mutual TLS (RFC 8705), ID Token validation, and the
 * payment API (DESIGN.md §4). One mTLS Agent per bank, built here once and reused by every call;
 * discovery and the bank's keys are fetched on first use and cached (a failure is not cached).
 *
 * No environment reads, no Fastify: the BankConfig comes from src/config.ts.
 */
import * as oauth from 'oauth4webapi';
import type { Dispatcher } from 'undici';
import type { BankConfig } from '../config.ts';
import { BankError, bankErrorCodes, transportError } from './bank.errors.ts';
import type {
  BackchannelAuthenticationAck,
  PaymentInitiation,
  PaymentResult,
  RawTokenAnswer,
  TokenPollOutcome,
} from './bank.types.ts';
import * as payments from './bank-payments.client.ts';
import {
  type BackchannelAuthenticationParams,
  backchannelAuthenticationRequest,
  backchannelTokenRequest,
  bankDiscoveryRequest,
  type CibaContext,
  plainBackchannelParameters,
  processBackchannelAuthenticationAck,
  processBackchannelTokenAnswer,
  processBankDiscoveryResponse,
  signBackchannelRequestObject,
} from './ciba.client.ts';
import { createJwksCache, type JwksCache } from './jwks.cache.ts';
import { type BankFetch, createBankFetch, createMtlsAgent } from './mtls.agent.ts';
import { importSigningKey, type SigningKey } from './signing-key.loader.ts';

export { BankError, type BankErrorCode, bankErrorCodes } from './bank.errors.ts';
export type {
  BackchannelAuthenticationAck,
  BankTokens,
  PaymentInitiation,
  PaymentResult,
  PaymentStatus,
  RawTokenAnswer,
  TokenPollOutcome,
} from './bank.types.ts';
export { DEFAULT_POLL_INTERVAL_S, SLOW_DOWN_INCREMENT_S } from './bank.types.ts';

export interface BankClient {
  readonly bankId: string;
  /**
   * CIBA Core §7.1: signed request object (when bank.requestObjectSigningAlg), one hint,
   * binding_message, requested_expiry, authorization_details when bank.authorizationDetails, and
   * in ping mode the client_notification_token the caller made for this request.
   */
  startBackchannelAuthentication(input: {
    loginHint: string;
    bindingMessage: string;
    requestedExpiry: number;
    payment?: PaymentInitiation;
    clientNotificationToken?: string;
  }): Promise<BackchannelAuthenticationAck>;
  /** CIBA Core §10.1: exactly one token request. On tokens, the ID Token is fully validated first (throws BankError 'invalid_id_token' otherwise). */
  pollToken(authReqId: string, expect: { loginHint: string }): Promise<TokenPollOutcome>;
  /**
   * CIBA Core §10.1: exactly one token request, its answer read whole and returned as it arrived,
   * uninterpreted (transport failures throw BankError bank_unavailable).
   */
  requestTokenAnswer(authReqId: string): Promise<RawTokenAnswer>;
  /** CIBA Core §10.1.1, §11: what `requestTokenAnswer` returned (now or before a crash) means. */
  processTokenAnswer(
    authReqId: string,
    answer: RawTokenAnswer,
    expect: { loginHint: string },
  ): Promise<TokenPollOutcome>;
  /** DESIGN §4: POST {paymentsApiUrl}/payments over mTLS, Bearer token, Idempotency-Key. */
  initiatePayment(
    accessToken: string,
    idempotencyKey: string,
    body: PaymentInitiation,
  ): Promise<PaymentResult>;
  getPayment(accessToken: string, paymentId: string): Promise<PaymentResult>;
  close(): Promise<void>;
}

export interface BankClientOptions {
  /** Deadline of every request to the bank, headers and body (ms, default 10 s). */
  timeoutMs?: number;
  /** Clock (epoch ms) for ID Token and request object times and Retry-After dates. */
  now?: () => number;
  /**
   * The transport, when the caller builds it (tests count its connections); it is then the
   * caller's to close. Default: createMtlsAgent(bank.tls), closed by close().
   */
  agent?: Dispatcher;
}

interface Runtime {
  ctx: CibaContext;
  keys: JwksCache;
  requestObjectKey: SigningKey | undefined;
}

async function clientAuthentication(bank: BankConfig): Promise<oauth.ClientAuth> {
  if (bank.tokenEndpointAuthMethod === 'tls_client_auth') return oauth.TlsClientAuth();
  // RFC 7523 / OIDC Core §9 private_key_jwt; config.ts falls back to the request object key.
  const pem = bank.clientAssertionKey ?? bank.requestObjectKey;
  if (!pem) {
    throw new BankError(bankErrorCodes.configurationError, 'private_key_jwt needs a client assertion key', {
      retryable: false,
    });
  }
  const alg = bank.clientAssertionSigningAlg ?? bank.requestObjectSigningAlg ?? 'PS256';
  // The request-object key, when it signs the assertions too, keeps the kid the bank knows it by.
  const kid = pem === bank.requestObjectKey ? bank.requestObjectKid : undefined;
  const { key, kid: assertionKid } = await importSigningKey(pem, alg, 'clientAssertionKeyFile', kid);
  return oauth.PrivateKeyJwt({ key, kid: assertionKid });
}

/** CIBA Core §7.1 / §10.1 and DESIGN.md §4 against one bank (see BankClient). */
export function createBankClient(bank: BankConfig, options: BankClientOptions = {}): BankClient {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const now = options.now ?? Date.now;
  const ownAgent = options.agent === undefined ? createMtlsAgent(bank.tls) : undefined;
  const dispatcher: Dispatcher = options.agent ?? (ownAgent as Dispatcher);
  // The only origins this bank's client calls: a URL from anywhere else never gets our
  // certificate, request objects or client assertions (bank-endpoints.policy.ts).
  const origins = new Set([
    new URL(bank.issuer).origin,
    ...bank.allowedEndpointOrigins,
    new URL(bank.paymentsApiUrl).origin,
  ]);
  const fetch: BankFetch = createBankFetch(dispatcher, timeoutMs, origins);
  const client: oauth.Client = {
    client_id: bank.clientId,
    // RFC 8705 §5: we always present our certificate (our tokens are bound to it).
    use_mtls_endpoint_aliases: true,
    id_token_signed_response_alg: bank.idTokenSignedResponseAlg,
    [oauth.clockTolerance]: 30,
  };
  let runtime: Promise<Runtime> | undefined;
  let closed = false;

  async function setUp(): Promise<Runtime> {
    let response: Response;
    try {
      response = await bankDiscoveryRequest(bank.issuer, fetch);
    } catch (error) {
      throw transportError(error, 'discovery');
    }
    const as = await processBankDiscoveryResponse(bank.issuer, response, now(), bank.allowedEndpointOrigins);
    const keys = createJwksCache(fetch, as.jwks_uri as string, { now });
    // Warm the keys now: once the bank has issued tokens, the auth_req_id is spent, so a JWKS
    // outage at that moment would lose them.
    await keys.refresh();
    const requestObjectKey =
      bank.requestObjectSigningAlg && bank.requestObjectKey
        ? await importSigningKey(
            bank.requestObjectKey,
            bank.requestObjectSigningAlg,
            'requestObjectKeyFile',
            bank.requestObjectKid,
          )
        : undefined;
    if (bank.requestObjectSigningAlg && !requestObjectKey) {
      throw new BankError(bankErrorCodes.configurationError, 'requestObjectSigningAlg needs a key', {
        retryable: false,
      });
    }
    const clientAuth = await clientAuthentication(bank);
    return { ctx: { as, client, clientAuth, fetch, now }, keys, requestObjectKey };
  }

  /** Discovery once per client; a failure is forgotten so the next call tries again. */
  function ready(): Promise<Runtime> {
    if (closed) return Promise.reject(new BankError(bankErrorCodes.configurationError, 'bank client closed'));
    if (!runtime) {
      const attempt = setUp();
      runtime = attempt;
      attempt.catch(() => {
        if (runtime === attempt) runtime = undefined;
      });
    }
    return runtime;
  }

  return {
    bankId: bank.id,

    async startBackchannelAuthentication(input) {
      const { ctx, requestObjectKey } = await ready();
      const params: BackchannelAuthenticationParams = {
        scope: bank.scope,
        loginHint: input.loginHint,
        bindingMessage: input.bindingMessage,
        requestedExpiry: input.requestedExpiry,
        payment: bank.authorizationDetails ? input.payment : undefined,
        clientNotificationToken: input.clientNotificationToken,
      };
      const parameters = requestObjectKey
        ? new URLSearchParams({
            request: await signBackchannelRequestObject(params, {
              clientId: bank.clientId,
              audience: ctx.as.issuer,
              key: requestObjectKey,
              now: now(),
            }),
          })
        : plainBackchannelParameters(params);
      let response: Response;
      try {
        response = await backchannelAuthenticationRequest(ctx, parameters);
      } catch (error) {
        throw transportError(error, 'bc-authorize');
      }
      return processBackchannelAuthenticationAck(ctx, response, input.requestedExpiry);
    },

    async pollToken(authReqId, expect) {
      return this.processTokenAnswer(authReqId, await this.requestTokenAnswer(authReqId), expect);
    },

    async requestTokenAnswer(authReqId) {
      const { ctx } = await ready();
      try {
        const response = await backchannelTokenRequest(ctx, authReqId);
        const body = await response.text();
        const headers: Record<string, string> = {};
        for (const name of KEPT_ANSWER_HEADERS) {
          const value = response.headers.get(name);
          if (value !== null) headers[name] = value;
        }
        return { status: response.status, headers, body };
      } catch (error) {
        throw transportError(error, 'token');
      }
    },

    async processTokenAnswer(authReqId, answer, expect) {
      const { ctx, keys } = await ready();
      const read = { status: answer.status, headers: new Headers(answer.headers), body: answer.body };
      return processBackchannelTokenAnswer(ctx, read, {
        authReqId,
        keys,
        idTokenAlg: bank.idTokenSignedResponseAlg,
        expectedSubject: bank.loginHintIsSubject ? expect.loginHint : undefined,
        requireAuthReqIdClaim: bank.requireAuthReqIdClaim,
        requireAtHash: bank.requireAtHash,
      });
    },

    initiatePayment(accessToken, idempotencyKey, body) {
      return payments.initiatePayment(fetch, bank.paymentsApiUrl, accessToken, idempotencyKey, body, now);
    },

    getPayment(accessToken, paymentId) {
      return payments.getPayment(fetch, bank.paymentsApiUrl, accessToken, paymentId, now);
    },

    async close() {
      closed = true;
      await ownAgent?.close();
    },
  };
}

/** The headers of a token answer its interpretation reads, kept with a stored answer. */
const KEPT_ANSWER_HEADERS = ['content-type', 'retry-after', 'www-authenticate'] as const;

/**
 * Whether a token answer may settle the checkout (tokens, or a refusal such as access_denied or
 * expired_token), and so must be kept before it is interpreted: everything but the answers that
 * only say "ask again" (authorization_pending, slow_down: CIBA Core §11), 5xx and 429. Those are
 * nearly every answer, and keeping them would cost a write per poll for nothing.
 */
export function mayBeSettlingTokenAnswer(answer: RawTokenAnswer): boolean {
  if (answer.status === 429 || answer.status >= 500) return false;
  let json: { error?: unknown; access_token?: unknown } | null;
  try {
    json = JSON.parse(answer.body) as typeof json;
  } catch {
    return false; // unreadable: transient (bank.answers.ts), nothing to keep
  }
  if (typeof json !== 'object' || json === null) return false;
  // Tokens; an unreadable 200 (a proxy's page) is no answer, and kept it would be read for ever.
  if (answer.status === 200) return typeof json.access_token === 'string';
  return json.error !== 'authorization_pending' && json.error !== 'slow_down';
}

/** One client (and so one mTLS Agent) per configured bank, by bank id. */
export function createBankClients(
  banks: BankConfig[],
  options: Omit<BankClientOptions, 'agent'> = {},
): Map<string, BankClient> {
  return new Map(banks.map((bank) => [bank.id, createBankClient(bank, options)]));
}
