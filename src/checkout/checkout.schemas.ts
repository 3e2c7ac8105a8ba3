/**
 * The public API's shapes, one source: TypeBox gives validation, TypeScript types and the
 * OpenAPI document (openapi.yaml). Unknown fields are rejected, not stripped.
 */
import { type Static, type TSchema, Type } from 'typebox';
import type { CHECKOUT_STATUSES } from './checkout.states.ts';

/**
 * Printable text: no control characters (C0, DEL, C1), which break logs, banks and terminals, and
 * no lone surrogate (not Unicode text: it would be stored as U+FFFD, not as sent). A `u` regular
 * expression (JSON Schema's dialect, Ajv's default) sees a surrogate pair as one character.
 */
export const PRINTABLE = '^[^\\u0000-\\u001F\\u007F-\\u009F\\uD800-\\uDFFF]*$';

export const CheckoutStatusSchema = Type.Union(
  [
    Type.Literal('pending'),
    Type.Literal('awaiting_approval'),
    Type.Literal('authorized'),
    Type.Literal('succeeded'),
    Type.Literal('declined'),
    Type.Literal('expired'),
    Type.Literal('failed'),
    Type.Literal('canceled'),
  ],
  {
    description:
      'pending → awaiting_approval → authorized → succeeded; or declined, expired, failed, canceled',
  },
);
// The schema and the state machine must list the same statuses.
const _sameStatuses: (typeof CHECKOUT_STATUSES)[number] extends Static<typeof CheckoutStatusSchema>
  ? true
  : never = true;
void _sameStatuses;

export const CreateCheckoutBody = Type.Object(
  {
    amount: Type.Integer({
      minimum: 1,
      maximum: Number.MAX_SAFE_INTEGER,
      description: "In the currency's minor unit (ISO 4217 exponent): 4990 EUR is 49.90 €, 500 JPY is ¥500",
      examples: [4990],
    }),
    currency: Type.String({ pattern: '^[A-Z]{3}$', description: 'ISO 4217 code', examples: ['EUR'] }),
    bankId: Type.String({
      minLength: 1,
      maxLength: 40,
      description: 'A bank from GET /v1/banks',
      examples: ['sandbox'],
    }),
    loginHint: Type.String({
      minLength: 1,
      maxLength: 255,
      pattern: PRINTABLE,
      description: 'How the bank knows the customer (CIBA login_hint)',
      examples: ['alice'],
    }),
    reference: Type.String({
      minLength: 1,
      maxLength: 140,
      pattern: PRINTABLE,
      description: 'Your order reference; the bank shows it as the remittance information',
      examples: ['order-1234'],
    }),
    description: Type.Optional(Type.String({ maxLength: 500, pattern: PRINTABLE, examples: ['2 T-shirts'] })),
  },
  { additionalProperties: false },
);
export type CreateCheckoutInput = Static<typeof CreateCheckoutBody>;

export const Timestamp = Type.String({ format: 'date-time' });

export const CheckoutEventSchema = Type.Object(
  {
    at: Timestamp,
    step: Type.String({
      description: 'e.g. created, backchannel_authentication, token_poll, payment, status',
    }),
    outcome: Type.String(),
    detail: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  },
  { additionalProperties: false },
);

export const CheckoutSchema = Type.Object(
  {
    id: Type.String(),
    status: CheckoutStatusSchema,
    amount: Type.Integer(),
    currency: Type.String(),
    bankId: Type.String(),
    reference: Type.String(),
    description: Type.Union([Type.String(), Type.Null()]),
    bindingMessage: Type.String({ description: 'Show it to the customer: the bank app shows the same text' }),
    createdAt: Timestamp,
    updatedAt: Timestamp,
    expiresAt: Timestamp,
    payment: Type.Union([
      Type.Object({ bankPaymentId: Type.String(), status: Type.String() }, { additionalProperties: false }),
      Type.Null(),
    ]),
    failure: Type.Union([
      Type.Object({ code: Type.String(), message: Type.String() }, { additionalProperties: false }),
      Type.Null(),
    ]),
    clientSecret: Type.Optional(
      Type.String({ description: 'Only in the create response: lets a browser read this checkout' }),
    ),
    timeline: Type.Optional(
      Type.Array(CheckoutEventSchema, { description: 'Every step, oldest first (GET one checkout)' }),
    ),
  },
  { additionalProperties: false },
);
export type CheckoutView = Static<typeof CheckoutSchema>;

export const CheckoutIdParams = Type.Object(
  // No control characters: PostgreSQL text cannot hold U+0000, so such an id must not reach a query.
  { id: Type.String({ minLength: 1, maxLength: 64, pattern: PRINTABLE }) },
  { additionalProperties: false },
);

/** The query members of a cursor-paginated list (newest first): `limit` and `starting_after`, an id of `what`. */
export function pageQueryProperties(what: string) {
  return {
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, default: 20 })),
    starting_after: Type.Optional(
      Type.String({
        minLength: 1,
        maxLength: 64,
        pattern: PRINTABLE,
        description: `${what} id: the page after it`,
      }),
    ),
  };
}

export const ListCheckoutsQuery = Type.Object(
  {
    ...pageQueryProperties('A checkout'),
    status: Type.Optional(CheckoutStatusSchema),
  },
  { additionalProperties: false },
);

export const CheckoutListSchema = Type.Object(
  { data: Type.Array(CheckoutSchema), has_more: Type.Boolean() },
  { additionalProperties: false },
);

export const BankListSchema = Type.Object(
  {
    data: Type.Array(
      Type.Object({ id: Type.String(), name: Type.String() }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);

export const IdempotencyKeyHeader = Type.Object({
  'idempotency-key': Type.String({
    minLength: 1,
    maxLength: 255,
    pattern: '^[\\x21-\\x7E]+$',
    description:
      'Same key and body replays the first response (24 h); 1-255 visible ASCII characters, e.g. a UUID',
  }),
});

/** The request headers of a held read (DESIGN.md §7.2); both optional, read leniently. */
export const ConditionalReadHeaders = Type.Object({
  'if-none-match': Type.Optional(
    Type.String({
      description:
        'The ETag of the state you have (RFC 9110 §13.1.2): 304 Not Modified while the checkout is still in it',
    }),
  ),
  prefer: Type.Optional(
    Type.String({
      description:
        'With If-None-Match: `wait=N` (RFC 7240 §4.3, N ≤ 30 s, more is read as 30) holds the answer until the ' +
        'checkout changes (200) or N seconds pass (304)',
      examples: ['wait=30'],
    }),
  ),
});

/** The request of a stream: the clientSecret may come in the URL (EventSource sends no headers). */
export const StreamQuery = Type.Object(
  {
    client_secret: Type.Optional(
      Type.String({
        maxLength: 512,
        description:
          "The checkout's clientSecret, for a browser's EventSource (which cannot send an Authorization header). " +
          'Accepted on this route only, never a merchant key; never written to a log.',
      }),
    ),
  },
  { additionalProperties: false },
);

export const StreamHeaders = Type.Object({
  'last-event-id': Type.Optional(
    Type.String({
      maxLength: 128,
      description:
        'Sent by EventSource when it reconnects: the id of the last event it had. The stream then starts with the ' +
        'checkout only if it changed since.',
    }),
  ),
});

/** Response headers, for the OpenAPI document (@fastify/swagger reads a response schema's `headers`). */
export const readResponseHeaders = () => ({
  ETag: {
    type: 'string',
    description:
      'Weak entity tag of the state a reader sees (status, payment, failure, expiresAt, updatedAt; not the ' +
      'timeline): send it back as If-None-Match. A token poll does not change it.',
    examples: ['W/"q3V9cJmXo2LbT8wz1KpE4a"'],
  },
  'Retry-After': {
    type: 'integer',
    description:
      'While the checkout is not terminal: seconds until asking again (without a held read) is useful',
  },
  'Preference-Applied': {
    type: 'string',
    description: 'On a held read: the wait applied (RFC 7240 §3), e.g. wait=30',
  },
});

/**
 * `schema` with a response description and an example, for the OpenAPI document: @fastify/swagger
 * takes `x-response-description` as the response's description, and a schema's one example as the
 * media type's `example`.
 */
export function documented<T extends TSchema>(
  schema: T,
  description: string,
  example: unknown,
  headers?: Record<string, { type: 'string'; description: string }>,
): T {
  return {
    ...schema,
    'x-response-description': description,
    examples: [example],
    ...(headers ? { headers } : {}),
  };
}

const EXAMPLE_ID = 'chk_3kq9Xw2bV7mPz4TfLr8a';

/** A checkout as POST /v1/checkouts answers it: just created, with its clientSecret. */
export const CREATED_CHECKOUT_EXAMPLE: CheckoutView = {
  id: EXAMPLE_ID,
  status: 'pending',
  amount: 4990,
  currency: 'EUR',
  bankId: 'sandbox',
  reference: 'order-1234',
  description: '2 T-shirts',
  bindingMessage: 'PAY-K7P2X9',
  createdAt: '2025-06-02T09:14:03.512Z',
  updatedAt: '2025-06-02T09:14:03.512Z',
  // Until the bank acknowledges: the requested expiry (300 s) plus a minute to reach the bank.
  expiresAt: '2025-06-02T09:20:03.512Z',
  payment: null,
  failure: null,
  clientSecret: `${EXAMPLE_ID}_secret_Vq2m8RzK4cJtY7wXb1nHs5dLp0aFgE3u9QiNoT6kMyA`,
};

const { clientSecret: _, ...checkoutFields } = CREATED_CHECKOUT_EXAMPLE;

/** A checkout the customer approved and the bank paid, as GET /v1/checkouts/{id} answers it. */
export const SUCCEEDED_CHECKOUT_EXAMPLE: CheckoutView = {
  ...checkoutFields,
  status: 'succeeded',
  updatedAt: '2025-06-02T09:14:21.087Z',
  // From the acknowledgement on: the bank's own expiry (expires_in 300 s after it).
  expiresAt: '2025-06-02T09:19:03.904Z',
  payment: { bankPaymentId: 'pay_2f9c41d7-8b3e-4a6f-9d12-5e7a0c3b8f64', status: 'accepted' },
  timeline: [
    { at: '2025-06-02T09:14:03.512Z', step: 'created', outcome: 'pending', detail: { bankId: 'sandbox' } },
    {
      at: '2025-06-02T09:14:03.904Z',
      step: 'backchannel_authentication',
      outcome: 'accepted',
      detail: { expiresIn: 300, interval: null },
    },
    { at: '2025-06-02T09:14:09.011Z', step: 'token_poll', outcome: 'authorization_pending', detail: {} },
    { at: '2025-06-02T09:14:14.020Z', step: 'token_poll', outcome: 'tokens', detail: { idToken: 'valid' } },
    {
      at: '2025-06-02T09:14:21.087Z',
      step: 'payment',
      outcome: 'accepted',
      detail: { bankPaymentId: 'pay_2f9c41d7-8b3e-4a6f-9d12-5e7a0c3b8f64' },
    },
  ],
};

/** A checkout canceled before the customer approved it (POST /v1/checkouts/{id}/cancel). */
export const CANCELED_CHECKOUT_EXAMPLE: CheckoutView = {
  ...checkoutFields,
  status: 'canceled',
  updatedAt: '2025-06-02T09:15:40.226Z',
};

/** The body of a stream of a checkout that was awaiting approval when it began, as the OpenAPI document shows it. */
export const STREAM_EXAMPLE = (() => {
  const { timeline: _, ...succeeded } = SUCCEEDED_CHECKOUT_EXAMPLE;
  const awaiting = {
    ...succeeded,
    status: 'awaiting_approval',
    payment: null,
    updatedAt: '2025-06-02T09:14:03.904Z',
  };
  const authorized = { ...awaiting, status: 'authorized', updatedAt: '2025-06-02T09:14:14.020Z' };
  return [
    ['Yb2kP0xR7uWq4LmN8cTz1e', awaiting],
    ['d5HnV3sQ9oJf6KaE2gUy7w', authorized],
    ['q3V9cJmXo2LbT8wz1KpE4a', succeeded],
  ]
    .map(([id, checkout]) => `event: checkout\nid: ${id}\ndata: ${JSON.stringify(checkout)}\n\n`)
    .join('');
})();
