/**
 * /v1/webhook_endpoints and /v1/events (DESIGN.md §7.3). Thin: validate, call the service, shape
 * the HTTP answer. Managing endpoints and resending need `webhooks:manage`; reading events, which
 * carry checkouts, needs `checkouts:read` (src/http/auth.ts checks the scope before the handler).
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { documented } from '../checkout/checkout.schemas.ts';
import { problemResponses as problems } from '../http/problem.ts';
import {
  CreateWebhookEndpointBody,
  DeletedSchema,
  ENDPOINT_EXAMPLE,
  ENDPOINT_WITH_SECRET_EXAMPLE,
  EVENT_DETAIL_EXAMPLE,
  EVENT_EXAMPLE,
  EventDetailSchema,
  EventIdParams,
  EventListSchema,
  ListEventsQuery,
  ResendEventBody,
  WebhookEndpointIdParams,
  WebhookEndpointListSchema,
  WebhookEndpointSchema,
  WebhookEndpointWithSecretSchema,
} from './webhooks.schemas.ts';
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getEvent,
  getWebhookEndpoint,
  listEvents,
  listWebhookEndpoints,
  resendEvent,
  rotateWebhookSecret,
  type WebhookDeps,
} from './webhooks.service.ts';

/** Every route may be refused these (the rate limit; Postgres down). */
const ANY = ['unauthorized', 'rate_limited', 'dependency_unavailable'] as const;

export const webhookRoutes: FastifyPluginAsyncTypebox<WebhookDeps> = async (app, deps) => {
  app.post(
    '/v1/webhook_endpoints',
    {
      config: { scope: 'webhooks:manage' },
      schema: {
        operationId: 'createWebhookEndpoint',
        tags: ['webhooks'],
        summary: 'Register a webhook endpoint: every event of its types is POSTed to it, signed',
        description:
          'Events are signed as Standard Webhooks specifies (webhook-id, webhook-timestamp, webhook-signature) ' +
          'with the `secret` of this answer, which is not shown again. A 2xx within 10 s counts as delivered; ' +
          'anything else is retried with backoff for 3 days.',
        body: CreateWebhookEndpointBody,
        response: {
          201: documented(
            WebhookEndpointWithSecretSchema,
            'The endpoint, with its signing secret (shown only here)',
            ENDPOINT_WITH_SECRET_EXAMPLE,
          ),
          ...problems(
            [
              'invalid_request',
              'malformed_json',
              'body_too_large',
              'unsupported_media_type',
              'webhook_endpoint_limit_reached',
              ...ANY,
            ],
            { invalid_request: 'The webhook URL names 10.0.0.7 is not a public address' },
          ),
        },
      },
    },
    async (request, reply) => reply.code(201).send(await createWebhookEndpoint(deps, request.body)),
  );

  app.get(
    '/v1/webhook_endpoints',
    {
      config: { scope: 'webhooks:manage' },
      schema: {
        operationId: 'listWebhookEndpoints',
        tags: ['webhooks'],
        summary: 'List the webhook endpoints, newest first (at most 16)',
        response: {
          200: documented(WebhookEndpointListSchema, 'Every endpoint (never a secret)', {
            data: [ENDPOINT_EXAMPLE],
          }),
          ...problems([...ANY]),
        },
      },
    },
    async () => listWebhookEndpoints(deps),
  );

  app.get(
    '/v1/webhook_endpoints/:id',
    {
      config: { scope: 'webhooks:manage' },
      schema: {
        operationId: 'getWebhookEndpoint',
        tags: ['webhooks'],
        summary: 'One webhook endpoint, with its health (failingSince, status, disabledReason)',
        params: WebhookEndpointIdParams,
        response: {
          200: documented(WebhookEndpointSchema, 'The endpoint (never its secret)', ENDPOINT_EXAMPLE),
          ...problems(['invalid_request', 'webhook_endpoint_not_found', 'uri_too_long', ...ANY]),
        },
      },
    },
    async (request) => getWebhookEndpoint(deps, request.params.id),
  );

  app.delete(
    '/v1/webhook_endpoints/:id',
    {
      config: { scope: 'webhooks:manage' },
      schema: {
        operationId: 'deleteWebhookEndpoint',
        tags: ['webhooks'],
        summary: 'Delete a webhook endpoint: nothing more is sent to it',
        params: WebhookEndpointIdParams,
        response: {
          200: documented(DeletedSchema, 'Deleted', { id: ENDPOINT_EXAMPLE.id, deleted: true }),
          ...problems(['invalid_request', 'webhook_endpoint_not_found', 'uri_too_long', ...ANY]),
        },
      },
    },
    async (request) => deleteWebhookEndpoint(deps, request.params.id),
  );

  app.post(
    '/v1/webhook_endpoints/:id/rotate_secret',
    {
      config: { scope: 'webhooks:manage' },
      schema: {
        operationId: 'rotateWebhookSecret',
        tags: ['webhooks'],
        summary: 'A new signing secret; the previous one keeps signing beside it for 24 h',
        description:
          'For 24 h every delivery carries two signatures (webhook-signature holds both, space-separated), so ' +
          'a receiver verifies with either secret while it switches to the new one.',
        params: WebhookEndpointIdParams,
        response: {
          200: documented(
            WebhookEndpointWithSecretSchema,
            'The endpoint with its new secret (shown only here)',
            {
              ...ENDPOINT_WITH_SECRET_EXAMPLE,
              secret: 'whsec_3Xq1Zz0nKpTt7vPr2W9cLhQe5mYb8sJd4UaFg6HkRoE=',
              previousSecretExpiresAt: '2025-06-03T10:00:00.000Z',
            },
          ),
          ...problems(['invalid_request', 'webhook_endpoint_not_found', 'uri_too_long', ...ANY]),
        },
      },
    },
    async (request) => rotateWebhookSecret(deps, request.params.id),
  );

  app.get(
    '/v1/events',
    {
      config: { scope: 'checkouts:read' },
      schema: {
        operationId: 'listEvents',
        tags: ['events'],
        summary: 'List events, newest first (kept 30 days)',
        description:
          'Cursor pagination: pass the last id of a page as starting_after to get the next; has_more says ' +
          'whether there is one. `type` filters by event type.',
        querystring: ListEventsQuery,
        response: {
          200: documented(EventListSchema, 'A page of events, newest first', {
            data: [EVENT_EXAMPLE],
            has_more: false,
          }),
          ...problems(['invalid_request', ...ANY], {
            invalid_request: 'starting_after is not a known event id',
          }),
        },
      },
    },
    async (request) => listEvents(deps, request.query),
  );

  app.get(
    '/v1/events/:id',
    {
      config: { scope: 'checkouts:read' },
      schema: {
        operationId: 'getEvent',
        tags: ['events'],
        summary:
          'One event, with its deliveries and every attempt (time, endpoint, status or error, duration)',
        params: EventIdParams,
        response: {
          200: documented(EventDetailSchema, 'The event', EVENT_DETAIL_EXAMPLE),
          ...problems(['invalid_request', 'event_not_found', 'uri_too_long', ...ANY]),
        },
      },
    },
    async (request) => getEvent(deps, request.params.id),
  );

  app.post(
    '/v1/events/:id/resend',
    {
      config: { scope: 'webhooks:manage' },
      schema: {
        operationId: 'resendEvent',
        tags: ['events'],
        summary: 'Send an event again, with the same webhook-id',
        description:
          'Queued now for every enabled endpoint subscribed to its type, or only `endpointId`; retried for ' +
          '3 days again if it fails. The body may be left out.',
        params: EventIdParams,
        body: ResendEventBody,
        response: {
          202: documented(EventDetailSchema, 'The event, queued again', EVENT_DETAIL_EXAMPLE),
          ...problems([
            'invalid_request',
            'malformed_json',
            'body_too_large',
            'unsupported_media_type',
            'event_not_found',
            'webhook_endpoint_not_found',
            'no_webhook_endpoint',
            'uri_too_long',
            ...ANY,
          ]),
        },
      },
    },
    async (request, reply) =>
      reply.code(202).send(await resendEvent(deps, request.params.id, request.body ?? {})),
  );
};
