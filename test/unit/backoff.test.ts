/**
 * backoffMs: exponential backoff for a bank that did not answer, 1 s, 2 s, 4 s … from the first
 * error on, the base capped at 60 s, then a jitter of ±20 % (0.8 to 1.2 times the base).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backoffMs } from '../../src/jobs/bank-step.ts';

/** Consecutive errors → the base before jitter, in ms. */
const BASES: Array<[number, number]> = [
  [0, 1_000],
  [1, 1_000],
  [2, 2_000],
  [3, 4_000],
  [4, 8_000],
  [5, 16_000],
  [6, 32_000],
  [7, 60_000], // 64 s, capped
  [8, 60_000],
  [50, 60_000],
  [2_000, 60_000], // 2^1999 s overflows to Infinity: still capped
];

/** The largest value Math.random can return. */
const TOP = 1 - 2 ** -53;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('backoffMs with Math.random fixed', () => {
  it.each([
    // errors, random 0, random 0.25, random 0.5, random TOP
    [0, 800, 900, 1_000, 1_200],
    [1, 800, 900, 1_000, 1_200],
    [2, 1_600, 1_800, 2_000, 2_400],
    [3, 3_200, 3_600, 4_000, 4_800],
    [4, 6_400, 7_200, 8_000, 9_600],
    [5, 12_800, 14_400, 16_000, 19_200],
    [6, 25_600, 28_800, 32_000, 38_400],
    [7, 48_000, 54_000, 60_000, 72_000],
    [8, 48_000, 54_000, 60_000, 72_000],
    [50, 48_000, 54_000, 60_000, 72_000],
    [2_000, 48_000, 54_000, 60_000, 72_000],
  ])('%d errors → %d, %d, %d, %d ms', (errors, atZero, atQuarter, atHalf, atTop) => {
    const random = vi.spyOn(Math, 'random');
    const at = (r: number) => {
      random.mockReturnValue(r);
      return backoffMs(errors);
    };
    expect([at(0), at(0.25), at(0.5), at(TOP)]).toEqual([atZero, atQuarter, atHalf, atTop]);
  });

  it.each([
    [0.123456789, 849], // 1000 × (0.8 + 0.123456789 × 0.4) = 849.38…
    [0.124, 850], // 849.6
  ])('rounds to the nearest millisecond (random %d → %d ms)', (random, ms) => {
    vi.spyOn(Math, 'random').mockReturnValue(random);
    expect(backoffMs(1)).toBe(ms);
  });
});

describe('backoffMs with real jitter', () => {
  it.each(BASES)('%d errors: whole ms, 0.8 to 1.2 × %d, on both sides', (errors, base) => {
    const samples = Array.from({ length: 500 }, () => backoffMs(errors));
    for (const ms of samples) {
      expect(Number.isInteger(ms)).toBe(true);
      expect(ms).toBeGreaterThanOrEqual(base * 0.8);
      expect(ms).toBeLessThanOrEqual(base * 1.2);
    }
    // With 500 draws, a sample on each side of the base is all but certain (1 - 2^-499).
    expect(Math.min(...samples)).toBeLessThan(base);
    expect(Math.max(...samples)).toBeGreaterThan(base);
  });

  it('never more than 72 s (60 s plus 20 %), however many errors', () => {
    for (let errors = 0; errors <= 100; errors++) expect(backoffMs(errors)).toBeLessThanOrEqual(72_000);
  });
});
