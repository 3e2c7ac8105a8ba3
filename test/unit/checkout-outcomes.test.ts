/** How a checkout's failure reads (src/checkout/checkout.outcomes.ts): our sentence per code, the bank's text kept apart and cleaned. */
import { describe, expect, it } from 'vitest';
import { failureSentence, failures, sanitizeBankText } from '../../src/checkout/checkout.outcomes.ts';

describe('failure messages', () => {
  it.each([
    ['access_denied', 'the customer declined in their bank app'],
    ['unknown_user_id', 'the bank does not know this customer'],
    ['invalid_grant', 'the bank no longer knows this request'],
    ['payment_rejected', 'the bank rejected the payment'],
    ['<script>alert(1)</script>', 'the bank refused the request'],
    ['made_up_code', 'the bank refused the request'],
  ])('%s → %s', (code, sentence) => {
    expect(failureSentence(code)).toBe(sentence);
  });

  it('never puts the bank’s words in the message, whatever they are', () => {
    const hostile = '<img src=x onerror=alert(1)> call +1 555 0100';
    for (const failure of [
      failures.bankAnswered('transaction_failed', hostile),
      failures.paymentRejected(hostile),
      failures.bankError({ code: 'invalid_request', message: `bc-authorize: ${hostile}` }),
    ]) {
      expect(failure.message).not.toContain('555');
      expect(failure.bankText).toContain('555');
    }
  });
});

describe('bank text as logs and the timeline keep it', () => {
  it.each([
    ['plain', 'limit exceeded', 'limit exceeded'],
    ['controls and line breaks become spaces', 'a\r\nb\u0000c\u2028d', 'a b c d'],
    ['bidi overrides removed', 'abc\u202egnp.exe', 'abc gnp.exe'],
    ['only controls', '\u0000\u0001', undefined],
    ['absent', undefined, undefined],
    ['capped at 200', 'x'.repeat(500), `${'x'.repeat(199)}…`],
  ])('%s', (_name, text, expected) => {
    expect(sanitizeBankText(text)).toBe(expected);
  });
});
