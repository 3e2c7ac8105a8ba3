/**
 * Our signing keys for a bank (request objects, private_key_jwt client assertions), imported once
 * from the PEM in the bank's configuration, and the public JWK set a bank registers for our client
 * (its `jwks`, or our `jwks_uri`). The `kid` is the RFC 7638 thumbprint of the public key unless
 * the bank entry names the kid the bank registered it under (`requestObjectKid`).
 */
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, importPKCS8, type JWK } from 'jose';
import type { BankConfig } from '../config.ts';
import { BankError, bankErrorCodes } from './bank.errors.ts';

export type SigningAlg = 'PS256' | 'ES256' | 'RS256';

export interface SigningKey {
  alg: SigningAlg;
  kid: string;
  /** WebCrypto key, usable by jose and by oauth4webapi's PrivateKeyJwt. */
  key: CryptoKey;
}

const expectedKeyType: Record<SigningAlg, string> = { PS256: 'rsa', ES256: 'ec', RS256: 'rsa' };

/**
 * Imports a PEM private key (PKCS#8, PKCS#1 or SEC1) for `alg`, named `kid` when given (else its
 * RFC 7638 thumbprint). A key that does not fit the algorithm is a configuration error, reported
 * without any of the key material.
 */
export async function importSigningKey(
  pem: string,
  alg: SigningAlg,
  field: string,
  kid?: string,
): Promise<SigningKey> {
  try {
    const privateKey = createPrivateKey(pem);
    if (privateKey.asymmetricKeyType !== expectedKeyType[alg]) {
      throw new BankError(
        bankErrorCodes.configurationError,
        `${field}: a ${privateKey.asymmetricKeyType ?? 'unknown'} key cannot sign ${alg}`,
        { retryable: false },
      );
    }
    const pkcs8 = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const key = await importPKCS8(pkcs8, alg);
    return { alg, kid: kid ?? (await thumbprintOf(createPublicKey(privateKey))), key };
  } catch (error) {
    if (error instanceof BankError) throw error;
    throw new BankError(bankErrorCodes.configurationError, `${field}: not a usable ${alg} private key`, {
      retryable: false,
    });
  }
}

async function thumbprintOf(publicKey: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(publicKey));
}

/** A key to publish: PEM (private or public), and what the bank should know of its use. */
export interface PublishedKey {
  pem: string;
  alg?: SigningAlg;
  kid?: string;
}

/**
 * RFC 7517 §5: the public JWK set of `keys` (private parts never leave: only the public key is
 * exported), `use: "sig"`, each with its `kid` (given, else the RFC 7638 thumbprint) and `alg` when
 * known; one entry per kid. Throws on a PEM that holds no usable key.
 */
export async function publicJwks(keys: readonly PublishedKey[]): Promise<{ keys: JWK[] }> {
  const byKid = new Map<string, JWK>();
  for (const published of keys) {
    const publicKey = /PRIVATE KEY/.test(published.pem)
      ? createPublicKey(createPrivateKey(published.pem))
      : createPublicKey(published.pem);
    const jwk = await exportJWK(publicKey);
    const kid = published.kid ?? (await thumbprintOf(publicKey));
    byKid.set(kid, { ...jwk, kid, use: 'sig', ...(published.alg ? { alg: published.alg } : {}) });
  }
  return { keys: [...byKid.values()] };
}

/**
 * The keys our client signs with at `banks` (request objects, client assertions) and the keys
 * they publish beside them, as one public JWK set: what `npm run jwks` prints for a bank's client
 * settings and `GET /.well-known/jwks.json` serves to banks that take a `jwks_uri`.
 */
export function clientJwks(banks: readonly BankConfig[]): Promise<{ keys: JWK[] }> {
  const keys: PublishedKey[] = [];
  for (const bank of banks) {
    if (bank.requestObjectKey) {
      keys.push({
        pem: bank.requestObjectKey,
        ...(bank.requestObjectSigningAlg ? { alg: bank.requestObjectSigningAlg } : {}),
        ...(bank.requestObjectKid ? { kid: bank.requestObjectKid } : {}),
      });
    }
    if (bank.clientAssertionKey && bank.clientAssertionKey !== bank.requestObjectKey) {
      const alg = bank.clientAssertionSigningAlg ?? bank.requestObjectSigningAlg;
      keys.push({ pem: bank.clientAssertionKey, ...(alg ? { alg } : {}) });
    }
    for (const pem of bank.publishedKeys) keys.push({ pem });
  }
  return publicJwks(keys);
}
