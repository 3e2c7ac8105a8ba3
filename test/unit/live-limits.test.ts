/** Open streams and held reads, counted per credential and per process. */
import { describe, expect, it } from 'vitest';
import { LiveLimits } from '../../src/http/live-limits.ts';
import { ProblemError } from '../../src/http/problem.ts';

function refusal(run: () => unknown): ProblemError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ProblemError);
    return error as ProblemError;
  }
  throw new Error('not refused');
}

describe('LiveLimits', () => {
  it('refuses a credential over its limit with 429 live_limit_reached and Retry-After, until a slot is given back', () => {
    const limits = new LiveLimits({ maxStreams: 100, maxHeldReads: 100 });
    const a = limits.acquire('stream', 'checkout:1', 2);
    limits.acquire('stream', 'checkout:1', 2);
    const refused = refusal(() => limits.acquire('stream', 'checkout:1', 2));
    expect(refused).toMatchObject({ code: 'live_limit_reached', status: 429, retryAfterSeconds: 5 });
    expect(refused.message).toMatch(/2 open streams/);
    // Other credentials, and the other kind, count apart.
    limits.acquire('stream', 'checkout:2', 2);
    limits.acquire('held_read', 'checkout:1', 2);
    a();
    a(); // giving back twice gives back once
    limits.acquire('stream', 'checkout:1', 2);
    refusal(() => limits.acquire('stream', 'checkout:1', 2));
    expect(limits.open).toEqual({ stream: 3, held_read: 1 });
  });

  it('refuses anyone once the process holds its maximum of a kind', () => {
    const limits = new LiveLimits({ maxStreams: 2, maxHeldReads: 1 });
    const first = limits.acquire('stream', 'key:a', 100);
    limits.acquire('stream', 'key:b', 100);
    expect(refusal(() => limits.acquire('stream', 'key:c', 100)).message).toMatch(
      /This API process has 2 open streams/,
    );
    limits.acquire('held_read', 'key:c', 100);
    refusal(() => limits.acquire('held_read', 'key:d', 100));
    first();
    limits.acquire('stream', 'key:c', 100);
  });

  it('a limit of 0 turns the kind off', () => {
    const limits = new LiveLimits({ maxStreams: 0, maxHeldReads: 10 });
    refusal(() => limits.acquire('stream', 'key:a', 10));
    refusal(() => limits.acquire('held_read', 'key:a', 0));
  });
});
