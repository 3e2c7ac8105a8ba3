/**
 * The binding message (CIBA Core §7.1 `binding_message`): what the shop's page and the customer's
 * bank app both show, so the customer can tell that the request on their phone is this checkout.
 * At most 20 characters of `[A-Za-z0-9-._+/!?#]`, the most every CIBA server accepts (DESIGN.md §2).
 *
 * When the bank takes RFC 9396 `authorization_details`, the bank app shows the payment itself and
 * the message is a code (`PAY-K7P2X9`). A bank that cannot take them (its entry says
 * `authorizationDetails: false`) would show the customer nothing about the money, so there the
 * message carries the amount and currency (`EUR49.90-K7P2X9`).
 */
import { randomInt } from 'node:crypto';
import { toDecimalString } from './money.ts';

export const BINDING_MESSAGE_MAX_LENGTH = 20;
/** The characters every CIBA server accepts in a binding message. */
export const BINDING_MESSAGE_PATTERN = /^[A-Za-z0-9\-._+/!?#]{1,20}$/;

/** Unambiguous to read aloud and to compare on two screens (no 0/O, 1/I/L). */
const CODE_ALPHABET = 'ABCDEFGHJKMNPQRSTUVWXYZ23456789';
const CODE_LENGTH = 6;
/** The shortest code still worth matching by eye. */
const MIN_CODE_LENGTH = 4;

function code(length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return text;
}

/** `PAY-` and 6 characters: for banks whose app shows the payment (authorization_details). */
export function newBindingMessage(): string {
  return `PAY-${code(CODE_LENGTH)}`;
}

/**
 * Currency, amount and a code, e.g. `EUR49.90-K7P2X9` (the code shortened to fit, never below 4
 * characters): for banks that show the customer only the binding message. `amountMinor` is in the
 * currency's minor unit. Undefined when the amount is too long to fit (over 11 characters with
 * its decimal point, e.g. 100 million EUR).
 */
export function bindingMessageWithAmount(amountMinor: bigint | number, currency: string): string | undefined {
  const prefix = `${currency}${toDecimalString(amountMinor, currency)}-`;
  const room = BINDING_MESSAGE_MAX_LENGTH - prefix.length;
  if (room < MIN_CODE_LENGTH) return undefined;
  return `${prefix}${code(Math.min(CODE_LENGTH, room))}`;
}
