/**
 * Amounts are integers in the currency's minor unit, with the ISO 4217 exponent (EUR 2, JPY 0,
 * BHD 3). The bank receives the decimal string (RFC 9396 payment_initiation `instructedAmount`).
 */
import currencyCodes from 'currency-codes';

/** ISO 4217 codes that are not money one pays a shop with: funds, metals, testing, no currency. */
const NOT_PAYABLE = new Set([
  'XXX',
  'XTS',
  'XAU',
  'XAG',
  'XPD',
  'XPT',
  'XDR',
  'XSU',
  'XUA',
  'XBA',
  'XBB',
  'XBC',
  'XBD',
  'BOV',
  'CHE',
  'CHW',
  'CLF',
  'COU',
  'MXV',
  'USN',
  'UYI',
  'UYW',
]);

const EXPONENTS: ReadonlyMap<string, number> = new Map(
  currencyCodes.data
    .filter((c) => !NOT_PAYABLE.has(c.code) && Number.isInteger(c.digits))
    .map((c) => [c.code, c.digits]),
);

export function currencyExponent(code: string): number | undefined {
  return EXPONENTS.get(code);
}

export function isSupportedCurrency(code: string): boolean {
  return EXPONENTS.has(code);
}

/** 4990 EUR → "49.90"; 500 JPY → "500"; 1234 BHD → "1.234". */
export function toDecimalString(amountMinor: bigint | number, currency: string): string {
  const exponent = currencyExponent(currency);
  if (exponent === undefined) throw new Error(`unsupported currency ${currency}`);
  const minor = BigInt(amountMinor);
  if (minor < 0n) throw new Error('negative amount');
  if (exponent === 0) return minor.toString();
  const digits = minor.toString().padStart(exponent + 1, '0');
  return `${digits.slice(0, -exponent)}.${digits.slice(-exponent)}`;
}
