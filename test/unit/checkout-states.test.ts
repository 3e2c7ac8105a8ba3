/**
 * canTransition against the state machine of DESIGN.md §2, written out here as a matrix of its
 * own: every one of the 8 × 8 (from, to) pairs, staying put included, is asserted.
 */
import { describe, expect, it } from 'vitest';
import { CHECKOUT_STATUSES, type CheckoutStatus, canTransition } from '../../src/checkout/checkout.states.ts';

const STATUSES = [
  'pending',
  'awaiting_approval',
  'authorized',
  'succeeded',
  'declined',
  'expired',
  'failed',
  'canceled',
] as const satisfies readonly CheckoutStatus[];

/** DESIGN.md §2, "next" column: a row per `from`, a column per `to`, in the order of STATUSES. */
// biome-ignore format: the matrix reads best aligned
const ALLOWED: Record<CheckoutStatus, readonly (0 | 1)[]> = {
  //                  pend awai auth succ decl expi fail canc
  pending:           [ 0,   1,   0,   0,   0,   0,   1,   1 ],
  awaiting_approval: [ 0,   0,   1,   0,   1,   1,   1,   1 ],
  authorized:        [ 0,   0,   0,   1,   0,   0,   1,   0 ],
  succeeded:         [ 0,   0,   0,   0,   0,   0,   0,   0 ],
  declined:          [ 0,   0,   0,   0,   0,   0,   0,   0 ],
  expired:           [ 0,   0,   0,   0,   0,   0,   0,   0 ],
  failed:            [ 0,   0,   0,   0,   0,   0,   0,   0 ],
  canceled:          [ 0,   0,   0,   0,   0,   0,   0,   0 ],
};

const PAIRS = STATUSES.flatMap((from) =>
  STATUSES.map((to, column) => ({ from, to, allowed: ALLOWED[from][column] === 1 })),
);

describe('canTransition', () => {
  it('the table covers exactly the statuses of the code, every pair once', () => {
    expect([...CHECKOUT_STATUSES].sort()).toEqual([...STATUSES].sort());
    expect(PAIRS).toHaveLength(64);
    for (const from of STATUSES) expect(ALLOWED[from]).toHaveLength(8);
  });

  it.each(PAIRS)('$from → $to: $allowed', ({ from, to, allowed }) => {
    expect(canTransition(from, to)).toBe(allowed);
  });
});
