/**
 * An ID Token wrong in any way fails the checkout (invalid_id_token) and its access token is never
 * used: the bank sees no payment call. The sandbox bank rewrites the ID Token of its token
 * response per customer; the access token stays valid, so only validation stops the payment.
 */
import { describe, expect, it } from 'vitest';
import {
  bankControl,
  checkoutBody,
  decideInBankApp,
  newBankCustomer,
  pendingInBankApp,
  useSystem,
} from '../support/system.ts';

const { http } = useSystem();

const CASES: Array<[string, Record<string, unknown>]> = [
  ["signed by a key not in the bank's JWKS", { sign: 'foreign-key' }],
  ['unsigned (alg none)', { sign: 'none' }],
  ["signed HS256 with the bank's public key (key confusion)", { sign: 'hs256' }],
  ['signed by the bank with RS256 instead of the pinned PS256', { sign: 'op', alg: 'RS256' }],
  ['from another issuer', { claims: { iss: 'https://evil.example/master' } }],
  ['for another audience', { claims: { aud: 'someone-else' } }],
  ['for several audiences without azp', { claims: { aud: ['shop', 'someone-else'], azp: null } }],
  ['with an azp that is not us', { claims: { aud: ['shop', 'someone-else'], azp: 'someone-else' } }],
  ['expired', { shift: { exp: -3600 } }],
  ['issued an hour ago (stale iat)', { shift: { iat: -3600 } }],
  ['issued in the future', { shift: { iat: 3600, exp: 3600 } }],
  ['about another customer (sub)', { claims: { sub: 'alice' } }],
  ['for another auth_req_id', { claims: { 'urn:openid:params:jwt:claim:auth_req_id': 'not-this-request' } }],
  ['with an at_hash that does not match the access token', { claims: { at_hash: 'AAAAAAAAAAAAAAAAAAAAAA' } }],
];

describe.concurrent('ID Token validation before anything else', () => {
  it.each(CASES)('an ID Token %s → failed invalid_id_token, no payment call', async (_label, idToken) => {
    const login = await newBankCustomer({ idToken });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await decideInBankApp(login, request.authReqId, 'approve');
    const done = await http.waitForStatus(id, ['failed', 'succeeded']);
    expect(done.status).toBe('failed');
    expect(done.failure).toMatchObject({ code: 'invalid_id_token' });
    const payments = await bankControl<{ count: number; attemptCount: number }>(`/payments?login=${login}`);
    expect(payments.attemptCount).toBe(0);
    expect(payments.count).toBe(0);
  });

  it('the same flow with an untouched ID Token pays (the cases above fail for their ID Token alone)', async () => {
    const login = await newBankCustomer({ idToken: { claims: {}, sign: 'op' } });
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    await decideInBankApp(login, request.authReqId, 'approve');
    expect((await http.waitForStatus(id, ['failed', 'succeeded'])).status).toBe('succeeded');
  });
});
