/**
 * Key material: the OP's own signing keys (made at the first start; bank.ts keeps them in its
 * journal when it has one) and the clients' public keys, read from the files the bank is given.
 */
import { readFileSync } from 'node:fs';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importSPKI, type JWK } from 'jose';

export interface OpKeys {
  /** Private JWKs for oidc-provider's `jwks` (RSA first: PS256 ID Tokens and access tokens). */
  privateJwks: JWK[];
  /** The same keys, public members only (what the payment API verifies with). */
  publicJwks: { keys: JWK[] };
}

async function withKid(jwk: JWK): Promise<JWK> {
  return { ...jwk, kid: await calculateJwkThumbprint(jwk), use: 'sig' };
}

/** An RSA-2048 key (PS256/RS256) and an EC P-256 key (ES256), generated at start. */
export async function generateOpKeys(): Promise<OpKeys> {
  const rsa = await generateKeyPair('PS256', { extractable: true, modulusLength: 2048 });
  const ec = await generateKeyPair('ES256', { extractable: true });
  const privateJwks: JWK[] = [];
  const publicJwks: JWK[] = [];
  for (const pair of [rsa, ec]) {
    const pub = await withKid(await exportJWK(pair.publicKey));
    publicJwks.push(pub);
    privateJwks.push({ ...(await exportJWK(pair.privateKey)), kid: pub.kid, use: 'sig' });
  }
  return { privateJwks, publicJwks: { keys: publicJwks } };
}

/** A client's registered public key (jwks member of its metadata), from a PEM SPKI file. */
export async function publicJwkFromPem(path: string, alg: 'PS256' | 'ES256'): Promise<JWK> {
  const key = await importSPKI(readFileSync(path, 'utf8'), alg, { extractable: true });
  return withKid(await exportJWK(key));
}
