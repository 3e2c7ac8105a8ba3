/**
 * The merchant's events (DESIGN.md §7.3), read side. The rows are written by the database itself:
 * a trigger on `checkouts` (migration event_outbox) inserts one in the transaction of every status
 * change a merchant is told of, so an event exists if and only if its change committed. This is
 * the only code that reads the `events` table.
 */

import type { CheckoutView } from '../checkout/checkout.schemas.ts';
import type { Database } from '../infra/database.ts';
import { newestFirst, olderThan } from '../infra/pagination.ts';

/** The event types of DESIGN.md §7.3. */
export const EVENT_TYPES = [
  'checkout.awaiting_approval',
  'checkout.succeeded',
  'checkout.declined',
  'checkout.expired',
  'checkout.failed',
  'checkout.canceled',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/** An event as the API and the webhook body show it: `{ id, type, createdAt, data: { object } }`. */
export interface EventView {
  id: string;
  type: EventType;
  createdAt: string;
  /** The checkout as GET /v1/checkouts/{id} showed it after the change (without its timeline). */
  data: { object: CheckoutView };
}

export interface EventsRepository {
  /**
   * Newest first (by creation, then id), at most `limit` (1-100), after the event `startingAfter`
   * when given (a cursor from the previous page), only of `type` when given. `hasMore` says
   * whether another page follows.
   */
  list(o: {
    limit: number;
    startingAfter?: string;
    type?: EventType;
  }): Promise<{ data: EventView[]; hasMore: boolean }>;
  /** One event, or null. */
  find(id: string): Promise<EventView | null>;
  /** Every event of one checkout, oldest first. */
  forCheckout(checkoutId: string): Promise<EventView[]>;
}

type EventRow = { id: string; type: string; createdAt: Date; data: unknown };

function toEventView(row: EventRow): EventView {
  return {
    id: row.id,
    type: row.type as EventType,
    createdAt: row.createdAt.toISOString(),
    data: { object: row.data as CheckoutView },
  };
}

export function createEventsRepository(db: Database): EventsRepository {
  return {
    async list({ limit, startingAfter, type }) {
      const cursor = startingAfter ? await db.event.findUnique({ where: { id: startingAfter } }) : null;
      const rows = await db.event.findMany({
        where: { ...(type ? { type } : {}), ...olderThan(cursor) },
        orderBy: newestFirst(),
        take: limit + 1,
      });
      return { data: rows.slice(0, limit).map(toEventView), hasMore: rows.length > limit };
    },
    async find(id) {
      const row = await db.event.findUnique({ where: { id } });
      return row ? toEventView(row) : null;
    },
    async forCheckout(checkoutId) {
      const rows = await db.event.findMany({
        where: { checkoutId },
        orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
      });
      return rows.map(toEventView);
    },
  };
}
