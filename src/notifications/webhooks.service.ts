/**
 * Webhook endpoints and the events API (DESIGN.md §7.3): what the routes call. Thin over the
 * repositories; the rules live here: the URL rules (webhook-address.policy.ts), secrets made and
 * sealed, the 24 h overlap of a rotation, and which endpoints a resend goes to.
 */
import { randomBytes } from 'node:crypto';
import type { KeyRing } from '../infra/crypto.ts';
import { webhookUrlRefusal } from '../integrations/webhook-address.policy.ts';
import type { EventsRepository, EventType, EventView } from './events.repository.ts';
import { EVENT_TYPES } from './events.repository.ts';
import type {
  AttemptView,
  DeliveryView,
  WebhookDeliveriesRepository,
} from './webhook-deliveries.repository.ts';
import {
  MAX_WEBHOOK_ENDPOINTS,
  type WebhookEndpointRow,
  type WebhookEndpointsRepository,
} from './webhook-endpoints.repository.ts';

export const WEBHOOK_ERROR_CODES = [
  /** The input breaks a rule the schema cannot express (the URL rules). */
  'invalid_request',
  'webhook_endpoint_not_found',
  /** MAX_WEBHOOK_ENDPOINTS exist already. */
  'webhook_endpoint_limit_reached',
  /** No such event, or older than the 30 days events are kept. */
  'event_not_found',
  /** A resend that no enabled endpoint would receive. */
  'no_webhook_endpoint',
] as const;
export type WebhookErrorCode = (typeof WEBHOOK_ERROR_CODES)[number];

/** A refusal of a webhook or events operation, with a stable code (answered by src/http/problem.ts). */
export class WebhookError extends Error {
  override name = 'WebhookError';
  readonly code: WebhookErrorCode;
  readonly fields: Array<{ pointer: string; detail: string }> | undefined;
  constructor(code: WebhookErrorCode, message: string, fields?: Array<{ pointer: string; detail: string }>) {
    super(message);
    this.code = code;
    this.fields = fields;
  }
}

/** How long the previous secret keeps signing after a rotation (DESIGN.md §7.3). */
export const ROTATION_OVERLAP_MS = 24 * 3600 * 1000;

export interface WebhookDeps {
  webhookEndpoints: WebhookEndpointsRepository;
  webhookDeliveries: WebhookDeliveriesRepository;
  events: EventsRepository;
  /** Seals the signing secrets at rest (TOKEN_ENCRYPTION_KEYS). */
  keys: KeyRing;
}

/** An endpoint as the API shows it: never its secret (that is in the create and rotate answers only). */
export interface WebhookEndpointView {
  id: string;
  url: string;
  events: EventType[];
  description: string | null;
  createdAt: string;
  /** `disabled` after every attempt failed for 3 days: `disabledReason` says why. */
  status: 'enabled' | 'disabled';
  disabledAt: string | null;
  disabledReason: string | null;
  /** Since when every attempt has failed; null while it answers. */
  failingSince: string | null;
  /** Until when the previous secret still signs beside the current one (after a rotation). */
  previousSecretExpiresAt: string | null;
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);

function toView(row: WebhookEndpointRow): WebhookEndpointView {
  const previousLive = row.previousSecretUntil && row.previousSecretUntil.getTime() > Date.now();
  return {
    id: row.id,
    url: row.url,
    events: row.events as EventType[],
    description: row.description,
    createdAt: row.createdAt.toISOString(),
    status: row.disabledAt ? 'disabled' : 'enabled',
    disabledAt: iso(row.disabledAt),
    disabledReason: row.disabledReason,
    failingSince: iso(row.failingSince),
    previousSecretExpiresAt: previousLive ? iso(row.previousSecretUntil) : null,
  };
}

/** `we_` and 120 random bits (20 characters, like checkout ids). */
export function newWebhookEndpointId(): string {
  return `we_${randomBytes(15).toString('base64url')}`;
}

/** A Standard Webhooks secret: `whsec_` and 32 random bytes in base64 (the specification asks 24 to 64). */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

function endpointNotFound(id: string): WebhookError {
  return new WebhookError('webhook_endpoint_not_found', `No webhook endpoint ${id}`);
}

/** POST /v1/webhook_endpoints: the endpoint and its secret (shown here and never again). */
export async function createWebhookEndpoint(
  deps: WebhookDeps,
  input: { url: string; events?: EventType[]; description?: string },
): Promise<WebhookEndpointView & { secret: string }> {
  // The URL as sent, and as stored (its normal form, what the sender checks again and calls: it
  // can be longer, `https://a.example?q` being `https://a.example/?q`).
  const refusal = webhookUrlRefusal(input.url) ?? webhookUrlRefusal(new URL(input.url).href);
  if (refusal) {
    throw new WebhookError('invalid_request', `The webhook URL ${refusal}`, [
      { pointer: '/body/url', detail: refusal },
    ]);
  }
  const id = newWebhookEndpointId();
  const secret = newWebhookSecret();
  // Kept in the order of EVENT_TYPES whatever the order given: the listing reads the same.
  const events = EVENT_TYPES.filter((t) => (input.events ?? EVENT_TYPES).includes(t));
  const row = await deps.webhookEndpoints.create({
    id,
    url: new URL(input.url).href,
    events,
    description: input.description ?? null,
    secretSealed: deps.keys.encrypt(secret, id),
  });
  if (!row) {
    throw new WebhookError(
      'webhook_endpoint_limit_reached',
      `An installation has at most ${MAX_WEBHOOK_ENDPOINTS} webhook endpoints; delete one first`,
    );
  }
  return { ...toView(row), secret };
}

export async function listWebhookEndpoints(deps: WebhookDeps): Promise<{ data: WebhookEndpointView[] }> {
  return { data: (await deps.webhookEndpoints.list()).map(toView) };
}

export async function getWebhookEndpoint(deps: WebhookDeps, id: string): Promise<WebhookEndpointView> {
  const row = await deps.webhookEndpoints.find(id);
  if (!row) throw endpointNotFound(id);
  return toView(row);
}

/** DELETE: nothing more is sent to it (its pending deliveries go too; past attempts stay with their events). */
export async function deleteWebhookEndpoint(
  deps: WebhookDeps,
  id: string,
): Promise<{ id: string; deleted: true }> {
  if (!(await deps.webhookEndpoints.delete(id))) throw endpointNotFound(id);
  return { id, deleted: true };
}

/** A new secret; the previous one keeps signing beside it for ROTATION_OVERLAP_MS. */
export async function rotateWebhookSecret(
  deps: WebhookDeps,
  id: string,
): Promise<WebhookEndpointView & { secret: string }> {
  const secret = newWebhookSecret();
  const row = await deps.webhookEndpoints.rotateSecret(
    id,
    deps.keys.encrypt(secret, id),
    ROTATION_OVERLAP_MS,
  );
  if (!row) throw endpointNotFound(id);
  return { ...toView(row), secret };
}

export async function listEvents(
  deps: WebhookDeps,
  query: { limit?: number; starting_after?: string; type?: EventType },
): Promise<{ data: EventView[]; has_more: boolean }> {
  if (query.starting_after && !(await deps.events.find(query.starting_after))) {
    throw new WebhookError('invalid_request', 'starting_after is not a known event id', [
      { pointer: '/querystring/starting_after', detail: 'unknown event id' },
    ]);
  }
  const page = await deps.events.list({
    limit: query.limit ?? 20,
    ...(query.starting_after ? { startingAfter: query.starting_after } : {}),
    ...(query.type ? { type: query.type } : {}),
  });
  return { data: page.data, has_more: page.hasMore };
}

export type EventDetailView = EventView & { deliveries: DeliveryView[]; attempts: AttemptView[] };

/** GET /v1/events/{id}: the event, where it is queued, and every attempt. */
export async function getEvent(deps: WebhookDeps, id: string): Promise<EventDetailView> {
  const event = await deps.events.find(id);
  if (!event) throw new WebhookError('event_not_found', `No event ${id} (events are kept 30 days)`);
  const [deliveries, attempts] = await Promise.all([
    deps.webhookDeliveries.deliveriesOf(id),
    deps.webhookDeliveries.attemptsOf(id),
  ]);
  return { ...event, deliveries, attempts };
}

/**
 * POST /v1/events/{id}/resend: the same event (the same `webhook-id`) queued again now, for every
 * enabled endpoint subscribed to its type, or for `endpointId` only.
 */
export async function resendEvent(
  deps: WebhookDeps,
  id: string,
  input: { endpointId?: string } = {},
): Promise<EventDetailView> {
  const event = await deps.events.find(id);
  if (!event) throw new WebhookError('event_not_found', `No event ${id} (events are kept 30 days)`);
  if (input.endpointId) {
    const endpoint = await deps.webhookEndpoints.find(input.endpointId);
    if (!endpoint) throw endpointNotFound(input.endpointId);
    if (endpoint.disabledAt || !endpoint.events.includes(event.type)) {
      throw new WebhookError(
        'no_webhook_endpoint',
        endpoint.disabledAt
          ? `Webhook endpoint ${endpoint.id} is disabled`
          : `Webhook endpoint ${endpoint.id} does not subscribe to ${event.type} events`,
      );
    }
  }
  const queued = await deps.webhookDeliveries.resend(id, input.endpointId);
  if (queued.length === 0) {
    throw new WebhookError(
      'no_webhook_endpoint',
      `No enabled webhook endpoint subscribes to ${event.type} events`,
    );
  }
  return getEvent(deps, id);
}
