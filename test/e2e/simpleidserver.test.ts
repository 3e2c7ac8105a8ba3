/**
 * Bankpay against a SimpleIdServer 4.x bank, end to end through the public API: the bank is the
 * test double of test/support/simpleidserver.double.ts (SimpleIdServer cannot run here), which
 * refuses whatever SimpleIdServer would refuse, so a passing checkout shows that Bankpay sends
 * nothing that server rejects and accepts what it answers (ES256 request objects and ID Tokens,
 * tls_client_auth with an exact subject DN, one RFC 9396 detail, an ID Token without the
 * auth_req_id claim and with aud = [client_id, issuer] + azp). Set up as the seed's tutorial does:
 * the client certificate as a `.pfx` with its passphrase, and the request-object key registered on
 * the client under a kid of the operator's choosing, as `npm run jwks` prints it.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { certificateFiles, DEV_CLIENT_PFX_PASSPHRASE } from '../../devstack/certificates.ts';
import { publicJwks } from '../../src/integrations/signing-key.loader.ts';
import {
  type SidsRequest,
  type SimpleIdServerDouble,
  startSimpleIdServerDouble,
} from '../support/simpleidserver.double.ts';
import { checkoutBody, eventually, useSystem } from '../support/system.ts';

const certsDir = inject('certsDir');
const KID = 'bankpay-es256-2026';
const PASSPHRASE_ENV = 'SIDS_CLIENT_PFX_PASSPHRASE';
const cert = (name: string) => join(certsDir, name);
let sids: SimpleIdServerDouble;

beforeAll(async () => {
  // What `npm run jwks` prints for this bank entry (requestObjectKid names the key).
  const registered = await publicJwks([
    { pem: readFileSync(cert(certificateFiles.es256Key), 'utf8'), alg: 'ES256', kid: KID },
  ]);
  sids = await startSimpleIdServerDouble({
    certsDir,
    clients: [
      {
        // The External Device Authentication template: tls_client_auth with the certificate's
        // subject, ES256 request objects and ID Tokens, poll mode; plus what an operator adds.
        clientId: 'bankpay',
        subjectDn: 'CN=client',
        // Registered under the operator's kid, which the bank entry names (requestObjectKid).
        jwks: registered.keys,
        authorizationDataTypes: ['payment_initiation'],
        scopes: ['openid', 'profile', 'payments'],
        // bc_interval is a client setting (default 5 s); 1 s keeps the test quick.
        intervalSeconds: 1,
      },
    ],
  });
});

afterAll(async () => {
  await sids?.close();
});

function sidsBanksFile(): Record<string, string> {
  const file = join(dirname(certsDir), `banks-sids-${process.pid}.json`);
  const bank = {
    id: 'sids',
    name: 'SimpleIdServer bank',
    issuer: sids.issuer,
    clientId: 'bankpay',
    // As downloaded from the bank's admin console: CN=client, one PKCS#12 file.
    tlsClientPfxFile: cert(certificateFiles.clientPfx),
    tlsClientPfxPassphraseEnv: PASSPHRASE_ENV,
    caFile: cert(certificateFiles.caCert),
    tokenEndpointAuthMethod: 'tls_client_auth',
    requestObjectSigningAlg: 'ES256',
    requestObjectKeyFile: cert(certificateFiles.es256Key),
    requestObjectKid: KID,
    idTokenSignedResponseAlg: 'ES256',
    scope: 'openid payments',
    deliveryMode: 'poll',
    requestedExpiry: 300,
    authorizationDetails: true,
    // SimpleIdServer finds the user by login_hint = user name, and that name is the sub.
    loginHintIsSubject: true,
    paymentsApiUrl: sids.paymentsApiUrl,
  };
  // The same bank with a 3-second approval window, for the expiry case.
  const short = { ...bank, id: 'sids-short', name: 'SimpleIdServer bank (3 s)', requestedExpiry: 3 };
  writeFileSync(file, JSON.stringify({ banks: [bank, short] }));
  return { BANKS_FILE: file, [PASSPHRASE_ENV]: DEV_CLIENT_PFX_PASSPHRASE };
}

// Registered after the double's hooks: the system starts after it and closes before it.
const { http } = useSystem(sidsBanksFile);

function newCustomer(): string {
  const login = `t-${randomBytes(6).toString('hex')}`;
  sids.addUser(login);
  return login;
}

/** Everything Bankpay sent about one customer's request: bc-authorize by login, token by id. */
function exchanges(login: string, authReqId: string): { bc: SidsRequest[]; token: SidsRequest[] } {
  const bc = sids.requests.filter((r) => r.path.endsWith('/bc-authorize') && r.params.login_hint === login);
  const token = sids.requests.filter((r) => r.path.endsWith('/token') && r.params.auth_req_id === authReqId);
  return { bc, token };
}

/** What Bankpay must never do at this bank: any refusal, any call off the mTLS aliases. */
function expectOnlyWellFormedCalls(calls: { bc: SidsRequest[]; token: SidsRequest[] }): void {
  expect(calls.bc).toHaveLength(1);
  for (const r of [...calls.bc, ...calls.token]) {
    expect(r.path, JSON.stringify(r)).toMatch(/^\/master\/mtls\/(bc-authorize|token)$/);
    expect(r.certificate).toBe(true);
    expect([200, 400]).toContain(r.status);
    if (r.status === 400) expect(r.error).toBe('authorization_pending');
  }
  const [bc] = calls.bc;
  expect(bc?.status).toBe(200);
  expect(bc?.requestObject?.header).toMatchObject({ alg: 'ES256', kid: KID });
}

describe('a SimpleIdServer bank', () => {
  it('takes a checkout the customer approves: one payment, for the approved amount', async () => {
    const login = newCustomer();
    const created = await http.createCheckout(
      checkoutBody(login, { bankId: 'sids', amount: 4990, currency: 'EUR', reference: 'order-1234' }),
    );
    expect(created.status).toBe(202);
    const checkout = (await created.json()) as Record<string, string>;

    // The customer's device shows the payment itself, with Bankpay's binding message.
    const request = await eventually(async () => sids.pending(login)[0], 15_000, 'the request on the device');
    expect(request.bindingMessage).toBe(checkout.bindingMessage);
    expect(request.authorizationDetails).toEqual([
      {
        type: 'payment_initiation',
        instructedAmount: { currency: 'EUR', amount: '49.90' },
        creditorName: 'Acme Shop',
        creditorAccount: { iban: 'DE89370400440532013000' },
        remittanceInformationUnstructured: 'order-1234',
      },
    ]);
    const authReqId = request.authReqId;

    // Bankpay polls at the bank's pace: let it hear authorization_pending before approving.
    await http.waitForStatus(checkout.id!, ['awaiting_approval']);
    await eventually(
      async () => exchanges(login, authReqId).token.some((r) => r.error === 'authorization_pending'),
      15_000,
      'a pending poll',
    );
    await sids.approve(authReqId);

    const done = await http.waitForStatus(checkout.id!, ['succeeded', 'failed', 'declined', 'expired']);
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    const paid = sids.payments.filter((p) => p.login === login);
    expect(paid).toHaveLength(1);
    expect(paid[0]).toMatchObject({
      paymentId: (done.payment as { bankPaymentId: string }).bankPaymentId,
      idempotencyKey: checkout.id,
      body: {
        instructedAmount: { currency: 'EUR', amount: '49.90' },
        creditorName: 'Acme Shop',
        creditorAccount: { iban: 'DE89370400440532013000' },
        remittanceInformationUnstructured: 'order-1234',
      },
    });

    const calls = exchanges(login, authReqId);
    expectOnlyWellFormedCalls(calls);
    expect(calls.token.at(-1)?.status).toBe(200);
    expect(calls.token.filter((r) => r.status === 200)).toHaveLength(1);
    expect(calls.bc[0]?.requestObject?.claims.authorization_details).toHaveLength(1);
  });

  it("accepts Bankpay's request object when the bank's clock is 10 s behind ours (nbf is backdated)", async () => {
    sids.setClockOffset(-10_000);
    try {
      const login = newCustomer();
      const created = await http.createCheckout(checkoutBody(login, { bankId: 'sids' }));
      const checkout = (await created.json()) as Record<string, string>;
      const awaiting = await http.waitForStatus(checkout.id!, ['awaiting_approval', 'failed']);
      expect(awaiting.status, JSON.stringify(awaiting)).toBe('awaiting_approval');
      const [request] = sids.pending(login);
      await sids.deny(request!.authReqId);
      expect((await http.waitForStatus(checkout.id!, ['declined', 'failed'])).status).toBe('declined');
    } finally {
      sids.setClockOffset(0);
    }
  });

  it('takes a checkout the customer denies: declined, nothing paid', async () => {
    const login = newCustomer();
    const created = await http.createCheckout(checkoutBody(login, { bankId: 'sids', amount: 1250 }));
    const checkout = (await created.json()) as Record<string, string>;
    const request = await eventually(async () => sids.pending(login)[0], 15_000, 'the request on the device');
    await sids.deny(request.authReqId);

    const done = await http.waitForStatus(checkout.id!, ['succeeded', 'failed', 'declined', 'expired']);
    expect(done.status, JSON.stringify(done)).toBe('declined');
    expect(sids.payments.filter((p) => p.login === login)).toHaveLength(0);
    const calls = exchanges(login, request.authReqId);
    expectOnlyWellFormedCalls({ ...calls, token: calls.token.filter((r) => r.error !== 'access_denied') });
    expect(calls.token.at(-1)?.error).toBe('access_denied');
  });

  it('expires a checkout by its own clock: past its expiry the bank still answers authorization_pending', async () => {
    const login = newCustomer();
    const created = await http.createCheckout(checkoutBody(login, { bankId: 'sids-short' }));
    const checkout = (await created.json()) as Record<string, string>;
    const request = await eventually(async () => sids.pending(login)[0], 15_000, 'the request on the device');

    const done = await http.waitForStatus(
      checkout.id!,
      ['succeeded', 'failed', 'declined', 'expired'],
      20_000,
    );
    expect(done.status, JSON.stringify(done)).toBe('expired');
    const calls = exchanges(login, request.authReqId);
    expectOnlyWellFormedCalls(calls);
    expect(calls.bc[0]?.requestObject?.claims.requested_expiry).toBe(3);
    // SimpleIdServer never says expired_token for a request nobody approved: Bankpay stopped asking.
    expect(calls.token.every((r) => r.error === 'authorization_pending')).toBe(true);
    expect(sids.payments.filter((p) => p.login === login)).toHaveLength(0);
  });
});
