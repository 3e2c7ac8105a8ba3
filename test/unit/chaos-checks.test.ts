/**
 * The chaos run's webhook checks (scripts/chaos-webhooks.ts): each counter counts what it says,
 * so a run reporting 0 means it, and a run that lost an event or a delivery says so.
 */
import { describe, expect, it } from 'vitest';
import type { ReceivedWebhook } from '../../devstack/webhook-receiver.ts';
import { checkEvents, type EventRow, type StatusChange } from '../../scripts/chaos-webhooks.ts';

const ALL = [
  'checkout.awaiting_approval',
  'checkout.succeeded',
  'checkout.declined',
  'checkout.expired',
  'checkout.failed',
  'checkout.canceled',
];

const changes: StatusChange[] = [
  { checkoutId: 'co_1', status: 'awaiting_approval' },
  { checkoutId: 'co_1', status: 'authorized' },
  { checkoutId: 'co_1', status: 'succeeded' },
  { checkoutId: 'co_2', status: 'failed' },
];
const events: EventRow[] = [
  { id: 'evt_a', type: 'checkout.awaiting_approval', checkoutId: 'co_1', status: 'awaiting_approval' },
  { id: 'evt_b', type: 'checkout.succeeded', checkoutId: 'co_1', status: 'succeeded' },
  { id: 'evt_c', type: 'checkout.failed', checkoutId: 'co_2', status: 'failed' },
];
const got = (id: string, answered = 204, verified = true): ReceivedWebhook => {
  const event = events.find((e) => e.id === id);
  return {
    id,
    type: event?.type ?? 'checkout.failed',
    checkoutId: event?.checkoutId ?? 'co_9',
    checkoutStatus: event?.status ?? 'failed',
    verified,
    signatures: 1,
    answered,
    at: 0,
  };
};

describe('chaos webhook checks', () => {
  it('all zero when every change has its event and every event was accepted (a retry and a duplicate allowed)', () => {
    const received = [
      got('evt_a', 500),
      got('evt_a'),
      got('evt_b', 0),
      got('evt_b'),
      got('evt_c'),
      got('evt_c'),
    ];
    expect(checkEvents(changes, events, received, ALL)).toEqual({
      missing: 0,
      invented: 0,
      undelivered: 0,
      duplicates: 1,
      unverified: 0,
      unknown: 0,
      refused: 2,
      received: 6,
    });
  });

  it('counts a change without its event, an event without its change, and a second event for one change', () => {
    const more: EventRow[] = [
      ...events.filter((e) => e.id !== 'evt_b'),
      { id: 'evt_x', type: 'checkout.declined', checkoutId: 'co_1', status: 'declined' },
      { id: 'evt_y', type: 'checkout.failed', checkoutId: 'co_2', status: 'failed' },
      { id: 'evt_z', type: 'checkout.expired', checkoutId: 'co_1', status: 'succeeded' },
    ];
    const checks = checkEvents(changes, more, [], null);
    expect(checks.missing).toBe(1); // co_1 succeeded
    expect(checks.invented).toBe(3); // declined (no such change), a second failed, a body that is not its type
    expect(checks.undelivered).toBe(0); // no endpoint: delivery not checked
  });

  it('counts events never accepted: refused, unverified, or not received at all', () => {
    const received = [got('evt_a', 500), got('evt_b', 204, false)];
    const checks = checkEvents(changes, events, received, ALL);
    expect(checks.undelivered).toBe(3);
    expect(checks.unverified).toBe(1);
    // Only the types the endpoint takes are due.
    expect(checkEvents(changes, events, received, ['checkout.failed']).undelivered).toBe(1);
  });

  it('counts deliveries of no event, or naming another checkout or status', () => {
    const received = [
      got('evt_a'),
      got('evt_b'),
      got('evt_c'),
      { ...got('evt_q'), id: 'evt_q' },
      { ...got('evt_c'), checkoutId: 'co_1' },
      { ...got('evt_b'), checkoutStatus: 'failed' },
    ];
    expect(checkEvents(changes, events, received, ALL)).toMatchObject({ unknown: 3, undelivered: 0 });
  });
});
