/** The webhook body (DESIGN.md §7.3): the event as the events API shows it, the checkout's members in API order. */
import { describe, expect, it } from 'vitest';
import { SUCCEEDED_CHECKOUT_EXAMPLE } from '../../src/checkout/checkout.schemas.ts';
import { webhookBody } from '../../src/jobs/webhook-dispatcher.ts';

describe('webhookBody', () => {
  const { timeline: _, ...checkout } = SUCCEEDED_CHECKOUT_EXAMPLE;
  // As PostgreSQL's jsonb hands the object back: keys by length, then bytewise.
  const jsonbOrder = Object.fromEntries(
    Object.entries(checkout).sort(([a], [b]) => a.length - b.length || (a < b ? -1 : 1)),
  ) as typeof checkout;

  it('is { id, type, createdAt, data: { object } }, the checkout in the order the API shows it', () => {
    const body = webhookBody({
      eventId: 'evt_0123456789abcdef0123456789abcdef',
      type: 'checkout.succeeded',
      eventCreatedAt: new Date('2025-06-02T09:14:21.087Z'),
      object: jsonbOrder,
    });
    expect(Object.keys(jsonbOrder)).not.toEqual(Object.keys(checkout));
    const parsed = JSON.parse(body);
    expect(Object.keys(parsed)).toEqual(['id', 'type', 'createdAt', 'data']);
    expect(parsed).toEqual({
      id: 'evt_0123456789abcdef0123456789abcdef',
      type: 'checkout.succeeded',
      createdAt: '2025-06-02T09:14:21.087Z',
      data: { object: checkout },
    });
    expect(Object.keys(parsed.data.object)).toEqual(Object.keys(checkout));
  });

  it('keeps a member it does not know, after the known ones', () => {
    const body = webhookBody({
      eventId: 'evt_1',
      type: 'checkout.succeeded',
      eventCreatedAt: new Date(0),
      object: { extra: 1, ...jsonbOrder } as typeof checkout,
    });
    expect(Object.keys(JSON.parse(body).data.object).at(-1)).toBe('extra');
  });
});
