/**
 * How Bankpay reads a bank's answers (src/integrations/bank.answers.ts): the hints of a readable
 * acknowledgement and token response, read leniently but never so as to poll faster, and the
 * decision table, which README.md must show exactly as the code has it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  ackExpiresIn,
  ackInterval,
  bankAnswerRules,
  renderBankAnswerTable,
  withoutUnreadableOptionals,
} from '../../src/integrations/bank.answers.ts';

describe('ackInterval (CIBA Core §7.3): undefined means the 5 s default', () => {
  it.each([
    [5, 5],
    [1, 1],
    [0.2, 1],
    [2.5, 3],
    [86_400 * 365, 86_400],
    // odd values: never faster than the default
    ['5', 5],
    ['1', 5],
    ['0.5', 5],
    ['10', 10],
    [' 7 ', 7],
    [0, undefined],
    [-1, undefined],
    ['-3', undefined],
    ['0', undefined],
    [null, undefined],
    [undefined, undefined],
    ['soon', undefined],
    [true, undefined],
    [[5], undefined],
    [Number.NaN, undefined],
    [Number.POSITIVE_INFINITY, undefined],
  ])('%j → %j', (value, expected) => {
    expect(ackInterval(value)).toBe(expected);
  });

  it('never answers below 1 s, nor below 5 s for a value that is not a JSON number', () => {
    for (const value of [0.001, 0.5, 1, '0.001', '1', '4.9']) {
      const interval = ackInterval(value);
      expect(interval).toBeGreaterThanOrEqual(typeof value === 'number' ? 1 : 5);
    }
  });
});

describe('ackExpiresIn (CIBA Core §7.3): the requested_expiry unless a positive number', () => {
  it.each([
    [60, 60],
    [59.9, 59],
    [0.5, 1],
    ['60', 60],
    [10 ** 12, 86_400],
    [0, 300],
    [-1, 300],
    [undefined, 300],
    [null, 300],
    ['soon', 300],
    [{}, 300],
  ])('%j → %j', (value, expected) => {
    expect(ackExpiresIn(value, 300)).toBe(expected);
  });
});

describe('withoutUnreadableOptionals (RFC 6749 §5.1)', () => {
  it('drops optional members that cannot be read and keeps the rest as sent', () => {
    const required = { access_token: 'at', token_type: 'Bearer', id_token: 'x.y.z' };
    expect(
      withoutUnreadableOptionals({ ...required, expires_in: 600, scope: 'openid', refresh_token: 'r' }),
    ).toEqual({ ...required, expires_in: 600, scope: 'openid', refresh_token: 'r' });
    expect(withoutUnreadableOptionals({ ...required, expires_in: '600' })).toEqual({
      ...required,
      expires_in: '600',
    });
    expect(
      withoutUnreadableOptionals({ ...required, expires_in: 'soon', scope: ['openid'], refresh_token: 7 }),
    ).toEqual(required);
    expect(withoutUnreadableOptionals({ ...required, expires_in: -1 })).toEqual(required);
  });
});

describe('the decision table', () => {
  it('is in README.md exactly as in the code', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(renderBankAnswerTable());
  });

  it('decides every row one way, and names a spec or the contract for each', () => {
    for (const [id, rule] of Object.entries(bankAnswerRules)) {
      expect(['transient', 'final', 'default', 'wait', 'used'], id).toContain(rule.decision);
      expect(rule.why, id).toMatch(/RFC \d+|CIBA Core|OIDC|DESIGN\.md|draft-/);
      // A pipe, even in code, would break the Markdown table.
      expect(`${rule.answer}${rule.action}${rule.why}`, id).not.toContain('|');
    }
  });
});
