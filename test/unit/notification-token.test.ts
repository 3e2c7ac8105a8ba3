import { describe, expect, it } from 'vitest';
import {
  clientNotificationTokenMatches,
  newClientNotificationToken,
} from '../../src/notifications/notification-token.ts';

describe('client_notification_token (CIBA Core §7.1)', () => {
  it('is 256 random bits as a Bearer token, fresh each time, stored as its SHA-256', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1_000; i++) {
      const { token, hash } = newClientNotificationToken();
      // oidc-provider's rule for a client_notification_token (RFC 6750 token68 characters).
      expect(token).toMatch(/^[A-Za-z0-9._~+/-]+=*$/);
      expect(Buffer.from(token, 'base64url')).toHaveLength(32);
      expect(hash).toMatch(/^[0-9a-f]{64}$/);
      expect(hash).not.toContain(token);
      seen.add(token);
    }
    expect(seen.size).toBe(1_000);
  });

  it('matches only the token whose hash was stored', () => {
    const a = newClientNotificationToken();
    const b = newClientNotificationToken();
    expect(clientNotificationTokenMatches(a.token, a.hash)).toBe(true);
    expect(clientNotificationTokenMatches(b.token, a.hash)).toBe(false);
    expect(clientNotificationTokenMatches(a.hash, a.hash)).toBe(false);
    expect(clientNotificationTokenMatches(`${a.token}x`, a.hash)).toBe(false);
    expect(clientNotificationTokenMatches('', a.hash)).toBe(false);
  });

  it('never matches without a well-formed stored hash', () => {
    const { token } = newClientNotificationToken();
    expect(clientNotificationTokenMatches(token, null)).toBe(false);
    expect(clientNotificationTokenMatches(token, '')).toBe(false);
    expect(clientNotificationTokenMatches(token, 'zz'.repeat(32))).toBe(false);
    expect(clientNotificationTokenMatches('no stored client_notification_token', null)).toBe(false);
  });
});
