/** The binding message (src/checkout/binding-message.ts): CIBA-safe, ≤ 20 characters, the amount when the bank shows nothing else. */
import { describe, expect, it } from 'vitest';
import {
  BINDING_MESSAGE_PATTERN,
  bindingMessageWithAmount,
  newBindingMessage,
} from '../../src/checkout/binding-message.ts';

describe('binding messages', () => {
  it('is PAY- and a 6-character code for banks that show the payment', () => {
    for (let i = 0; i < 50; i++) expect(newBindingMessage()).toMatch(/^PAY-[A-HJKMNP-Z2-9]{6}$/);
  });

  it.each([
    [4990, 'EUR', /^EUR49\.90-[A-Z2-9]{6}$/],
    [5, 'EUR', /^EUR0\.05-[A-Z2-9]{6}$/],
    [500, 'JPY', /^JPY500-[A-Z2-9]{6}$/],
    [1234, 'BHD', /^BHD1\.234-[A-Z2-9]{6}$/],
    [1_234_567_890, 'EUR', /^EUR12345678\.90-[A-Z2-9]{5}$/],
    [12_345_678_901, 'EUR', /^EUR123456789\.01-[A-Z2-9]{4}$/],
  ])('carries the amount: %d %s → %s', (amount, currency, expected) => {
    const message = bindingMessageWithAmount(amount, currency);
    expect(message).toMatch(expected);
    expect(message).toMatch(BINDING_MESSAGE_PATTERN);
    expect(message!.length).toBeLessThanOrEqual(20);
  });

  it.each([
    [123_456_789_012, 'EUR'],
    [Number.MAX_SAFE_INTEGER, 'JPY'],
  ])('does not fit: %d %s → undefined (the checkout is refused)', (amount, currency) => {
    expect(bindingMessageWithAmount(amount, currency)).toBeUndefined();
  });
});
