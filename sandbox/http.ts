/**
 * Small HTTP helpers shared by the sandbox's listeners (no framework: the sandbox must stay a
 * dependency-free dev tool beside oidc-provider).
 */
import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/** The same ceiling oidc-provider applies to form bodies (56 KiB). */
export const BODY_LIMIT = 56 * 1024;

export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

export async function readBody(req: IncomingMessage, limit = BODY_LIMIT): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of req) {
    const buf = chunk as Buffer;
    received += buf.length;
    if (received > limit) throw new HttpError(413, 'request_too_large', 'request body too large');
    chunks.push(buf);
  }
  return Buffer.concat(chunks, received);
}

export async function readJson(req: IncomingMessage): Promise<unknown> {
  const body = await readBody(req);
  if (body.length === 0) return undefined;
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    throw new HttpError(400, 'invalid_json', 'request body is not valid JSON');
  }
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(payload);
}

/** A scripted raw answer (faults.ts `answer`), whatever it holds. */
export function sendScripted(
  res: ServerResponse,
  answer: { status: number; contentType: string; body: string; retryAfter?: string },
): void {
  if (res.headersSent || res.destroyed) return;
  const body = answer.status === 204 || answer.status === 304 ? '' : answer.body;
  res.writeHead(answer.status, {
    'content-type': answer.contentType,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...(answer.retryAfter === undefined ? {} : { 'retry-after': answer.retryAfter }),
  });
  res.end(body);
}

export function sendError(res: ServerResponse, error: unknown): void {
  if (error instanceof HttpError) {
    sendJson(res, error.status, { error: error.code, error_description: error.message }, error.headers);
    return;
  }
  console.error('sandbox bank: unexpected error', error);
  sendJson(res, 500, { error: 'server_error', error_description: 'unexpected error in the sandbox bank' });
}

/**
 * Rebuilds a readable request from a body we already consumed, so that a layer in front of
 * oidc-provider can look at the form parameters (to find the customer a request belongs to)
 * and still hand an untouched stream to the provider, which insists on parsing bodies itself.
 */
export function replayRequest(req: IncomingMessage, body: Buffer): IncomingMessage {
  const replay = new IncomingMessage(req.socket as Socket);
  replay.method = req.method;
  replay.url = req.url;
  replay.httpVersion = req.httpVersion;
  replay.httpVersionMajor = req.httpVersionMajor;
  replay.httpVersionMinor = req.httpVersionMinor;
  replay.headers = { ...req.headers, 'content-length': String(body.length) };
  replay.rawHeaders = req.rawHeaders;
  // Without this, IncomingMessage#_destroy (auto-destroy after 'end') takes the message for an
  // aborted one and destroys the shared socket.
  replay.complete = true;
  replay.push(body);
  replay.push(null);
  return replay;
}

/** Abandons a request without any answer: what a crashed or partitioned bank looks like on the wire. */
export function dropConnection(req: IncomingMessage, res: ServerResponse): void {
  res.socket?.destroy();
  req.socket.destroy();
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export function pathSegments(pathname: string): string[] {
  return pathname.split('/').filter(Boolean).map(decodeURIComponent);
}
