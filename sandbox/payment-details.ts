/**
 * RFC 9396 authorization details of type `payment_initiation`: what the customer approves and
 * what the payment API later holds the client to (DESIGN.md §4).
 */

export interface PaymentInitiation {
  type: 'payment_initiation';
  instructedAmount: { currency: string; amount: string };
  creditorName: string;
  creditorAccount: { iban: string };
  remittanceInformationUnstructured: string;
}

/** The payment API's request body: the details without `type`. */
export type PaymentOrder = Omit<PaymentInitiation, 'type'>;

export const PAYMENT_INITIATION = 'payment_initiation' as const;

const CURRENCY = /^[A-Z]{3}$/;
// A decimal string, as in the Berlin Group / UK OB payment APIs: no sign, no exponent, at most
// 3 fraction digits (ISO 4217's largest minor unit exponent, e.g. BHD).
const AMOUNT = /^(0|[1-9]\d{0,14})(\.\d{1,3})?$/;
// Shape only (country, check digits, BBAN); the sandbox does not verify the mod-97 checksum so
// that made-up test IBANs keep working.
const IBAN = /^[A-Z]{2}\d{2}[A-Z0-9]{11,30}$/;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown, field: string, max: number): string {
  if (typeof value !== 'string' || value.trim().length === 0 || value.length > max) {
    throw new TypeError(`${field} must be a non-empty string of at most ${max} characters`);
  }
  return value;
}

/** Throws a TypeError naming the offending member; returns the validated order. */
export function parsePaymentOrder(value: unknown, label = 'payment_initiation'): PaymentOrder {
  if (!isRecord(value)) throw new TypeError(`${label} must be a JSON object`);
  const { instructedAmount, creditorAccount } = value;
  if (!isRecord(instructedAmount)) throw new TypeError(`${label}.instructedAmount must be an object`);
  if (typeof instructedAmount.currency !== 'string' || !CURRENCY.test(instructedAmount.currency)) {
    throw new TypeError(`${label}.instructedAmount.currency must be an ISO 4217 code`);
  }
  if (typeof instructedAmount.amount !== 'string' || !AMOUNT.test(instructedAmount.amount)) {
    throw new TypeError(`${label}.instructedAmount.amount must be a decimal string such as "49.90"`);
  }
  if (Number(instructedAmount.amount) <= 0) {
    throw new TypeError(`${label}.instructedAmount.amount must be positive`);
  }
  if (
    !isRecord(creditorAccount) ||
    typeof creditorAccount.iban !== 'string' ||
    !IBAN.test(creditorAccount.iban)
  ) {
    throw new TypeError(`${label}.creditorAccount.iban must be an IBAN (no spaces)`);
  }
  return {
    instructedAmount: { currency: instructedAmount.currency, amount: instructedAmount.amount },
    creditorName: text(value.creditorName, `${label}.creditorName`, 140),
    creditorAccount: { iban: creditorAccount.iban },
    remittanceInformationUnstructured: text(
      value.remittanceInformationUnstructured,
      `${label}.remittanceInformationUnstructured`,
      140,
    ),
  };
}

export function parsePaymentInitiation(value: unknown): PaymentInitiation {
  return { type: PAYMENT_INITIATION, ...parsePaymentOrder(value) };
}

/**
 * The payment initiation among a request's authorization details. One payment per approval: a
 * request carrying several `payment_initiation` entries is refused at bc-authorize.
 */
export function findPaymentInitiation(details: unknown): PaymentInitiation | undefined {
  if (!Array.isArray(details)) return undefined;
  const found = details.filter((d) => isRecord(d) && d.type === PAYMENT_INITIATION);
  return found.length === 1 ? parsePaymentInitiation(found[0]) : undefined;
}

/** Field-by-field equality of what is being paid with what was approved (strings compared exactly). */
export function sameOrder(approved: PaymentOrder, requested: PaymentOrder): boolean {
  return (
    approved.instructedAmount.currency === requested.instructedAmount.currency &&
    approved.instructedAmount.amount === requested.instructedAmount.amount &&
    approved.creditorName === requested.creditorName &&
    approved.creditorAccount.iban === requested.creditorAccount.iban &&
    approved.remittanceInformationUnstructured === requested.remittanceInformationUnstructured
  );
}

export function toOrder(details: PaymentInitiation): PaymentOrder {
  const { type: _type, ...order } = details;
  return order;
}
