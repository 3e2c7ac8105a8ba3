/**
 * Values a bank writes that Bankpay keeps or shows: error codes (they become failure.code),
 * payment ids (payment.bankPaymentId, shown to browsers) and token lifetimes (they bound how long
 * a payment is retried).
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { openTokens, sealTokens } from '../../src/checkout/checkout.payment.ts';
import { createKeyRing } from '../../src/infra/crypto.ts';
import { mayBeSettlingTokenAnswer } from '../../src/integrations/bank.client.ts';
import { safeOAuthCode } from '../../src/integrations/bank.errors.ts';
import { shownPaymentId } from '../../src/integrations/bank-payments.client.ts';

describe('a bank error code', () => {
  it.each(['access_denied', 'unknown_user_id', 'invalid_grant', 'transaction_failed', 'x'])(
    '%s is a code',
    (code) => {
      expect(safeOAuthCode(code)).toBe(code);
    },
  );

  it.each([
    'Call_+44-20-7946-0000_now:your_card<is>blocked!',
    '<svg/onload=alert(document.domain)>',
    'ACCESS_DENIED',
    'access denied',
    '_leading',
    'a'.repeat(65),
    '',
    42,
  ])('%j is not (refused, never shown)', (value) => {
    expect(safeOAuthCode(value)).toBeUndefined();
  });
});

describe('a payment id as kept and shown', () => {
  it.each([
    ['pay_5d08dc15-a3bf-4652', 'pay_5d08dc15-a3bf-4652'],
    ['<a href="x">call +44</a>', '<a_href="x">call_+44</a>'],
    ['id\u0000with\u202econtrols', 'id_with_controls'],
    ['x'.repeat(8_090), 'x'.repeat(128)],
  ])('%j → %j', (id, shown) => {
    expect(shownPaymentId(id)).toBe(shown);
  });
});

describe('the access token lifetime kept with the token', () => {
  const keys = createKeyRing([randomBytes(32)]);
  const now = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    ['the bank says 600 s', 600, 600],
    ['no expires_in: one hour', undefined, 3600],
    ['expires_in 0: one hour', 0, 3600],
    ['negative: one hour', -5, 3600],
    ['a year: one day at most', 365 * 86_400, 86_400],
  ])('%s', (_name, expiresIn, seconds) => {
    const sealed = sealTokens(
      keys,
      'chk_a',
      { accessToken: 'at', idToken: 'id', ...(expiresIn === undefined ? {} : { expiresIn }) },
      now,
    );
    expect(openTokens(keys, 'chk_a', sealed)?.accessTokenExpiresAt).toBe(now + seconds * 1000);
  });
});

describe('a token answer kept before it is interpreted', () => {
  const answer = (status: number, body: unknown) => ({
    status,
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  it.each([
    ['tokens', answer(200, { access_token: 'at', token_type: 'Bearer', id_token: 'x' }), true],
    ['access_denied', answer(400, { error: 'access_denied' }), true],
    ['expired_token', answer(400, { error: 'expired_token' }), true],
    ['invalid_grant', answer(400, { error: 'invalid_grant' }), true],
    ['authorization_pending', answer(400, { error: 'authorization_pending' }), false],
    ['slow_down', answer(400, { error: 'slow_down' }), false],
    ["a proxy's page labelled JSON, 200", answer(200, '<html>gateway</html>'), false],
    ['a 200 JSON without tokens', answer(200, { status: 'ok' }), false],
    ['503', answer(503, { error: 'temporarily_unavailable' }), false],
    ['429', answer(429, ''), false],
  ])('%s → %s', (_name, raw, kept) => {
    expect(mayBeSettlingTokenAnswer(raw)).toBe(kept);
  });
});
