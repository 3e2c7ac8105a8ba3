/**
 * Checkout persistence. The one way a status changes is `transition`: an UPDATE that only matches
 * while the row is still in one of the expected statuses (compare-and-set, house convention 4),
 * with the event that explains it written in the same transaction.
 */
import type { Prisma } from '../generated/prisma/client.ts';
import type { Database } from '../infra/database.ts';
import { type CheckoutStatus, canTransition } from './checkout.states.ts';

export type CheckoutRow = Prisma.CheckoutGetPayload<object>;
export type CheckoutPatch = Omit<Prisma.CheckoutUpdateManyMutationInput, 'status' | 'id'>;

/** Non-secret facts only (codes, intervals, HTTP statuses): never tokens or keys. */
export type EventDetail = Record<string, string | number | boolean | null>;

export interface CheckoutEventInput {
  step: string;
  outcome: string;
  detail?: EventDetail;
}

export async function findCheckout(db: Database, id: string): Promise<CheckoutRow | null> {
  return db.checkout.findUnique({ where: { id } });
}

/**
 * Moves a checkout from one of `from` to `to`, applying `patch`. Returns the updated row, or null
 * when the checkout was no longer in `from` (someone else won the race: nothing was changed).
 */
export async function transition(
  db: Database,
  id: string,
  from: CheckoutStatus | readonly CheckoutStatus[],
  to: CheckoutStatus,
  patch: CheckoutPatch = {},
  event?: CheckoutEventInput,
): Promise<CheckoutRow | null> {
  const sources = typeof from === 'string' ? [from] : [...from];
  for (const source of sources) {
    if (!canTransition(source, to)) throw new Error(`illegal transition ${source} → ${to}`);
  }
  try {
    // One guarded update with its event as a nested write (atomic): the row comes back updated,
    // or Prisma reports that no row matched the guard (P2025).
    return await db.checkout.update({
      where: { id, status: { in: sources } },
      data: {
        ...patch,
        status: to,
        events: {
          create: {
            step: event?.step ?? 'status',
            outcome: event?.outcome ?? to,
            detail: { ...event?.detail, status: to },
          },
        },
      },
    });
  } catch (error) {
    if ((error as { code?: string }).code === 'P2025') return null;
    throw error;
  }
}

/** Updates fields of a checkout while it is still in `status` (no status change). */
export async function updateWhileInStatus(
  db: Database,
  id: string,
  status: CheckoutStatus,
  patch: CheckoutPatch,
  event?: CheckoutEventInput,
): Promise<boolean> {
  const { count } = await db.checkout.updateMany({ where: { id, status }, data: patch });
  if (count === 1 && event) await recordEvent(db, id, event);
  return count === 1;
}

export async function recordEvent(
  db: Database,
  checkoutId: string,
  event: CheckoutEventInput,
): Promise<void> {
  await db.checkoutEvent.create({
    data: {
      checkoutId,
      step: event.step,
      outcome: event.outcome,
      ...(event.detail !== undefined ? { detail: event.detail } : {}),
    },
  });
}

export async function listEvents(db: Database, checkoutId: string) {
  return db.checkoutEvent.findMany({ where: { checkoutId }, orderBy: { id: 'asc' }, take: 500 });
}
