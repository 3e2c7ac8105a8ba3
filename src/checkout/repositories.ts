/**
 * The repositories, made once per process over its one PostgreSQL pool (Prisma runs on the same
 * node-postgres pool as the hot statements): what services and jobs are handed instead of
 * database handles.
 */
import type { Database, SqlPool } from '../infra/database.ts';
import { type CheckoutRepository, createCheckoutRepository } from './checkout.repository.ts';
import { createIdempotencyRepository, type IdempotencyRepository } from './idempotency.repository.ts';
import { createPollScheduleRepository, type PollScheduleRepository } from './poll-schedule.repository.ts';

export interface Repositories {
  checkouts: CheckoutRepository;
  idempotency: IdempotencyRepository;
  pollSchedule: PollScheduleRepository;
}

export function createRepositories(db: Database, sql: SqlPool): Repositories {
  return {
    checkouts: createCheckoutRepository(db, sql),
    idempotency: createIdempotencyRepository(db),
    pollSchedule: createPollScheduleRepository(sql),
  };
}
