/**
 * The two registered clients (static registration, as with a real bank's onboarding).
 *
 * - `shop`: tls_client_auth with subject DN `CN=client` (RFC 8705 §2.1); MUST send signed
 *   authentication requests with PS256 (CIBA Core §7.1.1; FAPI-CIBA requires signed requests).
 * - `shop-jwt`: private_key_jwt (OIDC Core §9) with the same RSA key or the sandbox's ES256 key;
 *   signed request objects are optional for it, PS256 or ES256. It still connects with the client
 *   certificate, so its tokens are certificate-bound as well.
 * - `shop-ping`: `shop` in ping mode (CIBA Core §10.2), registered only when the bank is given the
 *   shop's notification endpoint; every bc-authorize must carry a client_notification_token.
 */
import type { JWK } from 'jose';
import type { ClientMetadata } from 'oidc-provider';
import { PAYMENT_INITIATION } from './payment-details.ts';
import { CIBA_GRANT_TYPE } from './provider.ts';

export const CLIENT_IDS = { tlsClientAuth: 'shop', privateKeyJwt: 'shop-jwt', ping: 'shop-ping' } as const;

/**
 * The registered clients; `notificationEndpoint` (the https URL registered for ping.ts) adds the
 * ping-mode client.
 */
export function buildClients(
  keys: { rsa: JWK; ec: JWK },
  merchantName: string | undefined,
  notificationEndpoint?: string,
): ClientMetadata[] {
  const common = {
    grant_types: [CIBA_GRANT_TYPE],
    response_types: [],
    redirect_uris: [],
    backchannel_token_delivery_mode: 'poll',
    id_token_signed_response_alg: 'PS256',
    // OIDC Core §2 / Registration §2: auth_time in every ID Token, so a client can see when the
    // customer approved (after its bc-authorize, never before).
    require_auth_time: true,
    tls_client_certificate_bound_access_tokens: true,
    authorization_details_types: [PAYMENT_INITIATION],
    // Only the provider's static (OpenID) scopes can be listed here; `payments` belongs to the
    // payments resource server (provider.ts, resourceIndicators).
    scope: 'openid',
    ...(merchantName ? { client_name: merchantName } : {}),
  } satisfies Partial<ClientMetadata>;
  const shop = {
    ...common,
    client_id: CLIENT_IDS.tlsClientAuth,
    token_endpoint_auth_method: 'tls_client_auth',
    tls_client_auth_subject_dn: 'CN=client',
    backchannel_authentication_request_signing_alg: 'PS256',
    jwks: { keys: [keys.rsa] },
  } satisfies ClientMetadata;
  return [
    shop,
    ...(notificationEndpoint
      ? [
          {
            ...shop,
            client_id: CLIENT_IDS.ping,
            backchannel_token_delivery_mode: 'ping' as const,
            backchannel_client_notification_endpoint: notificationEndpoint,
          },
        ]
      : []),
    {
      ...common,
      client_id: CLIENT_IDS.privateKeyJwt,
      token_endpoint_auth_method: 'private_key_jwt',
      jwks: { keys: [keys.rsa, keys.ec] },
    },
  ];
}
