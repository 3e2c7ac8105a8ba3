/**
 * RFC 9457 problem details: every error leaves the API as application/problem+json with a stable
 * `code`, the request id, and `errors[]` for validation failures. 5xx details stay in the logs.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { isDatabaseUnavailable } from '../infra/database.ts';

export const PROBLEM_CONTENT_TYPE = 'application/problem+json';
const TYPE_BASE = 'https://bankpay.dev/problems/';

export interface FieldError {
  /** JSON pointer into the request part, e.g. `/body/amount`. */
  pointer: string;
  detail: string;
}

export class ProblemError extends Error {
  readonly status: number;
  readonly code: string;
  readonly title: string;
  readonly errors: FieldError[] | undefined;
  readonly retryAfterSeconds: number | undefined;

  constructor(
    status: number,
    code: string,
    title: string,
    detail?: string,
    extra: { errors?: FieldError[]; retryAfterSeconds?: number; cause?: unknown } = {},
  ) {
    super(detail ?? title, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.status = status;
    this.code = code;
    this.title = title;
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

/** Maps Fastify's own client errors (bad JSON, wrong content type, too large) to stable codes. */
const FASTIFY_CLIENT_ERRORS: Record<string, { status: number; code: string; title: string }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: { status: 400, code: 'malformed_json', title: 'Malformed JSON body' },
  FST_ERR_CTP_EMPTY_JSON_BODY: { status: 400, code: 'malformed_json', title: 'Empty JSON body' },
  FST_ERR_CTP_BODY_TOO_LARGE: { status: 413, code: 'body_too_large', title: 'Request body too large' },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    title: 'Unsupported media type',
  },
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: {
    status: 400,
    code: 'invalid_request',
    title: 'Invalid Content-Length',
  },
  FST_ERR_CTP_INVALID_CONTENT_TYPE: {
    status: 415,
    code: 'unsupported_media_type',
    title: 'Unsupported media type',
  },
};

/**
 * Errors the router raises before any route or hook runs (a malformed percent-encoding, a path
 * segment over the router's limit): Fastify's `frameworkErrors` option, else it answers plain JSON.
 */
const FASTIFY_ROUTING_ERRORS: Record<string, ProblemError> = {
  FST_ERR_BAD_URL: new ProblemError(
    400,
    'invalid_request',
    'Invalid URL',
    'The URL is not valid (malformed percent-encoding)',
  ),
  FST_ERR_MAX_PARAM_LENGTH: new ProblemError(
    414,
    'uri_too_long',
    'URI too long',
    'A path segment of the URL is longer than the API accepts',
  ),
};

/** The error handler: every error becomes problem+json; 5xx details stay in the logs. */
export function sendError(error: FastifyError, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  if (error instanceof ProblemError) {
    if (error.status === 503) request.log.warn({ code: error.code }, error.message);
    else if (error.status >= 500)
      request.log.error({ err: error.cause ?? error, code: error.code }, error.message);
    return sendProblem(request, reply, error);
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
              400,
              'idempotency_key_missing',
              'Idempotency-Key required',
              'Send an Idempotency-Key header (a unique value per operation, e.g. a UUID)',
            )
          : new ProblemError(
              400,
              'invalid_idempotency_key',
              'Invalid Idempotency-Key',
              'Idempotency-Key must be 1-255 visible ASCII characters',
            ),
      );
    }
    return sendProblem(
      request,
      reply,
      new ProblemError(400, 'invalid_request', 'Invalid request', 'The request does not match the schema', {
        errors,
      }),
    );
  }
  const routing = error.code ? FASTIFY_ROUTING_ERRORS[error.code] : undefined;
  if (routing) return sendProblem(request, reply, routing);
  const known = error.code ? FASTIFY_CLIENT_ERRORS[error.code] : undefined;
  if (known)
    return sendProblem(
      request,
      reply,
      new ProblemError(known.status, known.code, known.title, error.message),
    );
  if (isDatabaseUnavailable(error)) {
    request.log.warn({ err: error.message }, 'database unavailable');
    return sendProblem(
      request,
      reply,
      new ProblemError(
        503,
        'dependency_unavailable',
        'Service unavailable',
        'The database is unreachable; retry later',
        {
          retryAfterSeconds: 5,
        },
      ),
    );
  }
  if (error.statusCode === 429) {
    return sendProblem(
      request,
      reply,
      new ProblemError(429, 'rate_limited', 'Too many requests', error.message),
    );
  }
  if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
    return sendProblem(
      request,
      reply,
      new ProblemError(error.statusCode, 'invalid_request', 'Invalid request', error.message),
    );
  }
  request.log.error({ err: error }, 'unhandled error');
  return sendProblem(
    request,
    reply,
    new ProblemError(500, 'internal_error', 'Internal error', 'An unexpected error occurred'),
  );
}

export function registerProblemHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) =>
    sendProblem(
      request,
      reply,
      new ProblemError(
        404,
        'not_found',
        'Not found',
        `No route for ${request.method} ${request.url.split('?')[0]}`,
      ),
    ),
  );
  app.setErrorHandler(sendError);
}
