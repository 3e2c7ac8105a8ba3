/**
 * Secrets at rest and derived secrets, from the configured key ring (TOKEN_ENCRYPTION_KEYS):
 * the first key encrypts and signs, every key decrypts and verifies, so keys rotate without
 * downtime (add the new key first, keep the old one until nothing uses it).
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';

/**
 * v1: the additional authenticated data is the version and key id. v2: also the `context` the
 * caller binds the value to (a checkout id), so a sealed value copied to another row does not open
 * there. v1 values (sealed before contexts existed) still decrypt, without a context.
 */
const V1 = 'v1';
const V2 = 'v2';

export interface KeyRing {
  /**
   * AES-256-GCM: `v2.<key id>.<iv>.<tag>.<ciphertext>` (base64url parts), authenticated together
   * with `context` (e.g. the checkout id the value belongs to): decrypting needs the same context.
   */
  encrypt(plaintext: string, context: string): string;
  /** Throws when the format, key, context or tag does not match. */
  decrypt(sealed: string, context: string): string;
  /** HMAC-SHA-256 under a purpose-specific sub-key (HKDF), with the current key. */
  sign(purpose: string, message: string): string;
  /** Constant-time check against every key of the ring. */
  verify(purpose: string, message: string, signature: string): boolean;
}

function keyId(key: Buffer): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 8);
}

export function createKeyRing(keys: Buffer[]): KeyRing {
  if (keys.length === 0) throw new Error('the key ring needs at least one key');
  const byId = new Map(keys.map((k) => [keyId(k), k]));
  const current = keys[0]!;
  const currentId = keyId(current);
  const subKeys = new Map<string, Buffer>();
  const subKey = (key: Buffer, purpose: string) => {
    const cacheKey = `${keyId(key)}:${purpose}`;
    let derived = subKeys.get(cacheKey);
    if (!derived) {
      derived = Buffer.from(hkdfSync('sha256', key, Buffer.alloc(0), `bankpay:${purpose}`, 32));
      subKeys.set(cacheKey, derived);
    }
    return derived;
  };
  return {
    encrypt(plaintext, context) {
      const iv = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', subKey(current, 'encryption'), iv);
      cipher.setAAD(Buffer.from(`${V2}.${currentId}.${context}`));
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return [
        V2,
        currentId,
        iv.toString('base64url'),
        cipher.getAuthTag().toString('base64url'),
        ciphertext.toString('base64url'),
      ].join('.');
    },
    decrypt(sealed, context) {
      const [version, id, iv, tag, ciphertext] = sealed.split('.');
      const key = id ? byId.get(id) : undefined;
      if ((version !== V1 && version !== V2) || !key || !iv || !tag || ciphertext === undefined) {
        throw new Error('cannot decrypt: unknown format or key no longer configured');
      }
      const decipher = createDecipheriv(
        'aes-256-gcm',
        subKey(key, 'encryption'),
        Buffer.from(iv, 'base64url'),
        // Only the full 128-bit tag: a shortened one would weaken forgery protection (NIST SP 800-38D §5.2.1.2).
        { authTagLength: 16 },
      );
      decipher.setAAD(Buffer.from(version === V1 ? `${version}.${id}` : `${version}.${id}.${context}`));
      decipher.setAuthTag(Buffer.from(tag, 'base64url'));
      return Buffer.concat([
        decipher.update(Buffer.from(ciphertext, 'base64url')),
        decipher.final(),
      ]).toString('utf8');
    },
    sign(purpose, message) {
      return createHmac('sha256', subKey(current, purpose)).update(message).digest('base64url');
    },
    verify(purpose, message, signature) {
      const presented = Buffer.from(signature);
      return keys.some((key) => {
        const expected = Buffer.from(
          createHmac('sha256', subKey(key, purpose)).update(message).digest('base64url'),
        );
        return expected.length === presented.length && timingSafeEqual(expected, presented);
      });
    },
  };
}
