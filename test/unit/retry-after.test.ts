/**
 * parseRetryAfter: RFC 9110 §10.2.3 Retry-After, delay-seconds (1*DIGIT) or an HTTP-date (§5.6.7),
 * as whole seconds from `now`, never negative; undefined when absent or unparseable.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MAX_RETRY_AFTER_SECONDS, parseRetryAfter } from '../../src/integrations/bank.errors.ts';

/** 08:49:37.000 GMT on 6 November 1994, the date of RFC 9110's examples. */
const NOW = Date.UTC(1994, 10, 6, 8, 49, 37);

afterEach(() => {
  vi.unstubAllEnvs();
});

describe('parseRetryAfter: delay-seconds', () => {
  it.each([
    ['0', 0],
    ['1', 1],
    ['120', 120],
    ['007', 7],
    [' 120 ', 120],
    ['\t30\t', 30],
    ['86400', 86_400],
  ])('%j → %d seconds', (value, seconds) => {
    expect(parseRetryAfter(value, NOW)).toBe(seconds);
  });

  it.each([0, NOW, Date.UTC(2100, 0, 1)])('does not depend on now (%d)', (now) => {
    expect(parseRetryAfter('120', now)).toBe(120);
  });

  it.each([
    ['a day and a second', '86401'],
    ['2^31 seconds', '2147483648'],
    ['beyond 2^53 seconds', '99999999999999999999'],
    ['400 digits', '9'.repeat(400)],
  ])('%s: capped at one day (MAX_RETRY_AFTER_SECONDS)', (_label, value) => {
    expect(MAX_RETRY_AFTER_SECONDS).toBe(86_400);
    expect(parseRetryAfter(value, NOW)).toBe(86_400);
  });
});

describe('parseRetryAfter: HTTP-date', () => {
  it.each([
    ['IMF-fixdate, 2 minutes ahead', 'Sun, 06 Nov 1994 08:51:37 GMT', NOW, 120],
    ['IMF-fixdate, 1 day ahead', 'Mon, 07 Nov 1994 08:49:37 GMT', NOW, 86_400],
    ['IMF-fixdate, 1 s ahead', 'Sun, 06 Nov 1994 08:49:38 GMT', NOW, 1],
    ['IMF-fixdate, now', 'Sun, 06 Nov 1994 08:49:37 GMT', NOW, 0],
    ['IMF-fixdate, 1 s ago', 'Sun, 06 Nov 1994 08:49:36 GMT', NOW, 0],
    ['IMF-fixdate, a year ago', 'Sat, 06 Nov 1993 08:49:37 GMT', NOW, 0],
    ['IMF-fixdate, surrounding whitespace', '  Sun, 06 Nov 1994 08:51:37 GMT ', NOW, 120],
    ['IMF-fixdate, 1.5 s ahead of now (rounded up)', 'Sun, 06 Nov 1994 08:49:39 GMT', NOW + 500, 2],
    ['IMF-fixdate, 0.5 s ahead of now (rounded up)', 'Sun, 06 Nov 1994 08:49:38 GMT', NOW + 500, 1],
    ['IMF-fixdate, 0.3 s ahead of now (rounded up)', 'Sun, 06 Nov 1994 08:49:38 GMT', NOW + 700, 1],
    ['IMF-fixdate, 1.3 s ahead of now (rounded up)', 'Sun, 06 Nov 1994 08:49:39 GMT', NOW + 700, 2],
    ['IMF-fixdate, 0.5 s before now', 'Sun, 06 Nov 1994 08:49:37 GMT', NOW + 500, 0],
    ['obsolete RFC 850 date, 2 minutes ahead', 'Sunday, 06-Nov-94 08:51:37 GMT', NOW, 120],
    ['obsolete RFC 850 date, in the past', 'Sunday, 06-Nov-94 08:00:00 GMT', NOW, 0],
    ['IMF-fixdate, ten years ahead: capped at one day', 'Fri, 06 Nov 2004 08:49:37 GMT', NOW, 86_400],
    [
      'obsolete RFC 850 date, two-digit year read in the right century',
      'Tuesday, 07-Nov-30 08:49:37 GMT',
      Date.UTC(2026, 0, 1),
      86_400,
    ],
  ])('%s → %d seconds', (_label, value, now, seconds) => {
    expect(parseRetryAfter(value, now)).toBe(seconds);
  });

  it('asctime date (no zone: GMT by RFC 9110 §5.6.7), where the local time zone is UTC', () => {
    vi.stubEnv('TZ', 'UTC');
    expect(parseRetryAfter('Sun Nov  6 08:51:37 1994', NOW)).toBe(120);
  });
});

describe('parseRetryAfter: absent or unparseable → undefined', () => {
  it.each([
    ['null', null],
    ['undefined', undefined],
    ['empty', ''],
    ['whitespace', '   '],
    ['a word', 'soon'],
    ['a unit', '5s'],
    ['seconds in words', '5 seconds'],
    ['exponent notation', '1e3'],
    ['hexadecimal', '0x10'],
    ['Infinity', 'Infinity'],
    ['NaN', 'NaN'],
    ['Arabic-Indic digits', '١٢'],
    ['full-width digits', '１２'],
  ])('%s', (_label, value) => {
    expect(parseRetryAfter(value, NOW)).toBeUndefined();
  });
});

describe('parseRetryAfter: what a lenient date parser would guess at is refused', () => {
  it.each([
    ['negative', '-5'],
    ['signed', '+5'],
    ['a decimal fraction', '1.5'],
    ['a decimal comma', '1,5'],
    ['garbage with a number', 'garbage 1'],
    ['garbage with a future year', 'garbage 2099'],
    ['an ISO 8601 date', '2099-01-01T00:00:00Z'],
    ['an IMF-fixdate in another zone', 'Sun, 06 Nov 1994 08:51:37 CET'],
    ['an IMF-fixdate with an impossible hour', 'Sun, 06 Nov 1994 25:51:37 GMT'],
  ])('%s (%j) → undefined', (_label, value) => {
    expect(parseRetryAfter(value, Date.UTC(2026, 0, 1))).toBeUndefined();
  });

  it.each(['America/New_York', 'Asia/Kolkata', 'Pacific/Kiritimati'])(
    'an asctime date is GMT whatever the local time zone (%s)',
    (zone) => {
      vi.stubEnv('TZ', zone);
      expect(parseRetryAfter('Sun Nov  6 08:51:37 1994', NOW)).toBe(120);
    },
  );
});
