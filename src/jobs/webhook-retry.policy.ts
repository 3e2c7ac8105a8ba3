/**
 * When a failed webhook delivery is tried again (DESIGN.md §7.3): exponential backoff with jitter,
 * the first retry within a minute, for at least 3 days. The delivery is given up only once it is
 * older than RETRY_FOR_HOURS (webhook-deliveries.repository.ts), so the schedule's length and the
 * jitter cannot shorten the 3 days; after the schedule's last step, that step repeats.
 *
 * The default schedule, after the first attempt fails (README "Webhooks"):
 * 30 s, 2 min, 10 min, 30 min, 1 h, 2 h, 4 h, 8 h, then every 12 h, each ±20 %:
 * about 14 attempts over 3 days and a few hours.
 */

/** Seconds to wait after the 1st, 2nd, … failed attempt; the last entry repeats. */
export const DEFAULT_RETRY_SCHEDULE_SECONDS: readonly number[] = [
  30, 120, 600, 1_800, 3_600, 7_200, 14_400, 28_800, 43_200,
];

/** The jitter: each wait is scaled by a factor in [1 - JITTER, 1 + JITTER). */
export const JITTER = 0.2;

/**
 * The wait before the next attempt (ms) after attempt number `attempt` (1-based) failed. `random`
 * is in [0, 1) (Math.random by default; tests pass their own). Jitter spreads the retries of many
 * deliveries that failed together (a receiver outage) so they do not all return at once.
 */
export function retryDelayMs(
  attempt: number,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_SECONDS,
  random: () => number = Math.random,
): number {
  const step = schedule[Math.min(Math.max(attempt, 1), schedule.length) - 1] ?? 60;
  return Math.round(step * 1000 * (1 - JITTER + 2 * JITTER * random()));
}
