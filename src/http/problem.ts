/**
 * RFC 9457 problem details: every error leaves the API as application/problem+json with a stable
 * `code`, the request id, and `errors[]` for validation failures. 5xx details stay in the logs.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { type Static, type TSchema, Type } from 'typebox';
import { isDatabaseUnavailable } from '../infra/database.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
const TYPE_BASE = 'https://bankpay.dev/problems/';

export interface FieldError {
  /** JSON pointer into the request part, e.g. `/body/amount`. */
  pointer: string;
  detail: string;
}

/**
 * Every problem the API answers, by its stable `code`: the HTTP status and the title (RFC 9457
 * §3.1.3: the same for every occurrence; `detail` says what happened this time). The `type` URI
 * is TYPE_BASE + code.
 */
export const PROBLEMS = {
  invalid_request: { status: 400, title: 'Invalid request' },
  malformed_json: { status: 400, title: 'Malformed JSON body' },
  idempotency_key_missing: { status: 400, title: 'Idempotency-Key required' },
  invalid_idempotency_key: { status: 400, title: 'Invalid Idempotency-Key' },
  unauthorized: { status: 401, title: 'Unauthorized' },
  invalid_notification: { status: 401, title: 'CIBA notification refused' },
  insufficient_scope: { status: 403, title: 'Insufficient scope' },
  not_found: { status: 404, title: 'Not found' },
  checkout_not_found: { status: 404, title: 'Checkout not found' },
  webhook_endpoint_not_found: { status: 404, title: 'Webhook endpoint not found' },
  event_not_found: { status: 404, title: 'Event not found' },
  checkout_not_cancelable: { status: 409, title: 'Checkout cannot be canceled' },
  webhook_endpoint_limit_reached: { status: 409, title: 'Too many webhook endpoints' },
  no_webhook_endpoint: { status: 409, title: 'No webhook endpoint to send to' },
  idempotency_key_in_use: { status: 409, title: 'Request in progress' },
  body_too_large: { status: 413, title: 'Request body too large' },
  uri_too_long: { status: 414, title: 'URI too long' },
  unsupported_media_type: { status: 415, title: 'Unsupported media type' },
  idempotency_key_reused: { status: 422, title: 'Idempotency-Key reused' },
  unknown_bank: { status: 422, title: 'Unknown bank' },
  rate_limited: { status: 429, title: 'Too many requests' },
  live_limit_reached: { status: 429, title: 'Too many open streams or held reads' },
  internal_error: { status: 500, title: 'Internal error' },
  dependency_unavailable: { status: 503, title: 'Service unavailable' },
} as const satisfies Record<string, { status: number; title: string }>;

export type ProblemCode = keyof typeof PROBLEMS;

/**
 * An error the domain throws with a stable code that is also a problem code (checkout.errors.ts):
 * answered as that problem. The app names the classes (`registerProblemHandlers`), so that this
 * layer needs no import of the domain, and the compiler checks each class's codes against PROBLEMS.
 */
export interface DomainError extends Error {
  code: ProblemCode;
  fields?: FieldError[] | undefined;
  retryAfterSeconds?: number | undefined;
}
export type DomainErrorClass = abstract new (...args: never[]) => DomainError;

function asDomainError(error: unknown, kinds: readonly DomainErrorClass[]): DomainError | undefined {
  for (const kind of kinds) if (error instanceof kind) return error;
  return undefined;
}

export class ProblemError extends Error {
  readonly status: number;
  readonly code: ProblemCode;
  readonly title: string;
  readonly errors: FieldError[] | undefined;
  readonly retryAfterSeconds: number | undefined;

  /**
   * `code` gives the status and the title (PROBLEMS); `status` overrides the status only where
   * another layer already chose a 4xx this list has no code for (Fastify's own client errors).
   */
  constructor(
    code: ProblemCode,
    detail?: string,
    extra: { errors?: FieldError[]; retryAfterSeconds?: number; cause?: unknown; status?: number } = {},
  ) {
    const known = PROBLEMS[code];
    super(detail ?? known.title, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.status = extra.status ?? known.status;
    this.code = code;
    this.title = known.title;
    this.errors = extra.errors;
    this.retryAfterSeconds = extra.retryAfterSeconds;
  }
}

export const ProblemSchema = Type.Object(
  {
    type: Type.String({ format: 'uri' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code' }),
    requestId: Type.String(),
    errors: Type.Optional(
      Type.Array(
        Type.Object({ pointer: Type.String(), detail: Type.String() }, { additionalProperties: false }),
      ),
    ),
  },
  { $id: 'Problem', additionalProperties: false, description: 'RFC 9457 problem details' },
);

/** What each problem says in the OpenAPI document's examples: a `detail` as the API words it. */
const EXAMPLE_DETAILS: Record<ProblemCode, { detail: string; errors?: FieldError[] }> = {
  invalid_request: {
    detail: 'The request does not match the schema',
    errors: [{ pointer: '/body/amount', detail: 'must be >= 1' }],
  },
  malformed_json: { detail: "Body is not valid JSON but content-type is set to 'application/json'" },
  idempotency_key_missing: {
    detail: 'Send an Idempotency-Key header (a unique value per operation, e.g. a UUID)',
  },
  invalid_idempotency_key: { detail: 'Idempotency-Key must be 1-255 visible ASCII characters' },
  unauthorized: { detail: 'The API key is not valid' },
  invalid_notification: {
    detail: 'No checkout awaiting approval at this bank has this auth_req_id and client_notification_token',
  },
  insufficient_scope: { detail: 'This API key does not have the "checkouts:read" scope' },
  not_found: { detail: 'No route for GET /v1/payments' },
  checkout_not_found: { detail: 'No checkout chk_3kq9Xw2bV7mPz4TfLr8a' },
  webhook_endpoint_not_found: { detail: 'No webhook endpoint we_4kQ9x2LmZr7TfWb3Hc8pNv' },
  event_not_found: { detail: 'No event evt_7c1f0a9e3b5d4e6f8a2b1c0d9e8f7a6b (events are kept 30 days)' },
  webhook_endpoint_limit_reached: {
    detail: 'An installation has at most 16 webhook endpoints; delete one first',
  },
  no_webhook_endpoint: {
    detail: 'No enabled webhook endpoint subscribes to checkout.succeeded events',
  },
  checkout_not_cancelable: {
    detail: 'The checkout is succeeded; only pending or awaiting_approval checkouts can be canceled',
  },
  idempotency_key_in_use: {
    detail: 'A request with this Idempotency-Key is still being processed; retry later',
  },
  body_too_large: { detail: 'Request body is too large' },
  uri_too_long: { detail: 'A path segment of the URL is longer than the API accepts' },
  unsupported_media_type: { detail: 'Unsupported Media Type: text/plain' },
  idempotency_key_reused: { detail: 'This Idempotency-Key was used with a different request body' },
  unknown_bank: { detail: 'No bank "mybank" is configured (GET /v1/banks lists them)' },
  rate_limited: {
    detail: 'More than 100 requests in 10 s with this credential; retry in 7 seconds',
  },
  live_limit_reached: {
    detail: 'This credential has 4 open streams open, its limit; close one or retry in 5 s',
  },
  internal_error: { detail: 'An unexpected error occurred' },
  dependency_unavailable: { detail: 'The database is unreachable; retry later' },
};

/** A problem body as the API sends it, for the OpenAPI document (`detail` may be reworded). */
export function problemExample(code: ProblemCode, detail?: string): Static<typeof ProblemSchema> {
  const { status, title } = PROBLEMS[code];
  const example = EXAMPLE_DETAILS[code];
  return {
    type: `${TYPE_BASE}${code}`,
    title,
    status,
    detail: detail ?? example.detail,
    code,
    requestId: '0b5e4f3c-6a2d-4f8e-9c1a-7d2b8e4f6a90',
    ...(example.errors ? { errors: example.errors } : {}),
  };
}

/** One documented error response: its description and the problem+json media type. */
export interface ProblemResponse {
  description: string;
  content: Record<string, { schema: TSchema; examples: Record<string, { summary: string; value: unknown }> }>;
}

/**
 * The documented error responses of a route, from the problem codes it can answer: one response
 * per status, its description naming the codes, an example of each (Swagger UI lists them by
 * code). `details` rewords an example's `detail` for this route.
 */
export function problemResponses(
  codes: readonly ProblemCode[],
  details: Partial<Record<ProblemCode, string>> = {},
): Record<number, ProblemResponse> {
  const byStatus = new Map<number, ProblemCode[]>();
  for (const code of codes) {
    const status = PROBLEMS[code].status;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const responses: Record<number, ProblemResponse> = {};
  for (const [status, sameStatus] of byStatus) {
    const named = sameStatus.map((c) => `\`${c}\` (${PROBLEMS[c].title})`).join(', ');
    // Fastify picks this serializer by the reply's media type, which sendProblem sets; the
    // document says the same (RFC 9457 §3: application/problem+json).
    responses[status] = {
      description: `Problem details (RFC 9457), code ${named}`,
      content: {
        [PROBLEM_CONTENT_TYPE]: {
          schema: Type.Object(ProblemSchema.properties, {
            additionalProperties: false,
            description: 'RFC 9457 problem details',
          }),
          examples: Object.fromEntries(
            sameStatus.map((c) => [c, { summary: PROBLEMS[c].title, value: problemExample(c, details[c]) }]),
          ),
        },
      },
    };
  }
  return responses;
}

export function sendProblem(
  request: FastifyRequest,
  reply: FastifyReply,
  problem: ProblemError,
): FastifyReply {
  if (problem.retryAfterSeconds !== undefined) reply.header('Retry-After', String(problem.retryAfterSeconds));
  // Also set by an onSend hook, which answers to requests the router refused never reach.
  reply.header('x-request-id', request.id);
  return reply
    .code(problem.status)
    .type(PROBLEM_CONTENT_TYPE)
    .send({
      type: `${TYPE_BASE}${problem.code}`,
      title: problem.title,
      status: problem.status,
      detail: problem.message,
      code: problem.code,
      requestId: request.id,
      ...(problem.errors ? { errors: problem.errors } : {}),
    });
}

interface ValidationIssue {
  instancePath?: string;
  message?: string;
  keyword?: string;
  params?: Record<string, unknown>;
}

function toFieldErrors(error: FastifyError): FieldError[] {
  const context = (error as FastifyError & { validationContext?: string }).validationContext ?? 'body';
  const issues = (error.validation ?? []) as ValidationIssue[];
  return issues
    .filter((v) => v.keyword !== 'boolean')
    .map((v) => {
      let pointer = `/${context}${v.instancePath ?? ''}`;
      let detail = v.message ?? 'is invalid';
      if (v.keyword === 'additionalProperties') {
        const extra =
          v.params?.additionalProperty ?? (v.params?.additionalProperties as unknown[] | undefined)?.[0];
        if (extra !== undefined) pointer = `${pointer}/${String(extra)}`;
        detail = 'unknown field';
      }
      if (v.keyword === 'required') {
        const missing =
          v.params?.missingProperty ?? (v.params?.requiredProperties as unknown[] | undefined)?.[0];
        if (missing !== undefined) pointer = `${pointer}/${String(missing)}`;
        detail = 'is required';
      }
      return { pointer, detail };
    });
}

/** Fastify's own client errors (bad JSON, wrong content type, too large) by their stable codes. */
const FASTIFY_CLIENT_ERRORS: Record<string, ProblemCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'malformed_json',
  FST_ERR_CTP_BODY_TOO_LARGE: 'body_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'invalid_request',
  FST_ERR_CTP_INVALID_CONTENT_TYPE: 'unsupported_media_type',
};

/**
 * Errors the router raises before any route or hook runs (a malformed percent-encoding, a path
 * segment over the router's limit): Fastify's `frameworkErrors` option, else it answers plain JSON.
 */
const FASTIFY_ROUTING_ERRORS: Record<string, ProblemError> = {
  FST_ERR_BAD_URL: new ProblemError('invalid_request', 'The URL is not valid (malformed percent-encoding)'),
  FST_ERR_MAX_PARAM_LENGTH: new ProblemError(
    'uri_too_long',
    'A path segment of the URL is longer than the API accepts',
  ),
};

/** The error handler: every error becomes problem+json; 5xx details stay in the logs. */
export function sendError(
  error: FastifyError,
  request: FastifyRequest,
  reply: FastifyReply,
  domainErrors: readonly DomainErrorClass[] = [],
): FastifyReply {
  if (error instanceof ProblemError) {
    if (error.status === 503) request.log.warn({ code: error.code }, error.message);
    else if (error.status >= 500)
      request.log.error({ err: error.cause ?? error, code: error.code }, error.message);
    return sendProblem(request, reply, error);
  }
  const domain = asDomainError(error, domainErrors);
  if (domain) {
    return sendProblem(
      request,
      reply,
      new ProblemError(domain.code, domain.message, {
        ...(domain.fields ? { errors: domain.fields } : {}),
        ...(domain.retryAfterSeconds !== undefined ? { retryAfterSeconds: domain.retryAfterSeconds } : {}),
      }),
    );
  }
  if (error.validation) {
    const errors = toFieldErrors(error);
    // The Idempotency-Key header has codes of its own (DESIGN.md §2), whatever else is wrong.
    const keyError = errors.find((e) => e.pointer === '/headers/idempotency-key');
    if (keyError) {
      return sendProblem(
        request,
        reply,
        keyError.detail === 'is required'
          ? new ProblemError(
              'idempotency_key_missing',
              'Send an Idempotency-Key header (a unique value per operation, e.g. a UUID)',
            )
          : new ProblemError(
              'invalid_idempotency_key',
              'Idempotency-Key must be 1-255 visible ASCII characters',
            ),
      );
    }
    return sendProblem(
      request,
      reply,
      new ProblemError('invalid_request', 'The request does not match the schema', { errors }),
    );
  }
  const routing = error.code ? FASTIFY_ROUTING_ERRORS[error.code] : undefined;
  if (routing) return sendProblem(request, reply, routing);
  const known = error.code ? FASTIFY_CLIENT_ERRORS[error.code] : undefined;
  if (known) return sendProblem(request, reply, new ProblemError(known, error.message));
  if (isDatabaseUnavailable(error)) {
    request.log.warn({ err: error.message }, 'database unavailable');
    return sendProblem(
      request,
      reply,
      new ProblemError('dependency_unavailable', 'The database is unreachable; retry later', {
        retryAfterSeconds: 5,
      }),
    );
  }
  if (error.statusCode === 429) {
    return sendProblem(request, reply, new ProblemError('rate_limited', error.message));
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return sendProblem(
      request,
      reply,
      new ProblemError('invalid_request', error.message, { status: error.statusCode }),
    );
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(request, reply, new ProblemError('internal_error', 'An unexpected error occurred'));
}

/** Not-found and error handlers for `app`; errors of `domainErrors` are answered by their code. */
export function registerProblemHandlers(
  app: FastifyInstance,
  domainErrors: readonly DomainErrorClass[],
): void {
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      new ProblemError('not_found', `No route for ${request.method} ${request.url.split('?')[0]}`),
    ),
  );
  app.setErrorHandler((error: FastifyError, request, reply) =>
    sendError(error, request, reply, domainErrors),
  );
}
