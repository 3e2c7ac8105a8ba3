/**
 * /v1/checkouts and /v1/banks (DESIGN.md §2). Thin: validate, call the service, shape the HTTP
 * answer. Each route's `config` says which scope a merchant key needs (or that it is public);
 * src/http/auth.ts authenticates and checks it before the handler runs.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { bearerToken, merchantKeyOf, unauthorized } from '../http/auth.ts';
import { authenticationFailed, credentialIssued, credentialVerified } from '../http/auth-throttle.ts';
import { problemResponses } from '../http/problem.ts';
import { checkoutNotFound } from './checkout.errors.ts';
import {
  BankListSchema,
  CANCELED_CHECKOUT_EXAMPLE,
  CheckoutIdParams,
  CheckoutListSchema,
  CheckoutSchema,
  CREATED_CHECKOUT_EXAMPLE,
  CreateCheckoutBody,
  documented,
  IdempotencyKeyHeader,
  ListCheckoutsQuery,
  SUCCEEDED_CHECKOUT_EXAMPLE,
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
const problems = problemResponses;
/** Every route may be refused these (the rate limit; Postgres or the queue down). */
const ANY = ['rate_limited', 'dependency_unavailable'] as const;

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
        response: {
          202: documented(
            CheckoutSchema,
            'The checkout, created: `pending` until the bank has the request, with the `clientSecret` a browser ' +
              'may read it with. `Location` is its URL. The same Idempotency-Key and body answer the first ' +
              'response again, with `Idempotent-Replayed: true`.',
            CREATED_CHECKOUT_EXAMPLE,
            {
              Location: {
                type: 'string',
                description: "The checkout's URL, e.g. /v1/checkouts/chk_3kq9Xw2bV7mPz4TfLr8a",
              },
              'Retry-After': {
                type: 'string',
                description: 'Seconds until reading the checkout is useful (1)',
              },
              'Idempotent-Replayed': {
                type: 'string',
                description: '`true` when this is the stored answer to an earlier request with the same key',
              },
            },
          ),
          ...problems([
            'invalid_request',
            'malformed_json',
            'idempotency_key_missing',
            'invalid_idempotency_key',
            'unauthorized',
            'idempotency_key_in_use',
            'body_too_large',
            'unsupported_media_type',
            'idempotency_key_reused',
            'unknown_bank',
            ...ANY,
          ]),
        },
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
        response: {
          200: documented(
            CheckoutSchema,
            'The checkout; with a merchant key also its `timeline` (a clientSecret reads it without). While it is not terminal, `Retry-After` says when to ask again.',
            SUCCEEDED_CHECKOUT_EXAMPLE,
          ),
          ...problems(['invalid_request', 'unauthorized', 'checkout_not_found', 'uri_too_long', ...ANY]),
        },
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
        response: {
          200: documented(CheckoutListSchema, 'A page of checkouts, newest first', {
            data: [CREATED_CHECKOUT_EXAMPLE].map(({ clientSecret: _, ...checkout }) => checkout),
            has_more: true,
          }),
          ...problems(['invalid_request', 'unauthorized', ...ANY], {
            invalid_request: 'starting_after is not a known checkout id',
          }),
        },
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
        response: {
          200: documented(
            CheckoutSchema,
            'The checkout, canceled (canceling a canceled checkout answers it again)',
            CANCELED_CHECKOUT_EXAMPLE,
          ),
          ...problems([
            'invalid_request',
            'unauthorized',
            'checkout_not_found',
            'checkout_not_cancelable',
            'uri_too_long',
            ...ANY,
          ]),
        },
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
        response: {
          200: documented(BankListSchema, 'The configured banks, by id and display name', {
            data: [{ id: 'sandbox', name: 'Sandbox Bank' }],
          }),
          ...problems(['rate_limited']),
        },
      },
    },
    async () => ({ data: deps.config.banks.map((b) => ({ id: b.id, name: b.name })) }),
  );
};
