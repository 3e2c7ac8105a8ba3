/**
 * When a failed webhook delivery is tried again (src/jobs/webhook-retry.policy.ts, DESIGN.md
 * §7.3): exponential backoff, the first retry within a minute, each wait ±20 %, and a schedule that
 * never runs out before the 3 days (the give-up is by the delivery's age, RETRY_FOR_HOURS; see
 * test/integration/webhook-deliveries.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { DEFAULT_RETRY_SCHEDULE_SECONDS, JITTER, retryDelayMs } from '../../src/jobs/webhook-retry.policy.ts';
import { RETRY_FOR_HOURS } from '../../src/notifications/webhook-deliveries.repository.ts';
import { testEnv } from '../support/env.ts';

const HOUR = 3_600_000;
/** The extremes of the jitter: random() is in [0, 1). */
const LOWEST = () => 0;
const HIGHEST = () => 1 - Number.EPSILON;
const MIDDLE = () => 0.5;

describe('retryDelayMs', () => {
  it('retries the first failure within a minute, whatever the jitter', () => {
    for (const random of [LOWEST, MIDDLE, HIGHEST]) {
      expect(retryDelayMs(1, DEFAULT_RETRY_SCHEDULE_SECONDS, random)).toBeLessThanOrEqual(60_000);
    }
    expect(retryDelayMs(1, DEFAULT_RETRY_SCHEDULE_SECONDS, MIDDLE)).toBe(30_000);
  });

  it('backs off: the waits never shrink from one attempt to the next (without jitter)', () => {
    const waits = Array.from({ length: 30 }, (_, i) => retryDelayMs(i + 1, undefined, MIDDLE));
    for (let i = 1; i < waits.length; i++) expect(waits[i]).toBeGreaterThanOrEqual(waits[i - 1] ?? 0);
    expect(waits.slice(0, 9)).toEqual(DEFAULT_RETRY_SCHEDULE_SECONDS.map((s) => s * 1000));
  });

  it('repeats the last step after the schedule, so retries go on for 3 days even with the shortest jitter', () => {
    const last = (DEFAULT_RETRY_SCHEDULE_SECONDS.at(-1) ?? 0) * 1000;
    expect(retryDelayMs(1_000, undefined, MIDDLE)).toBe(last);
    expect(retryDelayMs(Number.MAX_SAFE_INTEGER, undefined, MIDDLE)).toBe(last);
    // Every jitter at its lowest: the attempts still span RETRY_FOR_HOURS, in a bounded number.
    let elapsed = 0;
    let attempt = 1;
    while (elapsed < RETRY_FOR_HOURS * HOUR) elapsed += retryDelayMs(attempt++, undefined, LOWEST);
    expect(attempt).toBeLessThan(30);
    // ... and at its highest, the last retry before the give-up still comes within the 3 days.
    elapsed = 0;
    attempt = 1;
    while (elapsed < RETRY_FOR_HOURS * HOUR) elapsed += retryDelayMs(attempt++, undefined, HIGHEST);
    expect(attempt).toBeGreaterThanOrEqual(10);
  });

  it('takes an attempt number below 1 as the first', () => {
    expect(retryDelayMs(0, undefined, MIDDLE)).toBe(30_000);
    expect(retryDelayMs(-5, undefined, MIDDLE)).toBe(30_000);
  });

  it('jitters every step within ±20 %', () => {
    expect(JITTER).toBe(0.2);
    for (let attempt = 1; attempt <= DEFAULT_RETRY_SCHEDULE_SECONDS.length + 2; attempt++) {
      const step = retryDelayMs(attempt, undefined, MIDDLE);
      expect(retryDelayMs(attempt, undefined, LOWEST)).toBe(Math.round(step * 0.8));
      expect(retryDelayMs(attempt, undefined, HIGHEST)).toBeLessThanOrEqual(Math.round(step * 1.2));
      expect(retryDelayMs(attempt, undefined, HIGHEST)).toBeGreaterThan(Math.round(step * 1.19));
    }
  });

  it('spreads retries that failed together (Math.random by default), all within the bounds', () => {
    const waits = Array.from({ length: 2_000 }, () => retryDelayMs(2));
    expect(Math.min(...waits)).toBeGreaterThanOrEqual(96_000);
    expect(Math.max(...waits)).toBeLessThanOrEqual(144_000);
    // Spread over the range, not bunched: both ends of it are reached.
    expect(Math.min(...waits)).toBeLessThan(100_000);
    expect(Math.max(...waits)).toBeGreaterThan(140_000);
    expect(new Set(waits).size).toBeGreaterThan(1_000);
  });

  it('follows a configured schedule (WEBHOOK_RETRY_SCHEDULE), its last step repeating', () => {
    expect(retryDelayMs(1, [1], MIDDLE)).toBe(1_000);
    expect(retryDelayMs(7, [1], MIDDLE)).toBe(1_000);
    expect(retryDelayMs(2, [5, 60, 3600], LOWEST)).toBe(48_000);
    expect(retryDelayMs(9, [5, 60, 3600], HIGHEST)).toBeLessThanOrEqual(4_320_000);
    // An empty schedule (the configuration refuses one) still waits, a minute.
    expect(retryDelayMs(1, [], MIDDLE)).toBe(60_000);
  });
});

describe('WEBHOOK_RETRY_SCHEDULE', () => {
  const config = (value: string | undefined) =>
    loadConfig(testEnv(value === undefined ? {} : { WEBHOOK_RETRY_SCHEDULE: value }));

  it('defaults to the documented schedule', () => {
    expect(config(undefined).webhooks.retryScheduleSeconds).toEqual([...DEFAULT_RETRY_SCHEDULE_SECONDS]);
  });

  it.each(['0', '-1', '1.5', 'x', '1,,2', '86401', Array.from({ length: 21 }, () => '1').join(',')])(
    'refuses %j',
    (value) => {
      expect(() => config(value)).toThrow(/WEBHOOK_RETRY_SCHEDULE must be/);
    },
  );

  it('accepts whole seconds, spaces around them', () => {
    expect(config(' 1, 30 ,86400').webhooks.retryScheduleSeconds).toEqual([1, 30, 86_400]);
  });
});
