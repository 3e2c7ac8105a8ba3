import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { issueClientSecret, verifyClientSecret } from '../../src/checkout/client-secret.ts';
import { createKeyRing } from '../../src/infra/crypto.ts';

const oldKey = randomBytes(32);
const newKey = randomBytes(32);

describe('the key ring (TOKEN_ENCRYPTION_KEYS)', () => {
  it('encrypts with AES-256-GCM: the plaintext is not in the sealed text, and each seal differs', () => {
    const ring = createKeyRing([oldKey]);
    const a = ring.encrypt('access-token-value');
    const b = ring.encrypt('access-token-value');
    expect(a).not.toContain('access-token-value');
    expect(a).not.toBe(b);
    expect(ring.decrypt(a)).toBe('access-token-value');
  });

  it('rotates: a new key in front encrypts, the old one still decrypts, removing it ends that', () => {
    const sealedWithOld = createKeyRing([oldKey]).encrypt('token');
    const rotated = createKeyRing([newKey, oldKey]);
    expect(rotated.decrypt(sealedWithOld)).toBe('token');
    const sealedWithNew = rotated.encrypt('token');
    expect(createKeyRing([newKey]).decrypt(sealedWithNew)).toBe('token');
    expect(() => createKeyRing([newKey]).decrypt(sealedWithOld)).toThrow(/key no longer configured/);
  });

  it('refuses a tampered ciphertext (GCM authentication)', () => {
    const ring = createKeyRing([oldKey]);
    const parts = ring.encrypt('token').split('.');
    const body = Buffer.from(parts[4]!, 'base64url');
    body[0] = (body[0]! ^ 1) & 0xff;
    parts[4] = body.toString('base64url');
    expect(() => ring.decrypt(parts.join('.'))).toThrow();
  });

  it('clientSecrets survive a key rotation and open only their own checkout', () => {
    const secret = issueClientSecret(createKeyRing([oldKey]), 'chk_a');
    expect(verifyClientSecret(createKeyRing([newKey, oldKey]), 'chk_a', secret)).toBe(true);
    expect(verifyClientSecret(createKeyRing([newKey]), 'chk_a', secret)).toBe(false);
    expect(verifyClientSecret(createKeyRing([oldKey]), 'chk_b', secret)).toBe(false);
    expect(verifyClientSecret(createKeyRing([oldKey]), 'chk_b', secret.replace('chk_a', 'chk_b'))).toBe(
      false,
    );
  });
});
