/**
 * The ID Token of CIBA token responses, finished by the sandbox in front of oidc-provider.
 *
 * oidc-provider 9 issues the CIBA ID Token without `at_hash` and without the auth_req_id claim.
 * CIBA Core 1.0 §10.3.1 defines `urn:openid:params:jwt:claim:auth_req_id` (and requires it, with
 * `at_hash`, in push-mode deliveries); at the token endpoint both are allowed (OIDC Core §3.1.3.6:
 * `at_hash` OPTIONAL there). The sandbox always adds them, so a client can bind the ID Token to
 * the auth_req_id it polled and to the access token it got, and re-signs the token with the OP's
 * own key: the default ID Token is still a genuine OP token.
 *
 * A customer's `idToken` fault (faults.ts) rewrites claims and signature on top of that, because
 * oidc-provider cannot be made to issue a wrong ID Token on its own; the access token beside it
 * stays untouched and valid.
 */
import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
} from 'node:crypto';
import { CompactSign, decodeJwt, decodeProtectedHeader, type JWK } from 'jose';
import type { IdTokenAlg, IdTokenFault } from './faults.ts';
import type { OpKeys } from './keys.ts';

/** CIBA Core 1.0 §10.3.1. */
export const AUTH_REQ_ID_CLAIM = 'urn:openid:params:jwt:claim:auth_req_id';

type KeyType = 'RSA' | 'EC';
const keyTypeOf = (alg: string): KeyType => (alg.startsWith('ES') ? 'EC' : 'RSA');

/** OIDC Core §3.1.3.6: left half of the hash (of the JWS alg's size) of the access token's octets. */
export function accessTokenHash(accessToken: string): string {
  // Every alg the sandbox signs with (RS256, PS256, ES256, HS256) uses SHA-256; `none` has no
  // hash of its own and keeps SHA-256 so the claim stays comparable.
  const digest = createHash('sha256').update(accessToken, 'ascii').digest();
  return digest.subarray(0, digest.length / 2).toString('base64url');
}

/** What a rewrite changed, for the request's timeline. */
export interface IdTokenRewrite {
  sign: IdTokenFault['sign'];
  alg: string;
  claims: string[];
  shift: string[];
}

export interface MintInput {
  /** The ID Token as oidc-provider issued it. */
  issued: string;
  accessToken: string;
  authReqId: string;
  fault: Omit<IdTokenFault, 'times'> | undefined;
}

export class IdTokenMinter {
  private readonly opPrivate = new Map<KeyType, { key: KeyObject; kid: string | undefined }>();
  private readonly foreign = new Map<KeyType, KeyObject>();
  private readonly hmacSecret: Uint8Array;

  constructor(keys: OpKeys) {
    for (const jwk of keys.privateJwks) {
      const type = jwk.kty === 'EC' ? 'EC' : 'RSA';
      if (!this.opPrivate.has(type)) {
        this.opPrivate.set(type, {
          key: createPrivateKey({ key: jwk as JWK & { kty: string }, format: 'jwk' }),
          kid: jwk.kid,
        });
      }
    }
    const rsaPublic = keys.publicJwks.keys.find((k) => k.kty === 'RSA');
    if (!rsaPublic) throw new Error('the OP has no RSA key');
    // The key-confusion attack: the public key a client would fetch, used as an HMAC secret.
    const pem = createPublicKey({ key: rsaPublic as JWK & { kty: string }, format: 'jwk' }).export({
      type: 'spki',
      format: 'pem',
    });
    this.hmacSecret = new Uint8Array(Buffer.from(pem));
  }

  private op(type: KeyType) {
    const found = this.opPrivate.get(type);
    if (!found) throw new Error(`the OP has no ${type} key`);
    return found;
  }

  /** A key of the right type that is in no JWKS; generated once per bank, on first use. */
  private foreignKey(type: KeyType): KeyObject {
    let key = this.foreign.get(type);
    if (!key) {
      key =
        type === 'RSA'
          ? generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey
          : generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
      this.foreign.set(type, key);
    }
    return key;
  }

  async mint(input: MintInput): Promise<{ idToken: string; rewrite: IdTokenRewrite | null }> {
    const header = decodeProtectedHeader(input.issued);
    const payload: Record<string, unknown> = {
      ...decodeJwt(input.issued),
      at_hash: accessTokenHash(input.accessToken),
      [AUTH_REQ_ID_CLAIM]: input.authReqId,
    };
    const issuedAlg = header.alg ?? 'PS256';
    const fault = input.fault;
    if (!fault) {
      return { idToken: await this.sign(payload, header, issuedAlg, 'op'), rewrite: null };
    }

    for (const [claim, seconds] of Object.entries(fault.shift ?? {})) {
      const value = payload[claim];
      if (typeof value === 'number') payload[claim] = value + seconds;
    }
    for (const [claim, value] of Object.entries(fault.claims ?? {})) {
      if (value === null) delete payload[claim];
      else payload[claim] = value;
    }
    const alg = fault.sign === 'none' ? 'none' : fault.sign === 'hs256' ? 'HS256' : (fault.alg ?? issuedAlg);
    return {
      idToken: await this.sign(payload, header, alg, fault.sign),
      rewrite: {
        sign: fault.sign,
        alg,
        claims: Object.keys(fault.claims ?? {}),
        shift: Object.keys(fault.shift ?? {}),
      },
    };
  }

  private async sign(
    payload: Record<string, unknown>,
    issuedHeader: Record<string, unknown>,
    alg: string,
    signer: IdTokenFault['sign'],
  ): Promise<string> {
    const body = new TextEncoder().encode(JSON.stringify(payload));
    const { alg: _alg, kid: _kid, ...rest } = issuedHeader;
    if (signer === 'none') {
      // RFC 7519 §6.1: an Unsecured JWT has alg "none" and an empty signature.
      const encoded = Buffer.from(JSON.stringify({ ...rest, alg: 'none' })).toString('base64url');
      return `${encoded}.${Buffer.from(body).toString('base64url')}.`;
    }
    if (signer === 'hs256') {
      return new CompactSign(body)
        .setProtectedHeader({ ...rest, alg: 'HS256', kid: this.op('RSA').kid })
        .sign(this.hmacSecret);
    }
    const type = keyTypeOf(alg as IdTokenAlg);
    const own = this.op(type);
    // "foreign-key" keeps the OP key's kid, so a client that trusts the kid without verifying
    // the signature against that key is caught.
    const key = signer === 'foreign-key' ? this.foreignKey(type) : own.key;
    return new CompactSign(body)
      .setProtectedHeader({ ...rest, alg, ...(own.kid ? { kid: own.kid } : {}) })
      .sign(key);
  }
}
