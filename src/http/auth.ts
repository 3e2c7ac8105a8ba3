/**
 * Bearer credentials: a merchant API key, or (for reading one checkout) its clientSecret.
 * Failures are 401 problem+json with `WWW-Authenticate: Bearer` (RFC 6750 §3); a key without the
 * route's scope is 403 `insufficient_scope` (RFC 6750 §3.1).
 *
 * Every route declares who may call it, next to its definition, in its `config`: the scope a
 * merchant key needs (`{ scope: 'checkouts:read' }`), or `{ public: true }`. This plugin is the
 * one place that enforces the declaration (before the handler runs) and documents it in the
 * OpenAPI document, so the document cannot promise what is not enforced. A /v1/ route that
 * declares neither stops the app at start: a new route cannot be left open by forgetting.
 */
import type { FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import {
  API_KEY_PREFIX,
  allows,
  authenticateApiKey,
  isScope,
  type Scope,
  type VerifiedApiKey,
} from '../infra/api-keys.ts';
import type { Database } from '../infra/database.ts';
import { credentialVerified } from './auth-throttle.ts';
import { ProblemError, problemResponses } from './problem.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a merchant API key needs for this route; a full-access key has every scope. */
    scope?: Scope;
    /**
     * With `scope`: the checkout's clientSecret may be presented instead of a key. This layer
     * cannot check it (it is the checkout's); the handler does, when `request.merchantKey` is null.
     */
    clientSecret?: boolean;
    /**
     * With `clientSecret`: the clientSecret may also come as `?client_secret=` (a browser's
     * EventSource cannot send headers). Never a merchant key: keys in URLs end up in proxy logs
     * and browser histories. Our logs redact it (src/infra/logging.ts).
     */
    clientSecretInQuery?: boolean;
    /** No credential at all (the bank list, for a picker). */
    public?: boolean;
  }
  interface FastifyRequest {
    /** The merchant key a route with a `scope` was called with; null for a clientSecret or elsewhere. */
    merchantKey: VerifiedApiKey | null;
  }
}

/** The OpenAPI security scheme of merchant keys (src/infra/swagger.ts). */
const MERCHANT_KEY_SCHEME = 'merchantKey';
/** Routes under this prefix are the merchant's API: each must say who may call it. */
const API_PREFIX = '/v1/';

const TOKEN = /^[\x21-\x7e]{1,512}$/;

/**
 * The request's credential: the `Authorization: Bearer` token (RFC 6750 §2.1), or, on a route
 * that declares `clientSecretInQuery` and only without an Authorization header, the
 * `client_secret` query parameter (RFC 6750 §2.3 form). Undefined when there is neither, or it is
 * malformed.
 */
export function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (!header) return queryClientSecret(request);
  const match = /^Bearer ([\x21-\x7e]{1,512})$/i.exec(header);
  return match?.[1];
}

/** `?client_secret=` on a route that takes it, when there is no Authorization header. */
function queryClientSecret(request: FastifyRequest): string | undefined {
  if (request.headers.authorization || !request.routeOptions.config?.clientSecretInQuery) return undefined;
  const value = (request.query as Record<string, unknown> | undefined)?.client_secret;
  return typeof value === 'string' && TOKEN.test(value) ? value : undefined;
}

export function unauthorized(
  detail = 'Send a merchant API key as "Authorization: Bearer <key>"',
): ProblemError {
  return new ProblemError('unauthorized', detail);
}

/** The key a route with a `scope` was called with; only for routes that take no clientSecret. */
export function merchantKeyOf(request: FastifyRequest): VerifiedApiKey {
  const key = request.merchantKey;
  if (!key) throw new Error(`${request.method} ${request.routeOptions.url}: no merchant key (config.scope?)`);
  return key;
}

function insufficientScope(reply: FastifyReply, scope: Scope): ProblemError {
  // RFC 6750 §3.1: the client learns which scope the request needs.
  reply.header('WWW-Authenticate', `Bearer realm="bankpay", error="insufficient_scope", scope="${scope}"`);
  return new ProblemError('insufficient_scope', `This API key does not have the "${scope}" scope`);
}

/** Who may call the route, in words, for its OpenAPI description. */
function describeAccess(scope: Scope, clientSecret: boolean): string {
  const alternative = clientSecret ? ", or the checkout's clientSecret" : '';
  return (
    `Needs a merchant API key with the \`${scope}\` scope (a full-access key has every scope)` +
    `${alternative}; a restricted key without it gets 403 insufficient_scope.`
  );
}

/**
 * Checks a route's declaration as it is registered, and documents its scope: the security
 * requirement lists it (OpenAPI 3.1 §4.8.30: for schemes other than OAuth the list names the roles
 * the operation requires), the description says it, and 403 is among its responses.
 */
function declareAccess(route: RouteOptions): void {
  const where = `${route.method} ${route.url}`;
  const { scope, clientSecret, clientSecretInQuery, public: isPublic } = route.config ?? {};
  if (clientSecretInQuery && !clientSecret)
    throw new Error(`${where}: config.clientSecretInQuery needs config.clientSecret`);
  if (scope === undefined) {
    if (clientSecret) throw new Error(`${where}: config.clientSecret needs config.scope`);
    const documented = (route.schema?.security ?? []).some((r) => MERCHANT_KEY_SCHEME in r);
    if (documented || (route.url.startsWith(API_PREFIX) && !isPublic)) {
      throw new Error(
        `${where} declares no scope: add config.scope (the scope a merchant key needs) or config.public`,
      );
    }
    return;
  }
  if (!isScope(scope)) throw new Error(`${where}: config.scope "${String(scope)}" is not a known scope`);
  if (isPublic) throw new Error(`${where}: config.public and config.scope contradict each other`);
  const schema = route.schema ?? {};
  route.schema = {
    ...schema,
    security: [{ [MERCHANT_KEY_SCHEME]: [scope] }],
    description: [schema.description, describeAccess(scope, clientSecret === true)].filter(Boolean).join(' '),
    // Integer keys keep status order whatever order they are added in.
    response: {
      ...(schema.response as Record<string, unknown> | undefined),
      ...problemResponses(['insufficient_scope'], {
        insufficient_scope: `This API key does not have the "${scope}" scope`,
      }),
    },
  };
}

async function authenticate(db: Database, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const { scope, clientSecret } = request.routeOptions.config;
  if (scope === undefined) return;
  const token = bearerToken(request);
  if (!token) {
    throw unauthorized(
      clientSecret ? "Send a merchant API key or the checkout's clientSecret as a Bearer token" : undefined,
    );
  }
  // Anything but a key is the handler's to check as a clientSecret (it opens one checkout only).
  if (clientSecret && !token.startsWith(API_KEY_PREFIX)) return;
  if (queryClientSecret(request) !== undefined) {
    throw unauthorized(
      'A merchant API key is never accepted in the URL (client_secret takes a clientSecret only): send it as "Authorization: Bearer <key>"',
    );
  }
  const key = await authenticateApiKey(db, token);
  if (!key) throw unauthorized('The API key is not valid');
  // A valid key: failures from its address never block it (auth-throttle.ts).
  credentialVerified(request);
  if (!allows(key.scopes, scope)) throw insufficientScope(reply, scope);
  request.merchantKey = key;
}

export interface MerchantAuthOptions {
  /** Where merchant API keys are looked up. */
  db: Database;
}

/** Register before any route: the declarations of routes registered afterwards are checked. */
export const merchantAuth = fp<MerchantAuthOptions>(
  async (app, { db }) => {
    app.decorateRequest('merchantKey', null);
    app.addHook('onRoute', declareAccess);
    // After validation, as the handlers authenticated before: the order of answers is unchanged.
    app.addHook('preHandler', (request, reply) => authenticate(db, request, reply));
    app.addHook('onSend', async (_request, reply) => {
      if (reply.statusCode === 401 && !reply.hasHeader('www-authenticate')) {
        reply.header('WWW-Authenticate', 'Bearer realm="bankpay"');
      }
    });
  },
  { name: 'bankpay-merchant-auth', fastify: '5.x' },
);
