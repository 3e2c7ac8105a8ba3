/**
 * Builds the HTTP app, top to bottom: infrastructure plugins, then the modules, then the error
 * handlers. Dependencies (database, queue, configuration) are passed in; nothing here reads env.
 */
import cors from '@fastify/cors';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { DestinationStream } from 'pino';
import { CheckoutError } from './checkout/checkout.errors.ts';
import { checkoutRoutes } from './checkout/checkout.routes.ts';
import { CHECKOUT_CHANGED_CHANNEL, CheckoutWatch } from './checkout/checkout.watch.ts';
import { isGenuineClientSecret } from './checkout/client-secret.ts';
import type { Config } from './config.ts';
import { elementsRoutes } from './elements/elements.routes.ts';
import { merchantAuth } from './http/auth.ts';
import { healthRoutes } from './http/health.ts';
import { registerJsonBodyParser } from './http/json-body.ts';
import { jwksRoutes } from './http/jwks.ts';
import { registerProblemHandlers, sendError } from './http/problem.ts';
import { generateRequestId, requestLogger } from './http/request-id.ts';
import { type RateLimitSettings, security, setApiSecurityHeaders } from './http/security.ts';
import { registerValidators } from './http/validation.ts';
import { createKeyRing } from './infra/crypto.ts';
import { createSqlPool, type Database, isDatabaseReachable, type SqlPool } from './infra/database.ts';
import { loggerOptions } from './infra/logging.ts';
import { type NotificationSource, PgListener } from './infra/pg-listen.ts';
import type { QueueInfra } from './infra/queue.ts';
import { registerSwagger } from './infra/swagger.ts';
import { cibaNotifyRoutes } from './notifications/ciba-notify.routes.ts';
import { webhookRoutes } from './notifications/webhooks.routes.ts';
import { WebhookError } from './notifications/webhooks.service.ts';
import { createRepositories } from './repositories.ts';

export interface AppDependencies {
  config: Config;
  db: Database;
  queue: QueueInfra;
  /** node-postgres for the hot statements (create, status read); made from the config when absent. */
  sql?: SqlPool;
  /** Requests per credential per window (default: RATE_LIMIT_MAX / RATE_LIMIT_WINDOW_MS). */
  rateLimit?: RateLimitSettings;
  /** Where the logs go (default stdout); tests capture them here. */
  logStream?: DestinationStream;
  /**
   * Checkout change notifications for held reads and streams (default: a LISTEN connection of its
   * own on `checkout_changed`, opened at the first one; the app closes it).
   */
  changes?: NotificationSource;
}

export const BODY_LIMIT_BYTES = 16 * 1024;

export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    logger: {
      ...loggerOptions(deps.config.logLevel, 'bankpay-api'),
      ...(deps.logStream ? { stream: deps.logStream } : {}),
    },
    bodyLimit: BODY_LIMIT_BYTES,
    // Ours, never the client's (src/http/request-id.ts): theirs is logged apart as clientRequestId.
    requestIdHeader: false,
    genReqId: generateRequestId,
    childLoggerFactory: requestLogger,
    return503OnClosing: true,
    trustProxy: deps.config.http.trustProxy,
    // Errors of the router itself (malformed percent-encoding, an overlong path segment) as
    // problem+json too; without this Fastify answers them in its own JSON shape. No hook runs there.
    frameworkErrors: (error, request, reply) => {
      setApiSecurityHeaders(request, reply);
      sendError(error, request, reply);
    },
    // Fastify's two lines per request (incoming, completed) say neither the path nor the status
    // together: one access line per request instead (the onResponse hook below).
    logController: new LogController({ disableRequestLogging: true }),
  }).withTypeProvider<TypeBoxTypeProvider>();

  // One line per request: method, path (never the query, which may hold a client_secret),
  // status and duration. Probes hit health endpoints every few seconds: not logged.
  app.addHook('onResponse', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (path.startsWith('/health/')) return;
    const ms = Math.round(reply.elapsedTime * 10) / 10;
    request.log.info(
      { method: request.method, path, status: reply.statusCode, ms },
      `${request.method} ${path} ${reply.statusCode} ${ms} ms`,
    );
  });

  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });

  registerValidators(app);
  // Before any route: every route that takes JSON, now and later, inherits the one parser.
  registerJsonBodyParser(app);
  const clientSecretKeys = createKeyRing(deps.config.clientSecretKeys);
  await app.register(security, {
    rateLimit: deps.rateLimit ?? deps.config.http.rateLimit,
    isGenuineClientSecret: (token) => isGenuineClientSecret(clientSecretKeys, token),
  });
  // A storefront's page may follow its own checkout with the clientSecret (DESIGN.md §2), from
  // the origins configured; nothing else is shared cross-origin. A held read sends If-None-Match
  // and Prefer and reads the ETag; an EventSource that reconnects sends Last-Event-ID (not a
  // CORS-safelisted header, so it must be allowed for the request to pass the preflight).
  if (deps.config.http.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: deps.config.http.corsOrigins,
      methods: ['GET'],
      allowedHeaders: ['authorization', 'if-none-match', 'prefer', 'last-event-id'],
      exposedHeaders: ['retry-after', 'x-request-id', 'etag', 'preference-applied'],
      maxAge: 600,
    });
  }
  await registerSwagger(app);
  registerProblemHandlers(app, [CheckoutError, WebhookError]);

  let sql = deps.sql;
  if (!sql) {
    const own = createSqlPool(deps.config.databaseUrl);
    app.addHook('onClose', () => own.end());
    sql = own;
  }
  // Before every module: each route's declared scope is checked as it is registered (auth.ts).
  await app.register(merchantAuth, { db: deps.db });
  const repositories = createRepositories(deps.db, sql);
  // Live status (DESIGN.md §7.2): one LISTEN connection per API process, and the followers of each
  // checkout, fed by it (why PostgreSQL NOTIFY: src/checkout/checkout.watch.ts).
  const watch = new CheckoutWatch({
    checkouts: repositories.checkouts,
    source:
      deps.changes ??
      new PgListener({
        connectionString: deps.config.databaseUrl,
        channel: CHECKOUT_CHANGED_CHANNEL,
        log: app.log,
      }),
    recheckMs: deps.config.live.recheckMs,
    log: app.log,
  });
  await app.register(checkoutRoutes, {
    ...repositories,
    watch,
    queue: deps.queue.queue,
    clientSecretKeys,
    config: deps.config,
    log: app.log,
  });

  await app.register(cibaNotifyRoutes, {
    pollSchedule: repositories.pollSchedule,
    pingBanks: new Set(deps.config.banks.filter((b) => b.deliveryMode === 'ping').map((b) => b.id)),
    rateLimit: {
      max: deps.config.http.notifyRateLimitMax,
      timeWindowMs: (deps.rateLimit ?? deps.config.http.rateLimit).timeWindowMs,
    },
  });

  await app.register(webhookRoutes, {
    events: repositories.events,
    webhookEndpoints: repositories.webhookEndpoints,
    webhookDeliveries: repositories.webhookDeliveries,
    keys: createKeyRing(deps.config.tokenEncryptionKeys),
  });

  await app.register(jwksRoutes, { banks: deps.config.banks });

  // The checkout element for storefront pages (DESIGN.md §7.4): a static module, public.
  await app.register(elementsRoutes);

  await app.register(healthRoutes, {
    isDatabaseReachable: () => isDatabaseReachable(deps.db),
    isQueueReachable: () => deps.queue.isReachable(),
  });

  return app;
}
