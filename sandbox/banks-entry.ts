/**
 * The banks-file entry (DESIGN.md §3) that configures Bankpay for a running sandbox bank, as
 * `npm run dev`, the tests, `npm run chaos` and the benchmarks use it.
 */
import type { SandboxBank } from './bank.ts';

export interface DevCertificatePaths {
  caCert: string;
  clientCert: string;
  clientKey: string;
  signingKey: string;
  clientPfx?: string;
}

/**
 * The entry for `bank`: client `shop` in poll mode; `{ deliveryMode: 'ping' }` in `overrides`
 * switches to the ping-mode client `shop-ping` (the bank must have been given the endpoint).
 */
export function sandboxBankEntry(
  bank: Pick<SandboxBank, 'issuer' | 'paymentsApiUrl'> & {
    clients: Pick<SandboxBank['clients'], 'tlsClientAuth'>;
  },
  certs: DevCertificatePaths,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: 'sandbox',
    name: 'Sandbox Bank',
    issuer: bank.issuer,
    clientId: bank.clients.tlsClientAuth,
    tlsClientCertFile: certs.clientCert,
    tlsClientKeyFile: certs.clientKey,
    caFile: certs.caCert,
    tokenEndpointAuthMethod: 'tls_client_auth',
    requestObjectSigningAlg: 'PS256',
    requestObjectKeyFile: certs.signingKey,
    idTokenSignedResponseAlg: 'PS256',
    scope: 'openid payments',
    deliveryMode: 'poll',
    requestedExpiry: 300,
    authorizationDetails: true,
    // The sandbox's subjects are its logins: the ID Token's sub must be the login hint.
    loginHintIsSubject: true,
    paymentsApiUrl: bank.paymentsApiUrl,
    ...(overrides.deliveryMode === 'ping' ? { clientId: 'shop-ping' } : {}),
    ...overrides,
  };
}
