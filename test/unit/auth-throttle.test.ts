/**
 * The failed-authentication throttle on its own (src/http/auth-throttle.ts): the budget per
 * address, credentials known to be valid passing it, and memory that no sender can grow. The
 * HTTP behaviour is in test/e2e/security.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { AuthThrottle, addressKey } from '../../src/http/auth-throttle.ts';

describe('addressKey', () => {
  it.each([
    ['198.51.100.7', '198.51.100.7'],
    ['::ffff:198.51.100.7', '198.51.100.7'],
    ['2001:db8:1:2:aaaa:bbbb:cccc:dddd', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['2001:0db8::1', '2001:db8:0:0::/64'],
    ['::1', '0:0:0:0::/64'],
    ['64:ff9b::198.51.100.7', '64:ff9b:0:0::/64'],
    ['fe80::1%eth0', 'fe80:0:0:0::/64'],
    ['not an address', 'unknown'],
    [undefined, 'unknown'],
  ])('counts %s as %s', (ip, key) => {
    expect(addressKey(ip)).toBe(key);
  });
});

describe('AuthThrottle', () => {
  const options = { maxFailures: 3, windowMs: 10_000, addressesKept: 100, credentialsKept: 100 };

  it('refuses unknown credentials from an address that spent its budget, until the window ends', () => {
    let now = 1_000_000;
    const throttle = new AuthThrottle({ ...options, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(throttle.refusal('a', `guess${i}`)).toBeUndefined();
      throttle.failed('a', `guess${i}`);
    }
    expect(throttle.refusal('a', 'guess3')).toBe(10);
    expect(throttle.refusal('b', 'guess3')).toBeUndefined();
    now += 9_001;
    expect(throttle.refusal('a', 'guess3')).toBe(1);
    now += 1_000;
    expect(throttle.refusal('a', 'guess3')).toBeUndefined();
  });

  it('lets a credential known to be valid through, and forgets it once it is refused', () => {
    const throttle = new AuthThrottle(options);
    throttle.verified('good');
    for (let i = 0; i < 3; i++) throttle.failed('a', `guess${i}`);
    expect(throttle.refusal('a', 'good')).toBeUndefined();
    // Revoked since: verified again, refused, and from then on throttled like any other.
    throttle.failed('a', 'good');
    expect(throttle.refusal('a', 'good')).toBeGreaterThan(0);
  });

  it('holds at most the configured number of addresses and credentials', () => {
    const throttle = new AuthThrottle(options);
    for (let i = 0; i < 10_000; i++) {
      throttle.failed(`address${i}`, `guess${i}`);
      throttle.verified(`credential${i}`);
    }
    expect(throttle.sizes).toEqual({ addresses: 100, credentials: 100 });
    // The most recent ones are the ones kept.
    expect(throttle.refusal('x', 'credential9999')).toBeUndefined();
  });
});
