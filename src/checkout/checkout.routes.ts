/**
 * /v1/checkouts and /v1/banks (DESIGN.md §2). Thin: validate, call the service, shape the HTTP
 * answer. Each route's `config` says which scope a merchant key needs (or that it is public);
 * src/http/auth.ts authenticates and checks it before the handler runs.
 */
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { bearerToken, merchantKeyOf, unauthorized } from '../http/auth.ts';
import { authenticationFailed, credentialIssued, credentialVerified } from '../http/auth-throttle.ts';
import {
  ifNoneMatchMatches,
  isIfNoneMatchAny,
  MAX_WAIT_SECONDS,
  preferredWaitSeconds,
  weakETag,
} from '../http/conditional.ts';
import { commentFrame, EVENT_STREAM_TYPE, EventStream, eventFrame } from '../http/event-stream.ts';
import { type LiveKind, LiveLimits } from '../http/live-limits.ts';
import { problemResponses } from '../http/problem.ts';
import { checkoutNotFound } from './checkout.errors.ts';
import {
  BankListSchema,
  CANCELED_CHECKOUT_EXAMPLE,
  CheckoutIdParams,
  CheckoutListSchema,
  CheckoutSchema,
  type CheckoutView,
  ConditionalReadHeaders,
  CREATED_CHECKOUT_EXAMPLE,
  CreateCheckoutBody,
  documented,
  IdempotencyKeyHeader,
  ListCheckoutsQuery,
  readResponseHeaders,
  STREAM_EXAMPLE,
  StreamHeaders,
  StreamQuery,
  SUCCEEDED_CHECKOUT_EXAMPLE,
} from './checkout.schemas.ts';
import {
  type CheckoutDeps,
  cancelCheckout,
  createCheckout,
  getCheckout,
  listCheckouts,
} from './checkout.service.ts';
import type { CheckoutState, CheckoutWatch } from './checkout.watch.ts';
import { clientSecretStillAccepted, looksLikeClientSecret, verifyClientSecret } from './client-secret.ts';

// 403 insufficient_scope is added by src/http/auth.ts to every route that declares a scope.
const problems = problemResponses;
/** Every route may be refused these (the rate limit; Postgres or the queue down). */
const ANY = ['rate_limited', 'dependency_unavailable'] as const;
/** What a read of one checkout, plain, held or streamed, may be refused with. */
const LIVE_READ_PROBLEMS = [
  'invalid_request',
  'unauthorized',
  'checkout_not_found',
  'uri_too_long',
  'rate_limited',
  'live_limit_reached',
  'dependency_unavailable',
] as const;

export interface CheckoutRouteOptions extends CheckoutDeps {
  /** The followers of checkouts in this process: held reads and streams (checkout.watch.ts). */
  watch: CheckoutWatch;
}

/** Who reads a checkout: the merchant (any checkout, with its timeline) or a browser with its clientSecret. */
type Reader = { kind: 'merchant'; apiKeyId: string } | { kind: 'browser' };

/** The longest a shutdown waits for open streams and held reads to answer (ms). */
const DRAIN_MS = 5_000;

/** The stream event of a state, written once however many streams follow the checkout. */
const frames = new WeakMap<CheckoutState, Buffer>();
function checkoutEvent(state: CheckoutState): Buffer {
  let frame = frames.get(state);
  if (frame === undefined) {
    frame = eventFrame({ event: 'checkout', id: state.version, data: serialized(state) });
    frames.set(state, frame);
  }
  return frame;
}

/** A state's checkout (no timeline) as JSON, made once per state. */
const bodies = new WeakMap<CheckoutState, string>();
function serialized(state: CheckoutState): string {
  let body = bodies.get(state);
  if (body === undefined) {
    body = JSON.stringify(state.view);
    bodies.set(state, body);
  }
  return body;
}

/** The body a reader gets: a browser (clientSecret) reads the checkout without the merchant's timeline. */
function forReader(reader: Reader, view: CheckoutView): CheckoutView {
  if (reader.kind === 'merchant') return view;
  const { timeline: _, ...forBrowser } = view;
  return forBrowser;
}

export const checkoutRoutes: FastifyPluginAsyncTypebox<CheckoutRouteOptions> = async (app, deps) => {
  const settings = deps.config.live;
  const limits = new LiveLimits({ maxStreams: settings.maxStreams, maxHeldReads: settings.maxHeldReads });

  /**
   * The merchant key (checked by src/http/auth.ts, scope included), or else the clientSecret of
   * checkout `id`, which opens its own checkout only: for any other it is "not found", not
   * "forbidden", and still a failed authentication (guesses are throttled like wrong keys).
   */
  function readerOf(request: FastifyRequest, id: string): Reader {
    if (request.merchantKey) return { kind: 'merchant', apiKeyId: request.merchantKey.id };
    const token = bearerToken(request) ?? '';
    if (!looksLikeClientSecret(token)) throw unauthorized('The API key is not valid');
    if (!verifyClientSecret(deps.clientSecretKeys, id, token)) {
      authenticationFailed(request);
      throw checkoutNotFound(id);
    }
    credentialVerified(request);
    return { kind: 'browser' };
  }

  /** Whether the client's connection closed already (its 'close' event has been emitted). */
  function isGone(reply: FastifyReply): boolean {
    return reply.raw.destroyed || reply.request.raw.destroyed || reply.request.raw.socket?.destroyed === true;
  }

  /** A slot for a held read or stream of `reader` on checkout `id` (429 `live_limit_reached` when none). */
  function acquireSlot(kind: LiveKind, reader: Reader, id: string): () => void {
    return reader.kind === 'merchant'
      ? limits.acquire(kind, `key:${reader.apiKeyId}`, settings.maxPerApiKey)
      : limits.acquire(kind, `checkout:${id}`, settings.maxPerClientSecret);
  }

  // Shutdown (server.ts, app.close): before the server stops taking connections and waits for the
  // open ones, streams end and held reads answer what is current, so nothing holds it up.
  let open = 0;
  let drained: (() => void) | undefined;
  function tracked(reply: FastifyReply): void {
    if (isGone(reply)) return;
    open += 1;
    reply.raw.once('close', () => {
      open -= 1;
      if (open === 0) drained?.();
    });
  }
  app.addHook('preClose', async () => {
    deps.watch.shutdown();
    if (open > 0) {
      await new Promise<void>((resolve) => {
        drained = resolve;
        setTimeout(resolve, DRAIN_MS).unref();
      });
    }
  });
  app.addHook('onClose', () => deps.watch.close());

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
        description:
          'While the checkout is not terminal, Retry-After says when asking again is useful. Every answer carries ' +
          'a weak ETag of the state a reader sees. With `If-None-Match: <that ETag>` the answer is 304 while ' +
          `nothing changed; add \`Prefer: wait=N\` (N ≤ ${MAX_WAIT_SECONDS}) and it is held until the checkout ` +
          'changes (200 with the new checkout and ETag) or N seconds pass (304), with `Preference-Applied: wait=N`. ' +
          'A token poll changes neither the ETag nor updatedAt.',
        params: CheckoutIdParams,
        headers: ConditionalReadHeaders,
        response: {
          200: {
            ...documented(
              CheckoutSchema,
              'The checkout; with a merchant key also its `timeline` (a clientSecret reads it without). While it is not terminal, `Retry-After` says when to ask again.',
              SUCCEEDED_CHECKOUT_EXAMPLE,
            ),
            headers: readResponseHeaders(),
          },
          304: {
            type: 'null',
            description:
              'Not Modified: the checkout is still in the state of If-None-Match (at once, or after the wait of a held read)',
            headers: readResponseHeaders(),
          },
          ...problems(LIVE_READ_PROBLEMS),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const reader = readerOf(request, id);
      const read = await getCheckout(deps, id);
      // A day after the checkout ended its clientSecret no longer reads it (the merchant key still does).
      if (reader.kind === 'browser' && !clientSecretStillAccepted(read.view, Date.now()))
        throw checkoutNotFound(id);
      const condition = request.headers['if-none-match'];
      // RFC 9110 §13.1.2: a GET whose If-None-Match matches (weak comparison) answers 304.
      if (!ifNoneMatchMatches(condition, read.version)) {
        return answer(reply, reader, read.view, read.version, read.retryAfter);
      }
      const wait = preferredWaitSeconds(request.headers.prefer);
      // `*` matches every state: there is no change to wait for.
      if (!wait || isIfNoneMatchAny(condition)) return notModified(reply, read.version, read.retryAfter);

      const release = acquireSlot('held_read', reader, id);
      tracked(reply);
      try {
        // The client may leave before the answer: stop waiting for it then.
        const state = await deps.watch.waitForChange(id, read.version, wait * 1000, (abandon) => {
          // Gone already (while the checkout was read): no 'close' will come to wait for.
          if (isGone(reply)) abandon();
          else reply.raw.once('close', abandon);
        });
        // RFC 7240 §3: the preference was honoured (the read was held, clamped to the maximum).
        reply.header('Preference-Applied', `wait=${wait}`);
        if (!state || state.version === read.version) {
          return notModified(reply, read.version, state?.retryAfter() ?? read.retryAfter);
        }
        // However many browsers hold a read of this checkout, its body is serialized once.
        if (reader.kind === 'browser') {
          answer(reply, reader, state.view, state.version, state.retryAfter());
          return sendJson(reply, serialized(state));
        }
        // The merchant's answer carries the timeline: read it as the plain read does.
        const fresh = await getCheckout(deps, id);
        return answer(reply, reader, fresh.view, fresh.version, fresh.retryAfter);
      } finally {
        release();
      }
    },
  );

  app.get(
    '/v1/checkouts/:id/stream',
    {
      config: { scope: 'checkouts:read', clientSecret: true, clientSecretInQuery: true },
      // A HEAD would answer headers alone and leave the stream behind it following the checkout.
      exposeHeadRoute: false,
      schema: {
        operationId: 'streamCheckout',
        tags: ['checkouts'],
        summary: 'Follow a checkout live (Server-Sent Events)',
        description:
          'A `text/event-stream`: first a `checkout` event with the checkout as it is (without timeline), then one ' +
          'per change; the event of a terminal status is the last and the stream ends. Each event id is the ' +
          "checkout's ETag: an EventSource that reconnects sends it as Last-Event-ID and gets the checkout again only " +
          'if it changed (204 when it had the terminal one: EventSource stops). A comment line keeps an idle ' +
          "stream open at least every 15 s. A browser's EventSource cannot send headers: the clientSecret may come " +
          'as `?client_secret=` here (only here, never a merchant key).',
        params: CheckoutIdParams,
        querystring: StreamQuery,
        headers: StreamHeaders,
        response: {
          200: {
            description:
              'The stream of `checkout` events (WHATWG HTML server-sent events), each `data` a checkout without timeline',
            content: { 'text/event-stream': { schema: { type: 'string' }, example: STREAM_EXAMPLE } },
          },
          204: {
            type: 'null',
            description:
              'No Content: Last-Event-ID is the terminal state the checkout is in; nothing more will come (an EventSource stops reconnecting)',
          },
          ...problems(LIVE_READ_PROBLEMS),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const reader = readerOf(request, id);
      const release = acquireSlot('stream', reader, id);
      // Events that come before the stream exists (none should: the first read resolves first) wait here.
      let stream: EventStream | undefined;
      const early: CheckoutState[] = [];
      const send = (state: CheckoutState) => {
        if (!stream) {
          early.push(state);
          return;
        }
        stream.write(checkoutEvent(state));
        if (state.terminal) stream.end();
      };
      let following: Awaited<ReturnType<CheckoutWatch['follow']>>;
      try {
        following = await deps.watch.follow(id, { changed: send, closing: () => stream?.end() });
      } catch (error) {
        release();
        throw error;
      }
      const current = following.current;
      const refuse = () => {
        following.stop();
        release();
      };
      if (!current) {
        refuse();
        throw checkoutNotFound(id);
      }
      if (reader.kind === 'browser' && !clientSecretStillAccepted(current.view, Date.now())) {
        refuse();
        throw checkoutNotFound(id);
      }
      const lastEventId = request.headers['last-event-id'];
      if (current.terminal && lastEventId === current.version) {
        // WHATWG HTML §9.2.3: a 204 makes an EventSource stop reconnecting; it has the last event.
        refuse();
        return noContent(reply);
      }

      tracked(reply);
      stream = new EventStream({ heartbeatMs: settings.heartbeatMs });
      const opened = stream;
      opened.onClose(refuse);
      // However the response ends (the client left, an error), the stream stops following.
      reply.raw.once('close', () => opened.body.destroy());
      // Resumed (Last-Event-ID) from the state it is in: nothing to repeat, a comment opens the response.
      if (lastEventId === current.version) opened.write(commentFrame());
      else send(current);
      for (const state of early.splice(0)) send(state);
      if (deps.watch.closing) opened.end();
      // Proxies that buffer answers (nginx) would hold the events back.
      reply.header('X-Accel-Buffering', 'no');
      return sendStream(reply, opened);
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

/** A 200 with the checkout, its ETag and Retry-After. */
function answer(
  reply: FastifyReply,
  reader: Reader,
  view: CheckoutView,
  version: string,
  retryAfter: number | undefined,
): CheckoutView {
  reply.header('ETag', weakETag(version));
  if (retryAfter !== undefined) reply.header('Retry-After', String(retryAfter));
  return forReader(reader, view);
}

/** A 304 (RFC 9110 §15.4.5: with the ETag and the other headers a 200 would have had). */
function notModified(reply: FastifyReply, version: string, retryAfter: number | undefined): FastifyReply {
  reply.header('ETag', weakETag(version));
  if (retryAfter !== undefined) reply.header('Retry-After', String(retryAfter));
  return reply.code(304).send();
}

/** 204, no body. */
function noContent(reply: FastifyReply): FastifyReply {
  return reply.code(204).send();
}

/** The stream's body through Fastify's own stream support (its onSend hooks and access log line run). */
function sendStream(reply: FastifyReply, stream: EventStream): FastifyReply {
  return reply.type(EVENT_STREAM_TYPE).send(stream.body);
}

/** A body already serialized (`serialized`), sent as is. */
function sendJson(reply: FastifyReply, json: string): FastifyReply {
  return reply.type('application/json; charset=utf-8').send(json);
}
