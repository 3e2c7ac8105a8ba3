/**
 * The sandbox bank's OpenID Provider: oidc-provider 9 configured as a CIBA + mutual-TLS OP with
 * certificate-bound JWT access tokens carrying RFC 9396 payment authorization details.
 */

import type { X509Certificate } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { JWK } from 'jose';
import type {
  AuthorizationDetail,
  BackchannelAuthenticationRequest,
  ClientMetadata,
  Configuration,
  JWKS,
  KoaContextWithOIDC,
  default as OidcProvider,
} from 'oidc-provider';
import type { MapStore } from './adapter.ts';
import { createMapAdapter } from './adapter.ts';
import type { CustomerDirectory } from './customers.ts';
import type { FaultBook } from './faults.ts';
import type { IdTokenMinter } from './id-token.ts';
import { findPaymentInitiation, PAYMENT_INITIATION, parsePaymentInitiation } from './payment-details.ts';
import type { BcAuthorizeAttempt, PollRecord, RequestRegistry } from './requests.ts';

export type OidcModule = typeof import('oidc-provider');
export type Provider = OidcProvider;

export const CIBA_GRANT_TYPE = 'urn:openid:params:grant-type:ciba';
export const PAYMENTS_SCOPE = 'payments';
const BINDING_MESSAGE = /^[a-zA-Z0-9-._+/!?#]{1,20}$/;

let oidcModule: Promise<OidcModule> | undefined;

/**
 * Imports oidc-provider once. Its entry point warns "Unsupported runtime" on Node 20 (it wants
 * Node 22 LTS; everything we use works on 20, see STACK.md): that one line is filtered out here,
 * while the import runs, and nothing else.
 */
export function loadOidcProvider(): Promise<OidcModule> {
  oidcModule ??= (async () => {
    const warn = console.warn;
    console.warn = (...args: unknown[]) => {
      if (typeof args[0] === 'string' && args[0].includes('Unsupported runtime')) return;
      warn(...args);
    };
    try {
      return await import('oidc-provider');
    } finally {
      console.warn = warn;
    }
  })();
  return oidcModule;
}

/** Where and when a request reached the bank, set by the layer in front of the provider. */
export interface Arrival {
  receivedAt: number;
  path: string;
  /** The timeline entry of this bc-authorize request or token poll, when there is one. */
  attempt?: BcAuthorizeAttempt;
  poll?: PollRecord;
}

export interface ProviderSetup {
  issuer: string;
  paymentsApiUrl: string;
  /** Discovery's `mtls_endpoint_aliases` (RFC 8705 §5). */
  mtlsEndpointAliases: Record<string, string>;
  /** Private signing keys of the OP (ID Tokens, JWT access tokens). */
  signingKeys: JWK[];
  clients: ClientMetadata[];
  merchantName: string | undefined;
  store: MapStore;
  requests: RequestRegistry;
  faults: FaultBook;
  arrivals: WeakMap<IncomingMessage, Arrival>;
  customers: CustomerDirectory;
  /** Finishes (and, when scripted, falsifies) the ID Token of CIBA token responses. */
  idTokens: IdTokenMinter;
  /** Seconds; the acknowledgement's `interval` when no fault script sets one. */
  defaultInterval: number | undefined;
  /** oidc-provider's outbound fetch (pings go through ping.ts). */
  fetch: typeof fetch;
}

function peerCertificate(ctx: KoaContextWithOIDC): X509Certificate | undefined {
  const socket = ctx.socket as TLSSocket;
  return typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
}

/** RDNs as a set, so `CN=client` matches X509Certificate#subject whatever the order or spacing. */
function distinguishedName(value: string, separator: RegExp): string {
  return value
    .split(separator)
    .map((rdn) => {
      const eq = rdn.indexOf('=');
      return eq === -1 ? rdn.trim() : `${rdn.slice(0, eq).trim().toUpperCase()}=${rdn.slice(eq + 1).trim()}`;
    })
    .filter(Boolean)
    .sort()
    .join(',');
}

function parseDetails(raw: unknown): unknown {
  if (typeof raw !== 'string') return undefined;
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return undefined;
  }
}

/** Scopes of the request that belong to the payments resource server vs. OpenID Connect. */
function splitScopes(scope: string | undefined): { oidc: string[]; resource: string[] } {
  const all = (scope ?? '').split(' ').filter(Boolean);
  return { oidc: all.filter((s) => s === 'openid'), resource: all.filter((s) => s === PAYMENTS_SCOPE) };
}

export async function createBankProvider(setup: ProviderSetup): Promise<Provider> {
  const { default: Provider, errors } = await loadOidcProvider();
  const { issuer, paymentsApiUrl, requests, faults, arrivals, customers } = setup;

  // Request object jti values seen, per client, until the object's exp: a signed authentication
  // request must not be replayable (CIBA Core §7.1.1 requires jti for that purpose).
  const seenRequestObjects = new Map<string, number>();

  const configuration: Configuration = {
    adapter: createMapAdapter(setup.store),
    clients: setup.clients,
    fetch: setup.fetch,
    jwks: { keys: setup.signingKeys as JWKS['keys'] },
    clientAuthMethods: ['tls_client_auth', 'private_key_jwt'],
    scopes: ['openid'],
    claims: { openid: ['sub'], profile: ['name'], email: ['email'] },
    cookies: { keys: [crypto.randomUUID()] },
    enabledJWA: {
      idTokenSigningAlgValues: ['PS256', 'ES256', 'RS256'],
      requestObjectSigningAlgValues: ['PS256', 'ES256'],
      clientAuthSigningAlgValues: ['PS256', 'ES256'],
    },
    async findAccount(_ctx, sub) {
      const customer = customers.find(sub);
      if (!customer) return undefined;
      return {
        accountId: customer.login,
        claims: () => ({ sub: customer.login, name: customer.name, email: customer.email }),
      };
    },
    discovery: {
      // RFC 8705 §5: clients authenticating with a certificate use these endpoints.
      mtls_endpoint_aliases: setup.mtlsEndpointAliases,
    },
    ttl: {
      AccessToken: 10 * 60,
      IdToken: 10 * 60,
      Grant: 60 * 60,
      Interaction: 10 * 60,
      Session: 60 * 60,
      // CIBA Core §7.1: requested_expiry is honoured up to the bank's own ceiling of 10 minutes,
      // down to 1 second (tests of expiry). oidc-provider refuses values that are not positive
      // integers with invalid_request before asking.
      BackchannelAuthenticationRequest: (ctx) => {
        const requested = Number(ctx?.oidc?.params?.requested_expiry);
        return Number.isSafeInteger(requested) && requested > 0 ? Math.min(requested, 600) : 600;
      },
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      ciba: {
        enabled: true,
        // Poll is what Bankpay uses; ping costs nothing more in oidc-provider (the provider posts
        // to the client's notification endpoint on backchannelResult), so the door stays open.
        // Push is not offered: FAPI-CIBA forbids it.
        deliveryModes: ['poll', 'ping'],
        // CIBA Core §7.1: login_hint identifies the end-user; unknown → unknown_user_id (§13).
        processLoginHint(_ctx, loginHint) {
          return customers.find(loginHint)?.login;
        },
        processLoginHintToken() {
          throw new errors.InvalidRequest('login_hint_token is not supported by this bank; use login_hint');
        },
        // Customers approve in the bank app, no user code needed (CIBA Core §7.1, user_code).
        verifyUserCode() {},
        validateRequestContext() {},
        // CIBA Core §7.1: a binding message is short plain text shown on both devices. This is
        // oidc-provider's default rule, spelled out here (DESIGN.md §2 keeps within it).
        validateBindingMessage(_ctx, bindingMessage) {
          if (bindingMessage !== undefined && !BINDING_MESSAGE.test(bindingMessage)) {
            throw new errors.InvalidBindingMessage(
              'binding_message must be 1-20 characters of [A-Za-z0-9-._+/!?#]',
            );
          }
        },
        async triggerAuthenticationDevice(ctx, request, account, client) {
          const arrival = arrivals.get(ctx.req);
          await requests.add({
            authReqId: request.jti,
            login: account.accountId,
            clientId: client.clientId,
            clientName: setup.merchantName ?? client.clientName ?? client.clientId,
            scope: request.scope ?? '',
            bindingMessage:
              typeof request.params?.binding_message === 'string'
                ? request.params.binding_message
                : undefined,
            payment: findPaymentInitiation(parseDetails(request.params?.authorization_details)),
            receivedAt: arrival?.receivedAt ?? Date.now(),
            path: arrival?.path ?? ctx.path,
            // `exp` is only computed when the payload is stored; `expiration` is the TTL in seconds.
            expiresAt: Date.now() + request.expiration * 1000,
            interval: undefined,
            status: 'pending',
            decidedAt: undefined,
            polls: [],
            ...(arrival?.attempt ? { bcAuthorize: arrival.attempt } : {}),
            ...(typeof request.params?.client_notification_token === 'string'
              ? { clientNotificationToken: request.params.client_notification_token }
              : {}),
          });
        },
      },
      mTLS: {
        enabled: true,
        // RFC 8705 §2.1 (tls_client_auth) and §3 (certificate-bound access tokens).
        tlsClientAuth: true,
        certificateBoundAccessTokens: true,
        getCertificate: (ctx) => peerCertificate(ctx),
        // The TLS listener asks for a certificate without failing the handshake (discovery and
        // JWKS need none), so the chain check against the dev CA is read back here.
        certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized === true,
        certificateSubjectMatches(ctx, property, expected) {
          const cert = peerCertificate(ctx);
          if (!cert) return false;
          switch (property) {
            case 'tls_client_auth_subject_dn':
              return distinguishedName(cert.subject, /\n/) === distinguishedName(expected, /,/);
            case 'tls_client_auth_san_dns':
              return (cert.subjectAltName ?? '').split(', ').includes(`DNS:${expected}`);
            default:
              return false;
          }
        },
      },
      requestObjects: {
        enabled: true,
        requireSignedRequestObject: false,
        async assertJwtClaimsAndHeader(ctx, claims, _header, client) {
          if (ctx.oidc.route !== 'backchannel_authentication') return;
          // CIBA Core §7.1.1: a signed authentication request carries exp, iat, nbf and jti.
          for (const claim of ['exp', 'iat', 'nbf', 'jti'] as const) {
            if (claims[claim] === undefined) {
              throw new errors.InvalidRequestObject(`Request Object is missing the '${claim}' claim`);
            }
          }
          const exp = Number(claims.exp);
          const nbf = Number(claims.nbf);
          // FAPI-CIBA §5.2.2: the request object's lifetime (nbf → exp) is at most 60 minutes.
          if (!(exp > nbf) || exp - nbf > 3600) {
            throw new errors.InvalidRequestObject(
              "Request Object 'exp' must be after 'nbf' and at most 60 minutes later",
            );
          }
          const key = `${client.clientId}:${String(claims.jti)}`;
          const now = Date.now();
          const seen = seenRequestObjects.get(key);
          if (seen !== undefined && seen > now) {
            throw new errors.InvalidRequestObject('Request Object jti has already been used');
          }
          seenRequestObjects.set(key, exp * 1000);
          if (seenRequestObjects.size > 100_000) {
            for (const [k, until] of seenRequestObjects) if (until <= now) seenRequestObjects.delete(k);
          }
        },
      },
      richAuthorizationRequests: {
        enabled: true,
        // RFC 9396 §2: each type's fields are defined by the AS; payment_initiation follows the
        // shape of DESIGN.md §4. oidc-provider validates the details on the bc-authorize route
        // (checkRar) and keeps them in the request's params, but does not move them onto the
        // BackchannelAuthenticationRequest: approve (decisions.ts) passes them to
        // backchannelResult({ rar }), from where they reach the access token below.
        types: {
          [PAYMENT_INITIATION]: {
            validate(ctx, detail) {
              try {
                parsePaymentInitiation(detail);
              } catch (error) {
                throw new errors.InvalidAuthorizationDetails((error as Error).message);
              }
              const all = parseDetails(ctx.oidc.params?.authorization_details);
              if (Array.isArray(all) && all.filter((d) => d?.type === PAYMENT_INITIATION).length > 1) {
                throw new errors.InvalidAuthorizationDetails('one payment_initiation per request');
              }
            },
          },
        },
        authorizationDetailsForGrantSource: (_ctx, source) => source.rar,
        authorizationDetailsForAccessToken: (_ctx, _token, source) =>
          (source as { rar?: AuthorizationDetail[] } | undefined)?.rar,
        authorizationDetailsForIntrospection: (_ctx, token) => token.rar,
      },
      resourceIndicators: {
        enabled: true,
        // Every request is for the payment API: RFC 8707 resource defaulted so the access token
        // is a JWT for that audience (RFC 9068), which carries cnf.x5t#S256 (RFC 8705 §3.1).
        defaultResource: () => paymentsApiUrl,
        useGrantedResource: () => true,
        getResourceServerInfo(_ctx, resource) {
          if (resource !== paymentsApiUrl) throw new errors.InvalidTarget();
          return {
            scope: PAYMENTS_SCOPE,
            audience: paymentsApiUrl,
            accessTokenFormat: 'jwt',
            accessTokenTTL: 10 * 60,
            jwt: { sign: { alg: 'PS256' } },
          };
        },
      },
    },
  };

  const provider = new Provider(issuer, configuration);

  provider.use(async (ctx, next) => {
    await next();
    const oidc = (ctx as KoaContextWithOIDC).oidc;
    const body = ctx.body as Record<string, unknown> | undefined;
    if (ctx.status !== 200 || !oidc || !body) return;

    // CIBA Core §7.3: `interval` in the acknowledgement is the bank's to set; oidc-provider never
    // sends one. A fault script's wins over the bank's default.
    if (oidc.route === 'backchannel_authentication' && typeof body.auth_req_id === 'string') {
      const record = requests.get(body.auth_req_id);
      const interval = faults.interval(record?.login) ?? setup.defaultInterval;
      if (record && interval !== undefined) {
        body.interval = interval;
        record.interval = interval;
      }
      // A bank that bends CIBA Core §7.3 (`"interval": "5"`, no auth_req_id, ...), as scripted.
      const members = faults.takeAckMembers(record?.login);
      for (const [name, value] of Object.entries(members ?? {})) {
        if (value === null) delete body[name];
        else body[name] = value;
      }
      if (record && members && 'interval' in members) {
        record.interval = typeof members.interval === 'number' ? members.interval : undefined;
      }
    }

    // CIBA Core §10.1.1: the successful token response; its ID Token gets at_hash and the
    // auth_req_id claim, and the customer's idToken fault if one is scripted (id-token.ts).
    if (
      oidc.route === 'token' &&
      oidc.params?.grant_type === CIBA_GRANT_TYPE &&
      typeof body.id_token === 'string' &&
      typeof body.access_token === 'string'
    ) {
      const authReqId = String(oidc.params.auth_req_id ?? '');
      const login = oidc.entities.Account?.accountId ?? requests.loginOf(authReqId);
      const { idToken, rewrite } = await setup.idTokens.mint({
        issued: body.id_token,
        accessToken: body.access_token,
        authReqId,
        fault: faults.takeIdTokenFault(login),
      });
      body.id_token = idToken;
      const poll = arrivals.get(ctx.req)?.poll;
      if (poll && rewrite) poll.idTokenFault = rewrite;
    }
  });

  provider.on('server_error', (_ctx, error) => {
    console.error('sandbox bank: oidc-provider server_error', error);
  });

  return provider;
}

/** A Grant for what the customer approved: OpenID scopes, the payments scope on the API, the details. */
export async function approveBackchannelRequest(
  provider: Provider,
  request: BackchannelAuthenticationRequest,
  paymentsApiUrl: string,
): Promise<void> {
  const { oidc, resource } = splitScopes(request.scope);
  const grant = new provider.Grant({ accountId: request.accountId, clientId: request.clientId });
  if (oidc.length) grant.addOIDCScope(oidc.join(' '));
  if (resource.length) grant.addResourceScope(paymentsApiUrl, resource.join(' '));
  await grant.save();
  const details = parseDetails(request.params?.authorization_details);
  await provider.backchannelResult(request, grant, {
    authTime: Math.floor(Date.now() / 1000),
    amr: ['user'],
    ...(Array.isArray(details) ? { rar: details as AuthorizationDetail[] } : {}),
  });
}
