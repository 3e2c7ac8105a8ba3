/**
 * Request ids are ours: a fresh UUID for every request, in the `x-request-id` answer header, the
 * problem `requestId` and every log line (`reqId`). A client's own `X-Request-Id` is not trusted
 * to be unique or short (one could reuse another request's id to confuse an investigation, or fill
 * the logs); it is logged beside ours as `clientRequestId` when it is 1-128 visible ASCII
 * characters, and dropped otherwise.
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { FastifyServerOptions } from 'fastify';

export const generateRequestId = (): string => randomUUID();

const CLIENT_REQUEST_ID = /^[\x21-\x7e]{1,128}$/;

/** The client's X-Request-Id when it is fit to log, else undefined. */
export function clientRequestId(request: Pick<IncomingMessage, 'headers'>): string | undefined {
  const value = request.headers['x-request-id'];
  return typeof value === 'string' && CLIENT_REQUEST_ID.test(value) ? value : undefined;
}

/** Every log line of a request carries the client's id next to ours, when it sent a fit one. */
export const requestLogger: NonNullable<FastifyServerOptions['childLoggerFactory']> = (
  logger,
  bindings,
  options,
  rawRequest,
) => {
  const clientId = clientRequestId(rawRequest);
  return logger.child(clientId ? { ...bindings, clientRequestId: clientId } : bindings, options);
};
