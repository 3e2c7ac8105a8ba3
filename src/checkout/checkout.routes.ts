/**
 * /v1/checkouts and /v1/banks (DESIGN.md §2). Thin: validate, call the service, shape the HTTP
 * answer. Each route's `config` says which scope a merchant key needs (or that it is public);
 * src/http/auth.ts authenticates and checks it before the handler runs.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bearerToken, merchantKeyOf, unauthorized } from '../http/auth.ts';
import { authenticationFailed, credentialIssued, credentialVerified } from '../http/auth-throttle.ts';
import { ProblemSchema } from '../http/problem.ts';
import { checkoutNotFound } from './checkout.errors.ts';
import {
  BankListSchema,
  CheckoutIdParams,
  CheckoutListSchema,
  CheckoutSchema,
  CreateCheckoutBody,
  IdempotencyKeyHeader,
  ListCheckoutsQuery,
} from './checkout.schemas.ts';
import {
  type CheckoutDeps,
  cancelCheckout,
  createCheckout,
  getCheckout,
  listCheckouts,
} from './checkout.service.ts';
import { clientSecretStillAccepted, looksLikeClientSecret, verifyClientSecret } from './client-secret.ts';

// 403 insufficient_scope is added by src/http/auth.ts to every route that declares a scope.
const problems = (...codes: number[]) => Object.fromEntries(codes.map((c) => [c, ProblemSchema]));

export type CheckoutRouteOptions = CheckoutDeps;

export const checkoutRoutes: FastifyPluginAsyncTypebox<CheckoutRouteOptions> = async (app, deps) => {
  app.post(
    '/v1/checkouts',
    {
      config: { scope: 'checkouts:create' },
      schema: {
        operationId: 'createCheckout',
        tags: ['checkouts'],
        summary: 'Create a checkout: the customer is asked to approve the payment in their bank app',
        description:
          'Answers 202: the bank is contacted in the background. Follow the checkout with GET /v1/checkouts/{id} ' +
          '(Location header) until its status is terminal. Requires an Idempotency-Key: the same key and body ' +
          'replays the first response for 24 h.',
        headers: IdempotencyKeyHeader,
        body: CreateCheckoutBody,
        response: { 202: CheckoutSchema, ...problems(400, 401, 409, 413, 415, 422, 429, 503) },
      },
    },
    async (request, reply) => {
      const apiKeyId = merchantKeyOf(request).id;
      // Required, 1-255 visible ASCII: checked by the header schema (IdempotencyKeyHeader).
      const key = request.headers['idempotency-key'];
      const result = await createCheckout(deps, apiKeyId, key, request.body);
      if (result.body.clientSecret) credentialIssued(request, result.body.clientSecret);
      if (result.replayed) reply.header('Idempotent-Replayed', 'true');
      reply.header('Location', `/v1/checkouts/${result.body.id}`);
      reply.header('Retry-After', '1');
      return reply.code(result.status as 202).send(result.body);
    },
  );

  app.get(
    '/v1/checkouts/:id',
    {
      config: { scope: 'checkouts:read', clientSecret: true },
      schema: {
        operationId: 'getCheckout',
        tags: ['checkouts'],
        summary: "Read a checkout (merchant key, or the checkout's clientSecret from a browser)",
        description: 'While the checkout is not terminal, Retry-After says when asking again is useful.',
        params: CheckoutIdParams,
        response: { 200: CheckoutSchema, ...problems(400, 401, 404, 414, 429, 503) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      if (!request.merchantKey) {
        // Not a merchant key (src/http/auth.ts checked those, scope included): a clientSecret, which
        // opens its own checkout only; for any other it is "not found", not "forbidden", and still
        // a failed authentication: guesses are throttled like wrong keys.
        const token = bearerToken(request) ?? '';
        if (!looksLikeClientSecret(token)) throw unauthorized('The API key is not valid');
        if (!verifyClientSecret(deps.clientSecretKeys, id, token)) {
          authenticationFailed(request);
          throw checkoutNotFound(id);
        }
      }
      credentialVerified(request);
      const { view, retryAfter } = await getCheckout(deps, id);
      // A day after the checkout ended its clientSecret no longer reads it (the merchant key still does).
      if (!request.merchantKey && !clientSecretStillAccepted(view, Date.now())) throw checkoutNotFound(id);
      if (retryAfter !== undefined) reply.header('Retry-After', String(retryAfter));
      if (request.merchantKey) return view;
      // A browser (clientSecret) gets the checkout, not its timeline: that is the merchant's record,
      // with the bank's own words about failures (DESIGN.md §7.2).
      const { timeline: _, ...forBrowser } = view;
      return forBrowser;
    },
  );

  app.get(
    '/v1/checkouts',
    {
      config: { scope: 'checkouts:read' },
      schema: {
        operationId: 'listCheckouts',
        tags: ['checkouts'],
        summary: 'List checkouts, newest first',
        description:
          'Cursor pagination: pass the last id of a page as starting_after to get the next; has_more says whether there is one.',
        querystring: ListCheckoutsQuery,
        response: { 200: CheckoutListSchema, ...problems(400, 401, 429, 503) },
      },
    },
    async (request) => listCheckouts(deps, request.query),
  );

  app.post(
    '/v1/checkouts/:id/cancel',
    {
      config: { scope: 'checkouts:cancel' },
      schema: {
        operationId: 'cancelCheckout',
        tags: ['checkouts'],
        summary: 'Cancel a checkout before the customer has authorized it',
        description:
          'Allowed while pending or awaiting_approval; afterwards 409 checkout_not_cancelable. A later approval in the bank app pays nothing.',
        params: CheckoutIdParams,
        response: { 200: CheckoutSchema, ...problems(400, 401, 404, 409, 414, 429, 503) },
      },
    },
    async (request) => cancelCheckout(deps, request.params.id),
  );

  app.get(
    '/v1/banks',
    {
      // The bank picker runs in the customer's browser: no credential.
      config: { public: true },
      schema: {
        operationId: 'listBanks',
        tags: ['banks'],
        summary: 'The banks customers can pay with (for a bank picker)',
        response: { 200: BankListSchema, ...problems(429) },
      },
    },
    async () => ({ data: deps.config.banks.map((b) => ({ id: b.id, name: b.name })) }),
  );
};
