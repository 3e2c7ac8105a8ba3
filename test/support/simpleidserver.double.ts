/**
 * A TEST DOUBLE of SimpleIdServer 4.x's CIBA dialect (realm `master`), for the tests only.
 *
 * Why: SimpleIdServer is a .NET server that cannot run on this machine, and the sandbox bank
 * (oidc-provider) speaks another dialect. This reproduces on Node's https server the wire
 * behaviour read from SimpleIdServer's source (tag v4.0.8; master agrees on all of it), so a test
 * against it shows what Bankpay sends and accepts. Source paths: simpleidserver/SimpleIdServer,
 * src/IdServer/SimpleIdServer.IdServer/ (Domains/ = src/IdServer/SimpleIdServer.IdServer.Domains/).
 *
 * - Issuer https://localhost:PORT/master; discovery's `mtls_endpoint_aliases` name the token and
 *   backchannel endpoints only; request object and ID Token algs RS*, ES*, none, no PS*
 *   (Api/OpenIdConfiguration/OpenIdConfigurationController.cs, Constants.cs AllSigningAlgs).
 * - A `/mtls` path without a trusted client certificate: 400, JSON text sent without Content-Type
 *   (it sets a misspelt `Content-Types`) (Middlewares/MtlsAuthenticationMiddleware.cs).
 * - tls_client_auth: client_id in the form, a trusted certificate whose .NET `Subject` ("CN=a,
 *   O=b": RDNs reversed) equals the registered DN exactly; failing it is 400 `invalid_request` at
 *   bc-authorize, 400 `invalid_client` at the token endpoint (Authenticate/AuthenticateClient.cs,
 *   Authenticate/Handlers/OAuthClientTlsClientAuthenticationHandler.cs). Every OAuth error is 400
 *   JSON `{error, error_description}` (Api/Token/Handlers/BaseCredentialsHandler.cs BuildError).
 * - Request object optional; when sent: alg = the client's, `kid` names a key of the client's
 *   jwks, aud contains the issuer, iss = client_id, now < exp, exp − nbf ≤ 300 s (no nbf counts as
 *   year 1: refused), now ≥ nbf without leeway, jti required; then its claims replace the form.
 *   A claim holding an array of 2+ values (two authorization_details entries, two audiences) adds
 *   one JSON key twice: an unhandled exception, 500 HTML (Api/BCAuthorize/
 *   BCAuthorizeRequestValidator.cs, Jwt/JwtBuilder.cs ReadJsonWebToken, Extensions/
 *   JsonWebTokenExtensions.cs GetClaimJson, SimpleIdServer.IdServer.Startup/Program.cs).
 * - One hint; scope or authorization_details; scopes registered on the client (`invalid_scope`);
 *   every authorization_details entry typed with one of the client's "authorization data types"
 *   (`invalid_authorization_details`), a number/boolean member crashes (500); login_hint is a user
 *   name (`unknown_user_id`); binding_message ≤ 150 (Domains/DTOs/JsonSerializerExtensions.cs).
 * - Ack {auth_req_id (62 chars: A-Za-z0-9 each once, shuffled), expires_in (requested_expiry, else
 *   120), interval (the client's, default 5)}. The next allowed poll is ack + interval and moves one
 *   interval per pending answer; a poll at or before it gets `slow_down` (the interval is never
 *   widened); pending past its expiry stays `authorization_pending`; approved past it
 *   `expired_token`; redeemed `invalid_grant` (Api/BCAuthorize/BCAuthorizeHandler.cs,
 *   Api/Token/Handlers/CIBAGrantTypeValidator.cs, Domains/BCAuthorize.cs, Domains/Client.cs).
 * - The customer's device decides with POST /master/bc-callback {auth_req_id, action: 0 confirm,
 *   1 reject}: 204; 404 unknown; 400 expired or not pending (Api/BCCallback/BCallbackController.cs).
 * - Tokens (Api/Token/TokenBuilders/*.cs, Helpers/GrantedTokenHelper.cs): access token RS256 JWT
 *   {iss, aud [client_id], client_id, scope [array], authorization_details, sub, cnf.x5t#S256
 *   (RFC 8705 §3.1), iat, nbf, exp +1800}; ID Token in the client's alg {iss, sub, aud [client_id,
 *   issuer], azp, at_hash, amr ["pwd"], acr "sid-load-01", iat, nbf, exp}, no auth_req_id claim;
 *   always a refresh token. String members of a detail that parse as JSON ("1234") come back parsed
 *   in the access token (Domains/AuthorizationData.cs Serialize).
 *
 * SimpleIdServer has no payment API: the double also serves DESIGN.md §4's under `paymentsApiUrl`.
 */
import { createHash, randomBytes, type X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import * as jose from 'jose';
import { Agent, fetch as undiciFetch } from 'undici';
import { certificateFiles } from '../../devstack/certificates.ts';

export const CIBA_GRANT = 'urn:openid:params:grant-type:ciba';
const ALGS = ['RS256', 'RS384', 'RS512', 'ES256', 'ES384', 'ES512', 'none'];

export interface SidsClient {
  clientId: string;
  /** tls_client_auth_subject_dn, compared exactly with .NET's rendering (`CN=client`). */
  subjectDn: string;
  /** The client's registered public keys: a request object's `kid` must name one. */
  jwks: jose.JWK[];
  /** Its "authorization data types": the RFC 9396 types it may request. */
  authorizationDataTypes: string[];
  /** Registered scopes; default the External Device template's `openid profile`. */
  scopes?: string[];
  /** Both default to ES256, as the External Device client template sets them. */
  requestObjectSigningAlg?: 'ES256' | 'RS256';
  idTokenSignedResponseAlg?: 'ES256' | 'RS256';
  /** bc_interval (default 5 s) and auth_reqid_expirationtime (default 120 s). */
  intervalSeconds?: number;
  authReqIdExpirationSeconds?: number;
}

/** A request the double received: the form (or the request object's claims once read) and the answer. */
export interface SidsRequest {
  at: number;
  method: string;
  path: string;
  certificate: boolean;
  params: Record<string, unknown>;
  requestObject?: { header: Record<string, unknown>; claims: Record<string, unknown> };
  status?: number;
  error?: string | undefined;
}

export interface SidsPayment {
  paymentId: string;
  clientId: string;
  login: string;
  idempotencyKey: string;
  body: Record<string, unknown>;
}

interface AuthorizationData {
  type: string;
  members: Record<string, unknown>;
  additional: Record<string, string>;
}
interface BcAuthorize {
  id: string;
  clientId: string;
  login: string;
  scopes: string[];
  details: AuthorizationData[];
  bindingMessage: string | undefined;
  expiresAt: number;
  interval: number;
  nextFetchTime: number;
  status: 'Pending' | 'Confirmed' | 'Rejected' | 'Sent';
}

class OAuthError extends Error {
  constructor(
    readonly error: string,
    readonly description: string,
    readonly status = 400,
  ) {
    super(description);
  }
}
/** What .NET lets escape as an unhandled exception: the host's error page, 500. */
class Unhandled extends Error {}
const throwUnhandled = (what: string): never => {
  throw new Unhandled(what);
};

function fail(error: string, description: string, status = 400): never {
  throw new OAuthError(error, description, status);
}
const text = (v: unknown): string | undefined =>
  v === undefined || v === null ? undefined : typeof v === 'string' ? v : JSON.stringify(v);
const thumbprint = (cert: X509Certificate) => createHash('sha256').update(cert.raw).digest('base64url');

/** JsonSerializerExtensions.DeserializeAuthorizationDetails: a string is parsed, an object is one entry. */
function readAuthorizationDetails(node: unknown): AuthorizationData[] {
  if (node === undefined || node === null) return [];
  if (typeof node === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(node);
    } catch {
      throw new Unhandled('JsonNode.Parse');
    }
    return readAuthorizationDetails(parsed);
  }
  return (Array.isArray(node) ? node : [node]).map((entry: unknown) => {
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new Unhandled('AsObject');
    const data: AuthorizationData = { type: '', members: {}, additional: {} };
    for (const [key, value] of Object.entries(entry)) {
      if (key === 'type') data.type = typeof value === 'string' ? value : throwUnhandled('GetValue<string>');
      else if (['locations', 'actions', 'datatypes', 'identifier'].includes(key)) data.members[key] = value;
      else if (typeof value === 'string') data.additional[key] = value;
      else if (typeof value === 'object' && value !== null) data.additional[key] = JSON.stringify(value);
      else throw new Unhandled(`GetValue<string> on ${key}`);
    }
    return data;
  });
}

/** AuthorizationData.Serialize: additional members that parse as JSON come back parsed. */
function serializeAuthorizationData(d: AuthorizationData): Record<string, unknown> {
  const out: Record<string, unknown> = { type: d.type, ...d.members };
  for (const [k, v] of Object.entries(d.additional)) {
    try {
      out[k] = JSON.parse(v);
    } catch {
      out[k] = v;
    }
  }
  return out;
}

/** BCAuthorize.GenerateId: the 62 letters and digits, each once, shuffled. */
function newAuthReqId(): string {
  const chars = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'];
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomBytes(1)[0]! % (i + 1);
    [chars[i], chars[j]] = [chars[j]!, chars[i]!];
  }
  return chars.join('');
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** A realm signing key: RS256 signs access tokens, the client's alg its ID Tokens. */
async function realmKey(alg: 'RS256' | 'ES256') {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  const jwk = await jose.exportJWK(publicKey);
  const kid = await jose.calculateJwkThumbprint(jwk);
  return { kid, publicKey, privateKey, jwk: { ...jwk, kid, alg, use: 'sig' } as jose.JWK };
}

export async function startSimpleIdServerDouble(options: {
  certsDir: string;
  clients: SidsClient[];
  users?: string[];
}) {
  const file = (name: string) => readFileSync(join(options.certsDir, name));
  const ca = file(certificateFiles.caCert);
  const clients = new Map(options.clients.map((c) => [c.clientId, c]));
  const users = new Set(options.users ?? []);
  const bcRequests = new Map<string, BcAuthorize>();
  const requests: SidsRequest[] = [];
  const payments: SidsPayment[] = [];
  const firstAnswers = new Map<string, [number, unknown]>();
  let clockOffsetMs = 0;
  const keys = { RS256: await realmKey('RS256'), ES256: await realmKey('ES256') };

  const sockets = new Set<Socket>();
  const tls = { cert: file(certificateFiles.serverCert), key: file(certificateFiles.serverKey), ca };
  const server = createServer({ ...tls, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    void handle(req, res);
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `https://localhost:${(server.address() as AddressInfo).port}`;
  const issuer = `${origin}/master`;
  const paymentsApiUrl = `${origin}/payments-api`;
  const discovery = {
    issuer,
    authorization_endpoint: `${issuer}/authorization`,
    token_endpoint: `${issuer}/token`,
    jwks_uri: `${issuer}/jwks`,
    backchannel_authentication_endpoint: `${issuer}/bc-authorize`,
    tls_client_certificate_bound_access_tokens: true,
    grant_types_supported: ['authorization_code', 'client_credentials', 'refresh_token', CIBA_GRANT],
    token_endpoint_auth_methods_supported: ['client_secret_post', 'private_key_jwt', 'tls_client_auth'],
    request_object_signing_alg_values_supported: ALGS,
    id_token_signing_alg_values_supported: ALGS,
    backchannel_token_delivery_modes_supported: ['ping', 'poll', 'push'],
    backchannel_authentication_request_signing_alg_values_supported: ALGS,
    backchannel_user_code_parameter_supported: false,
    authorization_details_supported: true,
    mtls_endpoint_aliases: {
      token_endpoint: `${issuer}/mtls/token`,
      backchannel_authentication_endpoint: `${issuer}/mtls/bc-authorize`,
    },
  };

  function peer(req: IncomingMessage) {
    const socket = req.socket as TLSSocket;
    return { cert: socket.getPeerX509Certificate?.(), trusted: socket.authorized };
  }

  function authenticateClient(req: IncomingMessage, form: Record<string, unknown>, code: string) {
    const clientId = text(form.client_id) ?? fail(code, 'missing client_id');
    const client = clients.get(clientId) ?? fail(code, `unknown client ${clientId}`);
    const { cert, trusted } = peer(req);
    if (!cert) fail(code, 'no client certificate');
    if (!trusted) fail(code, 'the certificate is not trusted');
    // .NET's X509Certificate2.Subject lists the RDNs in reverse order, joined by ", ".
    if (cert.subject.split('\n').reverse().join(', ') !== client.subjectDn)
      fail(code, 'bad certificate subject');
    return client;
  }

  /** JwtBuilder.ReadJsonWebToken, then BCAuthorizeRequestValidator.CheckRequestObject, in order. */
  async function readRequestObject(jwt: string, client: SidsClient, entry: SidsRequest) {
    const invalid = (description: string) => fail('invalid_request', description);
    let header: Record<string, unknown> = {};
    try {
      header = jose.decodeProtectedHeader(jwt) as Record<string, unknown>;
    } catch {
      invalid('the JWT is invalid');
    }
    const alg = client.requestObjectSigningAlg ?? 'ES256';
    if (header.alg !== alg) invalid(`the JWT must be signed with ${alg}`);
    const jwk = client.jwks.find((k) => k.kid === header.kid) ?? invalid('IDX10500: no security keys');
    let claims: Record<string, unknown> = {};
    try {
      const { payload } = await jose.compactVerify(jwt, await jose.importJWK(jwk, alg));
      claims = JSON.parse(Buffer.from(payload).toString('utf8')) as Record<string, unknown>;
    } catch {
      invalid('IDX10511: signature validation failed');
    }
    entry.requestObject = { header, claims };
    // The bank's clock, which need not agree with ours (setClockOffset).
    const now = (Date.now() + clockOffsetMs) / 1000;
    const exp = typeof claims.exp === 'number' ? claims.exp : invalid('IDX10225: the token has no exp');
    const nbf = typeof claims.nbf === 'number' ? claims.nbf : -62135596800; // DateTime.MinValue
    // JsonWebTokenHandler's own lifetime check allows 5 minutes of skew; the validator's allow none.
    if (exp < now - 300 || nbf > now + 300) invalid('IDX10223: lifetime validation failed');
    const aud = [claims.aud ?? []].flat();
    if (aud.length === 0) invalid('the request has no audience');
    if (!aud.includes(issuer)) invalid('the request audience is not the issuer');
    if (!claims.iss) invalid('the request has no issuer');
    if (claims.iss !== client.clientId) invalid('the request issuer is not the client');
    if (now >= exp) invalid('the authorization request is expired');
    if (exp - nbf > 300) invalid('the maximum lifetime of the request is 300 seconds');
    if (now < nbf) invalid(`the request cannot be received before ${nbf}`);
    if (!claims.jti) invalid('the request has no jti');
    // GetClaimJson: one JSON key per claim, and an array is one claim per element.
    const data: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(claims)) {
      if (!Array.isArray(v)) data[k] = v;
      else if (v.length > 1) throw new Unhandled(`an item with the key ${k} has already been added`);
      else if (v.length === 1) data[k] = v[0];
    }
    return data;
  }

  async function backchannelAuthorize(req: IncomingMessage, entry: SidsRequest) {
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    entry.params = form;
    const client = authenticateClient(req, form, 'invalid_request');
    const data = form.request ? await readRequestObject(form.request, client, entry) : form;
    entry.params = data;
    const hints = [data.login_hint_token, data.id_token_hint, data.login_hint].filter((h) => text(h));
    if (hints.length !== 1) fail('invalid_request', 'only one hint can be passed');
    const login = text(data.login_hint) ?? fail('invalid_request', 'the double takes login_hint only');
    const scopes = text(data.scope)?.split(' ') ?? [];
    const details = readAuthorizationDetails(data.authorization_details);
    if (!scopes.length && !details.length)
      fail('invalid_request', 'missing parameters scope,authorization_details');
    const dup = scopes.filter((s, i) => scopes.indexOf(s) !== i);
    if (dup.length) fail('invalid_scope', `duplicate scopes : ${dup}`);
    const unknown = scopes.filter((s) => !(client.scopes ?? ['openid', 'profile']).includes(s));
    if (unknown.length) fail('invalid_scope', `unauthorized to scopes : ${unknown}`);
    if (details.some((d) => !d.type)) fail('invalid_authorization_details', 'the type is required');
    const unsupported = details
      .filter((d) => !client.authorizationDataTypes.includes(d.type))
      .map((d) => d.type);
    if (unsupported.length) fail('invalid_authorization_details', `types ${unsupported} are not supported`);
    if (!users.has(login)) fail('unknown_user_id', `the user ${login} doesn't exist`);
    const bindingMessage = text(data.binding_message);
    if (bindingMessage && bindingMessage.length > 150) fail('invalid_binding_message', 'longer than 150');
    const requested = /^-?\d+$/.test(text(data.requested_expiry) ?? '')
      ? Number(data.requested_expiry)
      : null;
    if (requested !== null && requested < 0) fail('invalid_request', 'requested_expiry must be positive');
    if (text(data.user_code)) fail('invalid_credentials', 'the user code is invalid');
    const expiresIn = requested ?? client.authReqIdExpirationSeconds ?? 120;
    const interval = client.intervalSeconds ?? 5;
    const now = Date.now();
    const bc: BcAuthorize = {
      ...{ id: newAuthReqId(), clientId: client.clientId, login, scopes, details, bindingMessage },
      ...{
        expiresAt: now + expiresIn * 1000,
        interval,
        nextFetchTime: now + interval * 1000,
        status: 'Pending',
      },
    };
    bcRequests.set(bc.id, bc);
    return { auth_req_id: bc.id, expires_in: expiresIn, interval };
  }

  function sign(alg: 'RS256' | 'ES256', claims: jose.JWTPayload): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    return new jose.SignJWT({ ...claims, iss: issuer, iat: now, nbf: now, exp: now + 1800 })
      .setProtectedHeader({ alg, kid: keys[alg].kid, typ: 'JWT' })
      .sign(keys[alg].privateKey);
  }

  /** TokenController → CIBAHandler: client authentication, CIBAGrantTypeValidator, the token builders. */
  async function token(req: IncomingMessage, entry: SidsRequest) {
    const form = Object.fromEntries(new URLSearchParams(await readBody(req)));
    entry.params = form;
    if (form.grant_type !== CIBA_GRANT) fail('unsupported_grant_type', 'the double serves CIBA only');
    const client = authenticateClient(req, form, 'invalid_client');
    const id = form.auth_req_id ?? fail('invalid_request', 'missing parameter auth_req_id');
    const bc = bcRequests.get(id) ?? fail('invalid_grant', 'the auth_req_id is invalid');
    if (bc.clientId !== client.clientId) fail('invalid_grant', 'the client is not authorized');
    const now = Date.now();
    const slowDown = now <= bc.nextFetchTime;
    if (bc.status === 'Pending' || slowDown) {
      if (slowDown) fail('slow_down', 'too many requests');
      bc.nextFetchTime += bc.interval * 1000;
      fail('authorization_pending', 'the authorization request has not been confirmed');
    }
    if (bc.status === 'Rejected') fail('access_denied', 'the authorization request has been rejected');
    if (bc.status === 'Sent') fail('invalid_grant', 'the authorization request is finished');
    if (now > bc.expiresAt) fail('expired_token', 'the authorization request is expired');
    bc.status = 'Sent';
    const { cert } = peer(req);
    const accessToken = await sign('RS256', {
      aud: [client.clientId],
      client_id: client.clientId,
      scope: bc.scopes,
      ...(bc.details.length ? { authorization_details: bc.details.map(serializeAuthorizationData) } : {}),
      ...(cert ? { cnf: { 'x5t#S256': thumbprint(cert) } } : {}),
      sub: bc.login,
    });
    const response: Record<string, unknown> = { expires_in: 1800, scope: bc.scopes.join(' ') };
    response.access_token = accessToken;
    if (bc.scopes.includes('openid')) {
      const atHash = createHash('sha256').update(accessToken, 'utf8').digest().subarray(0, 16);
      response.id_token = await sign(client.idTokenSignedResponseAlg ?? 'ES256', {
        ...{ aud: [client.clientId, issuer], azp: client.clientId, at_hash: atHash.toString('base64url') },
        ...{ amr: ['pwd'], acr: 'sid-load-01', sub: bc.login },
      });
    }
    response.refresh_token = randomBytes(32).toString('base64url');
    response.token_type = 'Bearer';
    return response;
  }

  /** BCCallbackController: the customer's decision. */
  function decide(body: Record<string, unknown>): number {
    const bc = bcRequests.get(String(body.auth_req_id)) ?? fail('invalid_request', 'unknown request', 404);
    if (Date.now() >= bc.expiresAt) fail('invalid_request', 'the authorization request is expired');
    if (bc.status !== 'Pending') fail('invalid_request', 'the authorization request is not pending');
    bc.status = Number(body.action) === 1 ? 'Rejected' : 'Confirmed';
    return 204;
  }

  /** DESIGN.md §4, over mTLS, with an access token bound to the presented certificate. */
  async function paymentsApi(req: IncomingMessage, path: string): Promise<[number, unknown]> {
    const invalidToken = (d: string) => fail('invalid_token', d, 401);
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1] ?? invalidToken('no token');
    let claims: jose.JWTPayload = {};
    try {
      ({ payload: claims } = await jose.jwtVerify(bearer, keys.RS256.publicKey, {
        issuer,
        algorithms: ['RS256'],
      }));
    } catch {
      invalidToken('the access token is invalid');
    }
    const { cert, trusted } = peer(req);
    const bound = (claims.cnf as Record<string, unknown> | undefined)?.['x5t#S256'];
    if (!cert || !trusted || bound !== thumbprint(cert))
      invalidToken('the token is not bound to this certificate');
    const clientId = String(claims.client_id);
    const id = /^\/payments\/([^/]+)$/.exec(path)?.[1];
    if (req.method === 'GET' && id) {
      const p = payments.find((x) => x.paymentId === id && x.clientId === clientId);
      return p
        ? [200, { paymentId: p.paymentId, status: 'accepted' }]
        : fail('not_found', 'no such payment', 404);
    }
    if (req.method !== 'POST' || path !== '/payments') fail('not_found', 'no such resource', 404);
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !key) fail('invalid_request', 'Idempotency-Key is required');
    const first = firstAnswers.get(`${clientId} ${key}`);
    if (first) return first;
    const body = JSON.parse(await readBody(req)) as Record<string, unknown>;
    const approved = [claims.authorization_details ?? []]
      .flat()
      .find((d) => (d as Record<string, unknown>).type === 'payment_initiation');
    const at = (o: unknown, p: string) =>
      String(p.split('.').reduce((v, k) => (v as Record<string, unknown>)?.[k], o));
    const fields = 'instructedAmount.currency instructedAmount.amount creditorName creditorAccount.iban';
    if (
      !approved ||
      [...fields.split(' '), 'remittanceInformationUnstructured'].some((f) => at(approved, f) !== at(body, f))
    ) {
      fail('payment_mismatch', 'the payment differs from what the customer approved', 403);
    }
    const paymentId = `sids-${payments.length + 1}-${randomBytes(4).toString('hex')}`;
    payments.push({ paymentId, clientId, login: String(claims.sub), idempotencyKey: key, body });
    const answer: [number, unknown] = [201, { paymentId, status: 'accepted' }];
    firstAnswers.set(`${clientId} ${key}`, answer);
    return answer;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const { cert, trusted } = peer(req);
    const entry: SidsRequest = {
      at: Date.now(),
      method: `${req.method}`,
      path,
      certificate: !!cert,
      params: {},
    };
    requests.push(entry);
    const send = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      entry.status = status;
      entry.error = (body as { error?: string } | undefined)?.error;
      res.writeHead(
        status,
        body === undefined ? {} : { 'content-type': 'application/json; charset=utf-8', ...headers },
      );
      res.end(body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body));
    };
    try {
      if (path.includes('/mtls') && !(cert && trusted)) {
        entry.status = 400;
        entry.error = 'invalid_request';
        res.writeHead(400, { 'content-types': 'application/json' });
        return void res.end(
          JSON.stringify({ error: 'invalid_request', error_description: 'certificate is required' }),
        );
      }
      if (path.startsWith('/payments-api/')) return send(...(await paymentsApi(req, path.slice(13))));
      const route = `${req.method} ${path.replace('/master/mtls/', '/master/')}`;
      if (route === 'GET /master/.well-known/openid-configuration') return send(200, discovery);
      if (route === 'GET /master/jwks') return send(200, { keys: [keys.RS256.jwk, keys.ES256.jwk] });
      if (route === 'POST /master/bc-authorize') return send(200, await backchannelAuthorize(req, entry));
      if (route === 'POST /master/token') return send(200, await token(req, entry));
      if (route === 'POST /master/bc-callback') {
        entry.params = JSON.parse(await readBody(req)) as Record<string, unknown>;
        return send(decide(entry.params));
      }
      send(404);
    } catch (error) {
      if (!(error instanceof OAuthError)) {
        return send(500, '<html><body>Unexpected error</body></html>', { 'content-type': 'text/html' });
      }
      send(error.status, { error: error.error, error_description: error.description });
    }
  }

  const device = new Agent({ connect: { ca } });
  async function callback(authReqId: string, action: 0 | 1): Promise<void> {
    const res = await undiciFetch(`${issuer}/bc-callback`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ auth_req_id: authReqId, action }),
      dispatcher: device,
    });
    if (res.status !== 204) throw new Error(`bc-callback answered ${res.status}: ${await res.text()}`);
  }

  return {
    issuer,
    paymentsApiUrl,
    /** Runs the bank's clock `ms` ahead (negative: behind) of ours, for request-object times. */
    setClockOffset(ms: number): void {
      clockOffsetMs = ms;
    },
    /** The public keys the double signs with (its jwks_uri). */
    jwks: { keys: [keys.RS256.jwk, keys.ES256.jwk] },
    /** Every request received, in order, with its answer's status and error code. */
    requests,
    /** Payments made at the payment API. */
    payments,
    addUser(login: string): void {
      users.add(login);
    },
    /** What the customer's device shows: their requests awaiting a decision. */
    pending(login: string) {
      return [...bcRequests.values()]
        .filter((b) => b.login === login && b.status === 'Pending' && Date.now() < b.expiresAt)
        .map((b) => ({
          authReqId: b.id,
          clientId: b.clientId,
          bindingMessage: b.bindingMessage,
          scopes: b.scopes,
          authorizationDetails: b.details.map(serializeAuthorizationData),
        }));
    },
    /** The customer's decision, sent as the device sends it (POST bc-callback). */
    approve: (authReqId: string) => callback(authReqId, 0),
    deny: (authReqId: string) => callback(authReqId, 1),
    async close(): Promise<void> {
      await device.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
    },
  };
}

export type SimpleIdServerDouble = Awaited<ReturnType<typeof startSimpleIdServerDouble>>;
