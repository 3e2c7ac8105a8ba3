/**
 * The layer in front of oidc-provider on the bank's HTTPS listener.
 *
 * - Mounts the provider under the issuer's realm path (`/master`) and serves the RFC 8705 §5
 *   mTLS endpoint aliases (`/master/mtls/...`) with the same handlers.
 * - Knows which customer a request belongs to (bc-authorize: the login_hint, read from the
 *   signed request object or the form; token: the auth_req_id, mapped to the login when the
 *   request was created) and applies that customer's fault script before the provider sees the
 *   request: delay, dropped connection, 503 + Retry-After, and `slow_down` (CIBA Core §11), which
 *   oidc-provider itself never sends.
 * - Records when each bc-authorize and token request arrived and what it was answered
 *   ('acknowledged', 'tokens', the OAuth error code, 'dropped'), for tests that measure polling
 *   and for timelines that must show why a client stopped.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodeJwt } from 'jose';
import type { FaultBook, FaultEndpoint, ScriptedAnswer } from './faults.ts';
import { dropConnection, readBody, replayRequest, sendJson, sendScripted, sleep } from './http.ts';
import { type Arrival, CIBA_GRANT_TYPE } from './provider.ts';
import type { PollRecord, RequestRegistry } from './requests.ts';

/** oidc-provider route paths (its defaults) that get an mTLS alias. */
export const OP_ROUTES = { backchannel: '/backchannel', token: '/token', userinfo: '/me' } as const;
const ALIASED = new Set<string>(Object.values(OP_ROUTES));
/** oidc-provider's discovery and JWKS routes (its defaults). */
const DISCOVERY_PATH = '/.well-known/openid-configuration';
const JWKS_PATH = '/jwks';

export interface OpFrontSetup {
  /** '/master' */
  realmPath: string;
  faults: FaultBook;
  requests: RequestRegistry;
  arrivals: WeakMap<IncomingMessage, Arrival>;
  /** oidc-provider's request listener. */
  providerCallback: (req: IncomingMessage, res: ServerResponse) => unknown;
}

/** The `mtls_endpoint_aliases` discovery member for an issuer (RFC 8705 §5). */
export function mtlsEndpointAliases(issuer: string): Record<string, string> {
  return {
    backchannel_authentication_endpoint: `${issuer}/mtls${OP_ROUTES.backchannel}`,
    token_endpoint: `${issuer}/mtls${OP_ROUTES.token}`,
    userinfo_endpoint: `${issuer}/mtls${OP_ROUTES.userinfo}`,
  };
}

function loginHintOf(params: URLSearchParams): string | undefined {
  const request = params.get('request');
  if (request) {
    // Unverified on purpose: this only routes faults; oidc-provider verifies the object next.
    try {
      const hint = decodeJwt(request).login_hint;
      return typeof hint === 'string' ? hint : undefined;
    } catch {
      return undefined;
    }
  }
  return params.get('login_hint') ?? undefined;
}

/** The record an answer is written into (a poll, or a bc-authorize attempt). */
type Answer = Pick<PollRecord, 'outcome' | 'result' | 'unsent'> & { authReqId?: string };

/** What an answer body means for a timeline: see AnswerResult in requests.ts. */
function resultOf(
  endpoint: FaultEndpoint,
  status: number,
  body: Buffer,
): { result: string; authReqId?: string } {
  let json: Record<string, unknown> | undefined;
  try {
    json = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
  } catch {
    json = undefined;
  }
  // Not JSON (a scripted proxy page, say): only the status can be told.
  if (json === undefined || typeof json !== 'object' || json === null) return { result: `http_${status}` };
  if (status === 200) {
    if (endpoint === 'token') return { result: 'tokens' };
    const authReqId = typeof json?.auth_req_id === 'string' ? json.auth_req_id : undefined;
    return { result: 'acknowledged', ...(authReqId ? { authReqId } : {}) };
  }
  return { result: typeof json?.error === 'string' ? json.error : `http_${status}` };
}

/**
 * Fills `answer` with what the bank answered, whoever answers (the scripted faults here or the
 * provider). Returns a function that turns the answer into a dropped connection once the provider
 * has produced it (the answer is recorded as `unsent`). `replace`, when given, is sent instead of
 * the provider's answer once the provider has produced it (also recorded as `unsent`).
 */
function observeAnswer(
  req: IncomingMessage,
  res: ServerResponse,
  endpoint: FaultEndpoint,
  answer: Answer | undefined,
  holdMs = 0,
  replace?: ScriptedAnswer,
): () => void {
  let drop = false;
  const chunks: Buffer[] = [];
  const toBuffer = (chunk: unknown) =>
    Buffer.isBuffer(chunk) ? chunk : typeof chunk === 'string' ? Buffer.from(chunk) : undefined;
  const write = res.write.bind(res) as (...args: unknown[]) => boolean;
  const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
  res.write = ((chunk: unknown, ...rest: unknown[]) => {
    const buf = toBuffer(chunk);
    if (buf) chunks.push(buf);
    return write(chunk, ...rest);
  }) as typeof res.write;
  res.end = ((chunk?: unknown, ...rest: unknown[]) => {
    const buf = typeof chunk === 'function' ? undefined : toBuffer(chunk);
    if (buf) chunks.push(buf);
    if (drop) {
      if (answer) {
        const { result, authReqId } = resultOf(endpoint, res.statusCode, Buffer.concat(chunks));
        Object.assign(answer, { unsent: result, ...(authReqId ? { authReqId } : {}) });
      }
      dropConnection(req, res);
      return res;
    }
    if (replace && !res.headersSent) {
      // The work is done (request created, tokens issued); a garbled answer leaves instead.
      if (answer) {
        const { result, authReqId } = resultOf(endpoint, res.statusCode, Buffer.concat(chunks));
        Object.assign(answer, { unsent: result, ...(authReqId ? { authReqId } : {}) });
      }
      chunks.length = 0;
      chunks.push(Buffer.from(replace.body));
      for (const name of res.getHeaderNames()) res.removeHeader(name);
      res.writeHead(replace.status, {
        'content-type': replace.contentType,
        'content-length': Buffer.byteLength(replace.body),
        ...(replace.retryAfter === undefined ? {} : { 'retry-after': replace.retryAfter }),
      });
      return end(replace.body);
    }
    if (holdMs > 0) {
      // The work is done (request created, tokens issued); the answer waits.
      setTimeout(() => {
        if (!res.destroyed) end(chunk, ...rest);
      }, holdMs);
      return res;
    }
    return end(chunk, ...rest);
  }) as typeof res.end;
  if (answer) {
    res.once('finish', () => {
      const { result, authReqId } = resultOf(endpoint, res.statusCode, Buffer.concat(chunks));
      Object.assign(answer, { outcome: res.statusCode, result, ...(authReqId ? { authReqId } : {}) });
    });
    res.once('close', () => {
      if (!res.writableFinished) Object.assign(answer, { outcome: 'dropped', result: 'dropped' });
    });
  }
  return () => {
    drop = true;
  };
}

export function createOpFront(setup: OpFrontSetup) {
  const { realmPath, faults, requests, arrivals } = setup;
  const mtlsPath = `${realmPath}/mtls`;

  /** Splits `/master/mtls/token?x` into the provider's mount and inner URL, or null when not ours. */
  function mount(url: string): { inner: string; path: string } | null {
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path.startsWith(`${mtlsPath}/`) && ALIASED.has(path.slice(mtlsPath.length))) {
      return { inner: url.slice(mtlsPath.length), path };
    }
    if (path === realmPath || path.startsWith(`${realmPath}/`)) {
      return { inner: url.slice(realmPath.length) || '/', path };
    }
    return null;
  }

  return async function handleOpRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const originalUrl = req.url ?? '/';
    const mounted = mount(originalUrl);
    if (!mounted) return false;
    const route = mounted.inner.split('?')[0];
    let forward = req;

    // The bank's public documents (OIDC Discovery §4, RFC 7517): bank-wide scripted answers.
    if (req.method === 'GET' && (route === DISCOVERY_PATH || route === JWKS_PATH)) {
      const scripted = faults.takeBankAnswer(route === JWKS_PATH ? 'jwks' : 'discovery');
      if (scripted) {
        sendScripted(res, scripted);
        return true;
      }
    }

    if (req.method === 'POST' && (route === OP_ROUTES.backchannel || route === OP_ROUTES.token)) {
      const receivedAt = Date.now();
      const endpoint: FaultEndpoint = route === OP_ROUTES.backchannel ? 'bc-authorize' : 'token';
      const body = await readBody(req);
      const params = new URLSearchParams(body.toString('utf8'));
      let login: string | undefined;
      let answer: Answer | undefined;
      const arrival: Arrival = { receivedAt, path: mounted.path };
      if (endpoint === 'bc-authorize') {
        login = loginHintOf(params);
        const attempt = requests.recordBcAuthorize(login, { at: receivedAt, path: mounted.path });
        arrival.attempt = attempt;
        answer = attempt;
      } else if (params.get('grant_type') === CIBA_GRANT_TYPE) {
        const authReqId = params.get('auth_req_id') ?? '';
        login = requests.loginOf(authReqId);
        const poll = requests.recordPoll(authReqId, receivedAt);
        if (poll) arrival.poll = poll;
        answer = poll;
      }
      const dropAfterCommit = observeAnswer(
        req,
        res,
        endpoint,
        answer,
        faults.holdMs(login, endpoint),
        faults.takeAnswer(login, endpoint, true),
      );

      const delay = faults.delayMs(login, endpoint);
      if (delay > 0) await sleep(delay);
      if (faults.takeDrop(login, endpoint, false)) {
        dropConnection(req, res);
        return true;
      }
      const unavailable = faults.takeUnavailable(login, endpoint);
      if (unavailable) {
        sendJson(
          res,
          unavailable.status,
          {
            error: unavailable.status === 503 ? 'temporarily_unavailable' : 'server_error',
            error_description: 'the bank is unavailable (scripted)',
          },
          { 'retry-after': String(unavailable.retryAfter) },
        );
        return true;
      }
      // Someone else answers (a proxy's page, a garbled answer) before the bank sees the request.
      const scripted = faults.takeAnswer(login, endpoint, false);
      if (scripted) {
        sendScripted(res, scripted);
        return true;
      }
      // CIBA Core §11: slow_down — "the Client is polling too quickly and should back off".
      if (endpoint === 'token' && faults.takeSlowDown(login)) {
        sendJson(res, 400, { error: 'slow_down', error_description: 'polling too quickly (scripted)' });
        return true;
      }
      // The provider processes the request (a CIBA request is created, or tokens are issued and
      // the auth_req_id consumed) but the answer never leaves: the lost-response case.
      if (faults.takeDrop(login, endpoint, true)) dropAfterCommit();
      forward = replayRequest(req, body);
      arrivals.set(forward, arrival);
    }

    // oidc-provider derives its mount path (and so every endpoint URL it publishes or checks as
    // an audience) from req.originalUrl minus req.url.
    forward.url = mounted.inner;
    Object.assign(forward, { originalUrl });
    await setup.providerCallback(forward, res);
    return true;
  };
}
