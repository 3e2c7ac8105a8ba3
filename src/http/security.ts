/**
 * What every API answer gets before any module sees the request: a rate limit per credential,
 * security headers for a JSON API, and no caching (answers carry secrets such as `clientSecret`).
 * Health endpoints and Swagger UI at /docs are exempt from the limit; /docs keeps a CSP that lets
 * Swagger UI run. Failed authentications are throttled per client address without ever refusing a
 * credential known to be valid (auth-throttle.ts).
 *
 * The limit counts per process, in memory: N API processes allow up to N times the limit, and a
 * restart forgets the counts. When scaling out makes that matter, @fastify/rate-limit takes a
 * Redis store (its `redis` option) shared by all processes.
 */
import fastifyHelmet from '@fastify/helmet';
import rateLimit from '@fastify/rate-limit';
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import helmet from 'helmet';
import { hashSecret } from '../infra/api-keys.ts';
import { bearerToken } from './auth.ts';
import { AuthThrottle, addressKey, authenticationOutcome, issuedCredentials } from './auth-throttle.ts';
import { ProblemError } from './problem.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * false: the route's callers are not merchants (a bank's CIBA ping) and the route sets its own
     * `rateLimit`; the per-address throttle of failed merchant credentials leaves it alone, so a
     * bank's refused pings never lock out its next ones.
     */
    merchantCredentialThrottle?: boolean;
  }
}

export interface RateLimitSettings {
  /** Requests allowed per key in one window. */
  max: number;
  timeWindowMs: number;
}

export interface SecurityOptions {
  /** Requests per credential per window (RATE_LIMIT_MAX / RATE_LIMIT_WINDOW_MS). */
  rateLimit: RateLimitSettings;
  /**
   * Whether a Bearer token is a genuine clientSecret (its HMAC verifies; no database): such a
   * credential is never throttled for its address's failures, in any API process.
   */
  isGenuineClientSecret?: (token: string) => boolean;
}

/** Distinct keys each process remembers (least recently used ones are forgotten first). */
const RATE_LIMIT_KEYS_KEPT = 10_000;

/** For JSON answers: nothing may load or frame them, no referrer leaves, never sniffed as HTML. */
const API_HELMET = {
  contentSecurityPolicy: {
    useDefaults: false,
    directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] },
  },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
} as const;
const setApiHelmetHeaders = helmet(API_HELMET);

/** helmet's defaults, which Swagger UI works with (scripts and styles from 'self'), never framed. */
const DOCS_CSP = {
  useDefaults: true,
  directives: {
    frameAncestors: ["'none'"],
    imgSrc: ["'self'", 'data:', 'validator.swagger.io'],
    // /docs is also served over plain HTTP in development; upgrading would break it there.
    upgradeInsecureRequests: null,
  },
} as const;

function isDocs(url: string | undefined): boolean {
  return url === '/docs' || (url?.startsWith('/docs/') ?? false);
}

function isExempt(request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  return isDocs(url) || (url?.startsWith('/health/') ?? false);
}

function authorizationHeaders(request: FastifyRequest): number {
  let n = 0;
  const raw = request.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2)
    if (raw[i]!.length === 13 && raw[i]!.toLowerCase() === 'authorization') n++;
  return n;
}

function isThrottleExempt(request: FastifyRequest): boolean {
  return isExempt(request) || request.routeOptions.config?.merchantCredentialThrottle === false;
}

const credentialHashes = new WeakMap<FastifyRequest, string | null>();

/**
 * The presented Bearer credential (merchant key or clientSecret), hashed so that no secret is kept
 * in memory as a map key; null without one. Hashed once per request (every hook asks).
 */
function credentialHash(request: FastifyRequest): string | null {
  let hash = credentialHashes.get(request);
  if (hash === undefined) {
    const token = bearerToken(request);
    hash = token ? hashSecret(token) : null;
    credentialHashes.set(request, hash);
  }
  return hash;
}

/** The credential; without one, the client address. */
function rateLimitKey(request: FastifyRequest): string {
  const hash = credentialHash(request);
  return hash ? `bearer:${hash}` : `ip:${addressKey(request.ip)}`;
}

function rateLimited(retryAfterSeconds: number, detail: string): ProblemError {
  return new ProblemError('rate_limited', detail, {
    retryAfterSeconds: Math.max(1, retryAfterSeconds),
  });
}

async function securityPlugin(app: FastifyInstance, options: SecurityOptions): Promise<void> {
  const limit = options.rateLimit;

  await app.register(fastifyHelmet, API_HELMET);
  // Routes registered after this plugin (Swagger UI's) get the CSP that lets the UI run. Set in
  // `config` as @fastify/helmet's own onRoute hook (which ran already) would have put it.
  app.addHook('onRoute', (route) => {
    if (!isDocs(route.url)) return;
    const helmetConfig: Pick<RouteOptions, 'helmet'> = { helmet: { contentSecurityPolicy: DOCS_CSP } };
    route.config = { ...route.config, ...helmetConfig };
  });
  app.addHook('onSend', async (request, reply) => {
    // A route that chose its own caching (public documents such as our JWKS) keeps it.
    if (!isDocs(request.routeOptions.url) && !reply.hasHeader('cache-control')) {
      reply.header('cache-control', 'no-store');
    }
  });

  // Before the per-credential limit (a route-level hook, so it runs after this one): a guess
  // refused here costs neither a lookup nor a bucket of its own.
  //
  // The per-credential key is chosen by the client: one who sends a new made-up credential each
  // time would never be limited (and would make us look each one up). So failed authentications
  // also count per client address, and once an address has spent its budget, credentials this
  // process has not seen succeed are refused unread until the window ends. A credential seen to
  // succeed is still verified and served: failures from its address, whoever caused them, never
  // lock it out.
  const throttle = new AuthThrottle({
    maxFailures: limit.max,
    windowMs: limit.timeWindowMs,
    addressesKept: RATE_LIMIT_KEYS_KEPT,
    credentialsKept: RATE_LIMIT_KEYS_KEPT,
  });
  app.addHook('onRequest', async (request) => {
    // Node keeps the first of two Authorization headers; a proxy in front may read the last. Two
    // is never meant: refuse rather than pick one (RFC 9110 §5.3: not a list-valued field).
    if (authorizationHeaders(request) > 1) {
      throw new ProblemError('invalid_request', 'Send one Authorization header, not several');
    }
    if (isThrottleExempt(request)) return;
    const hash = credentialHash(request);
    if (!hash) return;
    const retryAfter = throttle.refusal(addressKey(request.ip), hash);
    if (retryAfter === undefined) return;
    // A genuine clientSecret cannot be a guess (it is an HMAC): it passes, even in a process that
    // has not seen it succeed (another API process issued it, or this one restarted). Checked only
    // here, for an address over its budget: no HMAC on the way of every request.
    const token = bearerToken(request);
    if (token && options.isGenuineClientSecret?.(token)) return;
    throw rateLimited(
      retryAfter,
      `Too many failed authentications from this address; retry in ${retryAfter} s (a credential that worked before is still served)`,
    );
  });
  app.addHook('onResponse', async (request, reply) => {
    if (isThrottleExempt(request)) return;
    for (const issued of issuedCredentials(request)) {
      if (reply.statusCode < 300) throttle.verified(hashSecret(issued));
    }
    const hash = credentialHash(request);
    if (!hash) return;
    const outcome = authenticationOutcome(request);
    if (outcome === 'verified') throttle.verified(hash);
    // A 401 is a refused credential even where the code did not say so.
    else if (outcome === 'failed' || reply.statusCode === 401) throttle.failed(addressKey(request.ip), hash);
  });

  await app.register(rateLimit, {
    max: limit.max,
    timeWindow: limit.timeWindowMs,
    hook: 'onRequest',
    cache: RATE_LIMIT_KEYS_KEPT,
    keyGenerator: rateLimitKey,
    allowList: (request) => isExempt(request),
    errorResponseBuilder: (_request, context) =>
      rateLimited(
        Math.ceil(context.ttl / 1000),
        `More than ${context.max} requests in ${limit.timeWindowMs / 1000} s with this credential; retry in ${context.after}`,
      ),
  });
}

/**
 * The same headers for answers no hook sees: those to requests the router refuses before routing
 * (Fastify's `frameworkErrors`).
 */
export function setApiSecurityHeaders(request: FastifyRequest, reply: FastifyReply): void {
  setApiHelmetHeaders(request.raw, reply.raw, () => {});
  reply.header('cache-control', 'no-store');
}

export const security = fp(securityPlugin, { name: 'bankpay-security', fastify: '5.x' });
