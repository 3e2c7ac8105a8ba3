/**
 * The repositories of every module, made once per process over its one PostgreSQL pool (Prisma
 * runs on the same node-postgres pool as the hot statements): what services and jobs are handed
 * instead of database handles.
 */
import { type CheckoutRepository, createCheckoutRepository } from './checkout/checkout.repository.ts';
import {
  createIdempotencyRepository,
  type IdempotencyRepository,
} from './checkout/idempotency.repository.ts';
import {
  createPollScheduleRepository,
  type PollScheduleRepository,
} from './checkout/poll-schedule.repository.ts';
import type { Database, SqlPool } from './infra/database.ts';
import { createEventsRepository, type EventsRepository } from './notifications/events.repository.ts';
import {
  createWebhookDeliveriesRepository,
  type WebhookDeliveriesRepository,
} from './notifications/webhook-deliveries.repository.ts';
import {
  createWebhookEndpointsRepository,
  type WebhookEndpointsRepository,
} from './notifications/webhook-endpoints.repository.ts';

export interface Repositories {
  checkouts: CheckoutRepository;
  idempotency: IdempotencyRepository;
  pollSchedule: PollScheduleRepository;
  events: EventsRepository;
  webhookEndpoints: WebhookEndpointsRepository;
  webhookDeliveries: WebhookDeliveriesRepository;
}

export function createRepositories(db: Database, sql: SqlPool): Repositories {
  return {
    checkouts: createCheckoutRepository(db, sql),
    idempotency: createIdempotencyRepository(db),
    pollSchedule: createPollScheduleRepository(sql),
    events: createEventsRepository(db),
    webhookEndpoints: createWebhookEndpointsRepository(db),
    webhookDeliveries: createWebhookDeliveriesRepository(sql),
  };
}
