import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  CLIENT_SECRET_ACCEPTED_AFTER_END_MS,
  clientSecretStillAccepted,
  issueClientSecret,
  verifyClientSecret,
} from '../../src/checkout/client-secret.ts';
import { createKeyRing } from '../../src/infra/crypto.ts';

const oldKey = randomBytes(32);
const newKey = randomBytes(32);

describe('the key ring (TOKEN_ENCRYPTION_KEYS)', () => {
  it('encrypts with AES-256-GCM: the plaintext is not in the sealed text, and each seal differs', () => {
    const ring = createKeyRing([oldKey]);
    const a = ring.encrypt('access-token-value', 'chk_a');
    const b = ring.encrypt('access-token-value', 'chk_a');
    expect(a).not.toContain('access-token-value');
    expect(a).not.toBe(b);
    expect(ring.decrypt(a, 'chk_a')).toBe('access-token-value');
  });

  it('rotates: a new key in front encrypts, the old one still decrypts, removing it ends that', () => {
    const sealedWithOld = createKeyRing([oldKey]).encrypt('token', 'chk_a');
    const rotated = createKeyRing([newKey, oldKey]);
    expect(rotated.decrypt(sealedWithOld, 'chk_a')).toBe('token');
    const sealedWithNew = rotated.encrypt('token', 'chk_a');
    expect(createKeyRing([newKey]).decrypt(sealedWithNew, 'chk_a')).toBe('token');
    expect(() => createKeyRing([newKey]).decrypt(sealedWithOld, 'chk_a')).toThrow(/key no longer configured/);
  });

  it('refuses a shortened authentication tag (only the full 128 bits open)', () => {
    const ring = createKeyRing([oldKey]);
    const parts = ring.encrypt('token', 'chk_a').split('.');
    parts[3] = Buffer.from(parts[3]!, 'base64url').subarray(0, 4).toString('base64url');
    expect(() => ring.decrypt(parts.join('.'), 'chk_a')).toThrow();
  });

  it('binds a sealed value to its context: it does not open for another checkout', () => {
    const ring = createKeyRing([oldKey]);
    const sealed = ring.encrypt('token', 'chk_a');
    expect(sealed.startsWith('v2.')).toBe(true);
    expect(() => ring.decrypt(sealed, 'chk_b')).toThrow();
    expect(ring.decrypt(sealed, 'chk_a')).toBe('token');
  });

  it('still opens a value sealed before contexts existed (v1), whatever the context', async () => {
    const { createCipheriv, createHash, hkdfSync } = await import('node:crypto');
    const id = createHash('sha256').update(oldKey).digest('base64url').slice(0, 8);
    const iv = randomBytes(12);
    const key = Buffer.from(hkdfSync('sha256', oldKey, Buffer.alloc(0), 'bankpay:encryption', 32));
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(`v1.${id}`));
    const body = Buffer.concat([cipher.update('old token', 'utf8'), cipher.final()]);
    const v1 = [
      'v1',
      id,
      iv.toString('base64url'),
      cipher.getAuthTag().toString('base64url'),
      body.toString('base64url'),
    ].join('.');
    expect(createKeyRing([oldKey]).decrypt(v1, 'chk_any')).toBe('old token');
  });

  it('refuses a tampered ciphertext (GCM authentication)', () => {
    const ring = createKeyRing([oldKey]);
    const parts = ring.encrypt('token', 'chk_a').split('.');
    const body = Buffer.from(parts[4]!, 'base64url');
    body[0] = (body[0]! ^ 1) & 0xff;
    parts[4] = body.toString('base64url');
    expect(() => ring.decrypt(parts.join('.'), 'chk_a')).toThrow();
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

describe('how long a clientSecret reads its checkout', () => {
  const ended = Date.parse('2026-01-01T00:00:00Z');
  it.each([
    ['open (pending)', 'pending', ended + 10 * CLIENT_SECRET_ACCEPTED_AFTER_END_MS, true],
    ['open (awaiting_approval)', 'awaiting_approval', ended + 10 * CLIENT_SECRET_ACCEPTED_AFTER_END_MS, true],
    ['ended a moment ago', 'succeeded', ended + 1, true],
    ['ended a day less a millisecond ago', 'declined', ended + CLIENT_SECRET_ACCEPTED_AFTER_END_MS - 1, true],
    ['ended a day ago', 'failed', ended + CLIENT_SECRET_ACCEPTED_AFTER_END_MS, false],
    ['ended a week ago', 'canceled', ended + 7 * CLIENT_SECRET_ACCEPTED_AFTER_END_MS, false],
  ] as const)('%s → %s', (_name, status, now, accepted) => {
    expect(CLIENT_SECRET_ACCEPTED_AFTER_END_MS).toBe(24 * 3600 * 1000);
    expect(clientSecretStillAccepted({ status, updatedAt: new Date(ended).toISOString() }, now)).toBe(
      accepted,
    );
  });
});
