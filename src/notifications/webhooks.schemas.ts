/**
 * TypeBox schemas of the webhook endpoints and events routes (DESIGN.md §7.3): validation, types
 * and the OpenAPI document from one source.
 */
import { Type } from 'typebox';
import {
  CheckoutSchema,
  PRINTABLE,
  pageQueryProperties,
  SUCCEEDED_CHECKOUT_EXAMPLE,
  Timestamp,
} from '../checkout/checkout.schemas.ts';
import { WEBHOOK_URL_MAX_LENGTH } from '../integrations/webhook-address.policy.ts';
import { EVENT_TYPES } from './events.repository.ts';

export const EventTypeSchema = Type.Union(
  [
    Type.Literal('checkout.awaiting_approval'),
    Type.Literal('checkout.succeeded'),
    Type.Literal('checkout.declined'),
    Type.Literal('checkout.expired'),
    Type.Literal('checkout.failed'),
    Type.Literal('checkout.canceled'),
  ],
  { description: 'An event type (DESIGN.md §7.3)' },
);

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) =>
  Type.Union([schema, Type.Null()]);

export const CreateWebhookEndpointBody = Type.Object(
  {
    url: Type.String({
      minLength: 1,
      maxLength: WEBHOOK_URL_MAX_LENGTH,
      description:
        'Where events are POSTed: https, or http to a loopback address (127.0.0.1, [::1], localhost). ' +
        'No credentials, no fragment, an internationalized host name in its xn-- form; not a private address.',
    }),
    events: Type.Optional(
      Type.Array(EventTypeSchema, {
        minItems: 1,
        maxItems: EVENT_TYPES.length,
        uniqueItems: true,
        description: 'The event types it receives (default: all)',
      }),
    ),
    description: Type.Optional(Type.String({ maxLength: 200, pattern: PRINTABLE })),
  },
  { additionalProperties: false },
);

export const WebhookEndpointIdParams = Type.Object(
  { id: Type.String({ minLength: 1, maxLength: 64, pattern: PRINTABLE }) },
  { additionalProperties: false },
);

const endpointProperties = {
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(EventTypeSchema),
  description: Nullable(Type.String()),
  createdAt: Timestamp,
  status: Type.Union([Type.Literal('enabled'), Type.Literal('disabled')], {
    description: '`disabled` after every attempt failed for 3 days (disabledReason says why)',
  }),
  disabledAt: Nullable(Timestamp),
  disabledReason: Nullable(Type.String()),
  failingSince: Nullable({ ...Timestamp, description: 'Since when every attempt has failed' }),
  previousSecretExpiresAt: Nullable({
    ...Timestamp,
    description: 'After a rotation: until when the previous secret still signs beside the new one',
  }),
};

export const WebhookEndpointSchema = Type.Object(endpointProperties, { additionalProperties: false });

export const WebhookEndpointWithSecretSchema = Type.Object(
  {
    ...endpointProperties,
    secret: Type.String({
      description: 'The signing secret (Standard Webhooks, whsec_…): shown in this answer only',
    }),
  },
  { additionalProperties: false },
);

export const WebhookEndpointListSchema = Type.Object(
  { data: Type.Array(WebhookEndpointSchema) },
  { additionalProperties: false },
);

export const DeletedSchema = Type.Object(
  { id: Type.String(), deleted: Type.Literal(true) },
  { additionalProperties: false },
);

const { timeline: _timeline, ...succeededCheckout } = SUCCEEDED_CHECKOUT_EXAMPLE;

export const EventSchema = Type.Object(
  {
    id: Type.String({ description: 'evt_…: the webhook-id of every delivery of it' }),
    type: EventTypeSchema,
    createdAt: Timestamp,
    data: Type.Object(
      { object: Type.Object(CheckoutSchema.properties, { additionalProperties: false }) },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
);

const DeliverySchema = Type.Object(
  {
    endpointId: Type.String(),
    state: Type.Union(
      [Type.Literal('pending'), Type.Literal('delivered'), Type.Literal('failed'), Type.Literal('abandoned')],
      {
        description:
          'pending: to be attempted at nextAttemptAt · delivered · failed: retried for 3 days in vain · ' +
          'abandoned: the endpoint was disabled',
      },
    ),
    attempts: Type.Integer(),
    nextAttemptAt: Nullable(Timestamp),
    deliveredAt: Nullable(Timestamp),
  },
  { additionalProperties: false },
);

const AttemptSchema = Type.Object(
  {
    endpointId: Type.String(),
    attemptedAt: Timestamp,
    status: Nullable(Type.Integer({ description: 'The HTTP status, when one came back' })),
    error: Nullable(
      Type.String({
        description:
          'When no status came back: timeout, connection_refused, connection_reset, dns_error, tls_error, ' +
          'address_refused, network_error or secret_unavailable',
      }),
    ),
    durationMs: Type.Integer(),
  },
  { additionalProperties: false },
);

export const EventDetailSchema = Type.Object(
  {
    ...EventSchema.properties,
    deliveries: Type.Array(DeliverySchema),
    attempts: Type.Array(AttemptSchema, { description: 'Every attempt, oldest first' }),
  },
  { additionalProperties: false },
);

export const EventListSchema = Type.Object(
  { data: Type.Array(EventSchema), has_more: Type.Boolean() },
  { additionalProperties: false },
);

export const ListEventsQuery = Type.Object(
  {
    ...pageQueryProperties('An event'),
    type: Type.Optional(EventTypeSchema),
  },
  { additionalProperties: false },
);

export const EventIdParams = WebhookEndpointIdParams;

export const ResendEventBody = Type.Union([
  Type.Object(
    {
      endpointId: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 64,
          pattern: PRINTABLE,
          description: 'Only to this endpoint (default: every enabled endpoint subscribed to the type)',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  Type.Null(),
]);

export const ENDPOINT_EXAMPLE = {
  id: 'we_4kQ9x2LmZr7TfWb3Hc8pNv',
  url: 'https://shop.example/webhooks/bankpay',
  events: ['checkout.succeeded', 'checkout.declined', 'checkout.expired', 'checkout.failed'],
  description: 'Order fulfilment',
  createdAt: '2025-06-01T08:00:00.000Z',
  status: 'enabled',
  disabledAt: null,
  disabledReason: null,
  failingSince: null,
  previousSecretExpiresAt: null,
};

export const ENDPOINT_WITH_SECRET_EXAMPLE = {
  ...ENDPOINT_EXAMPLE,
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw4VsMwHBnzCE=',
};

export const EVENT_EXAMPLE = {
  id: 'evt_7c1f0a9e3b5d4e6f8a2b1c0d9e8f7a6b',
  type: 'checkout.succeeded',
  createdAt: succeededCheckout.updatedAt,
  data: { object: succeededCheckout },
};

export const EVENT_DETAIL_EXAMPLE = {
  ...EVENT_EXAMPLE,
  deliveries: [
    {
      endpointId: ENDPOINT_EXAMPLE.id,
      state: 'delivered',
      attempts: 2,
      nextAttemptAt: null,
      deliveredAt: '2025-06-02T09:14:51.412Z',
    },
  ],
  attempts: [
    {
      endpointId: ENDPOINT_EXAMPLE.id,
      attemptedAt: '2025-06-02T09:14:21.131Z',
      status: 503,
      error: null,
      durationMs: 48,
    },
    {
      endpointId: ENDPOINT_EXAMPLE.id,
      attemptedAt: '2025-06-02T09:14:51.366Z',
      status: 200,
      error: null,
      durationMs: 46,
    },
  ],
};
