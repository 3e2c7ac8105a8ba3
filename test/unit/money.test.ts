/**
 * toDecimalString: an integer amount in the currency's minor unit → the decimal string the bank
 * receives, with the ISO 4217 exponent (EUR 2, JPY 0, BHD 3).
 */
import { describe, expect, it } from 'vitest';
import { toDecimalString } from '../../src/checkout/money.ts';

describe('toDecimalString', () => {
  it.each([
    // exponent 2
    [4990, 'EUR', '49.90'],
    [0, 'EUR', '0.00'],
    [1, 'EUR', '0.01'],
    [5, 'EUR', '0.05'],
    [50, 'EUR', '0.50'],
    [99, 'EUR', '0.99'],
    [100, 'EUR', '1.00'],
    [123456, 'USD', '1234.56'],
    [Number.MAX_SAFE_INTEGER, 'EUR', '90071992547409.91'],
    // exponent 0
    [500, 'JPY', '500'],
    [0, 'JPY', '0'],
    [5, 'JPY', '5'],
    [1000, 'CLP', '1000'],
    // exponent 3
    [1234, 'BHD', '1.234'],
    [0, 'BHD', '0.000'],
    [5, 'BHD', '0.005'],
    [50, 'BHD', '0.050'],
    [999, 'BHD', '0.999'],
    [1000, 'BHD', '1.000'],
    [12345, 'KWD', '12.345'],
  ])('%d %s → %s', (amount, currency, decimal) => {
    expect(toDecimalString(amount, currency)).toBe(decimal);
  });

  it.each([
    [4990n, 'EUR', '49.90'],
    [0n, 'EUR', '0.00'],
    [5n, 'EUR', '0.05'],
    [5n, 'BHD', '0.005'],
    [2n ** 64n, 'JPY', '18446744073709551616'],
    [2n ** 64n, 'EUR', '184467440737095516.16'],
    [123456789012345678901234567890n, 'EUR', '1234567890123456789012345678.90'],
    [123456789012345678901234567890n, 'BHD', '123456789012345678901234567.890'],
  ])('bigint %s %s → %s', (amount, currency, decimal) => {
    expect(toDecimalString(amount, currency)).toBe(decimal);
  });

  it.each([
    [-1, 'EUR', /negative amount/],
    [-1n, 'EUR', /negative amount/],
    [-4990, 'JPY', /negative amount/],
    [-1234n, 'BHD', /negative amount/],
    [100, 'XXX', /unsupported currency XXX/],
    [100, 'XAU', /unsupported currency XAU/],
    [100, 'CLF', /unsupported currency CLF/],
    [100, 'ABC', /unsupported currency ABC/],
    [100, 'eur', /unsupported currency eur/],
    [100, '', /unsupported currency/],
    [-1, 'XXX', /unsupported currency XXX/],
  ])('%s %j throws %s', (amount, currency, error) => {
    expect(() => toDecimalString(amount, currency)).toThrow(error);
  });

  it('a fractional minor amount throws', () => {
    expect(() => toDecimalString(1.5, 'EUR')).toThrow(RangeError);
  });
});
