/**
 * The checkout state machine (DESIGN.md §2). Every change is a compare-and-set on the current
 * status (see checkout.repository.ts `transition`), so concurrent actors cannot both win.
 */
export const CHECKOUT_STATUSES = [
  'pending',
  'awaiting_approval',
  'authorized',
  'succeeded',
  'declined',
  'expired',
  'failed',
  'canceled',
] as const;

export type CheckoutStatus = (typeof CHECKOUT_STATUSES)[number];

export const TRANSITIONS: Readonly<Record<CheckoutStatus, readonly CheckoutStatus[]>> = {
  pending: ['awaiting_approval', 'failed', 'canceled'],
  awaiting_approval: ['authorized', 'declined', 'expired', 'failed', 'canceled'],
  authorized: ['succeeded', 'failed'],
  succeeded: [],
  declined: [],
  expired: [],
  failed: [],
  canceled: [],
};

export const TERMINAL_STATUSES: readonly CheckoutStatus[] = [
  'succeeded',
  'declined',
  'expired',
  'failed',
  'canceled',
];

export function isTerminal(status: CheckoutStatus): boolean {
  return TERMINAL_STATUSES.includes(status);
}

export function canTransition(from: CheckoutStatus, to: CheckoutStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Cancel is allowed until the bank has issued tokens (DESIGN.md §2). */
export const CANCELABLE_STATUSES: readonly CheckoutStatus[] = ['pending', 'awaiting_approval'];
