/**
 * Our signing keys for a bank (request objects, private_key_jwt client assertions), imported once
 * from the PEM in the bank's configuration. The `kid` is the RFC 7638 thumbprint of the public key:
 * what the bank registered in our client's `jwks` (the sandbox computes exactly this).
 */
import { createPrivateKey, createPublicKey } from 'node:crypto';
import { type CryptoKey, calculateJwkThumbprint, exportJWK, importPKCS8 } from 'jose';
import { BankError, bankErrorCodes } from './bank.errors.ts';

export type SigningAlg = 'PS256' | 'ES256';

export interface SigningKey {
  alg: SigningAlg;
  kid: string;
  /** WebCrypto key, usable by jose and by oauth4webapi's PrivateKeyJwt. */
  key: CryptoKey;
}

const expectedKeyType: Record<SigningAlg, string> = { PS256: 'rsa', ES256: 'ec' };

/**
 * Imports a PEM private key (PKCS#8, PKCS#1 or SEC1) for `alg`. A key that does not fit the
 * algorithm is a configuration error, reported without any of the key material.
 */
export async function importSigningKey(pem: string, alg: SigningAlg, field: string): Promise<SigningKey> {
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
    const kid = await calculateJwkThumbprint(await exportJWK(createPublicKey(privateKey)));
    return { alg, kid, key };
  } catch (error) {
    if (error instanceof BankError) throw error;
    throw new BankError(bankErrorCodes.configurationError, `${field}: not a usable ${alg} private key`, {
      retryable: false,
    });
  }
}
