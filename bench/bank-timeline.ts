/**
 * Poll lateness as the bank saw it: the gaps between token polls in the sandbox bank's own
 * timelines, so that (c) and (f) are judged by the same clock whichever client polled.
 */
import type { Bench } from './bench.context.ts';
import { INTERVAL_MS } from './bench.options.ts';
import { inLanes, summarize } from './lib.ts';

export type Lateness = ReturnType<typeof summarize> & { censored: number };

/**
 * Lateness at the bank, for a sample of requests: every gap between consecutive token polls that
 * ends inside [from, to], minus the interval; plus, for a request whose next poll is overdue at
 * `to` (counting from its last poll, or from its bc-authorize when it has none), the open gap so
 * far (a lower bound: counted in `censored`), so that a saturated worker shows as late rather
 * than as no data.
 */
export async function timelineLateness(bench: Bench, authReqIds: string[], from: number, to: number) {
  const lateness: number[] = [];
  let polls = 0;
  let censored = 0;
  await inLanes(authReqIds.length, 8, async (i) => {
    const res = await fetch(`${bench.control}/requests/${authReqIds[i]}/timeline`);
    if (!res.ok) return void (await res.arrayBuffer());
    const t = (await res.json()) as { bcAuthorize: { at: number }; polls: Array<{ at: number }> };
    const at = [t.bcAuthorize.at, ...t.polls.map((p) => p.at)].filter((x) => x <= to);
    polls += at.filter((x, j) => j > 0 && x >= from).length;
    for (let j = 2; j < at.length; j++) {
      if (at[j]! >= from) lateness.push(at[j]! - at[j - 1]! - INTERVAL_MS);
    }
    const open = to - at[at.length - 1]! - INTERVAL_MS;
    if (open > 0) {
      lateness.push(open);
      censored++;
    }
  });
  return {
    lateness: { ...summarize(lateness), censored },
    pollsPerSecondEstimate: (polls / authReqIds.length) * (1000 / (to - from)),
  };
}

/** `n` of `xs` at random (Fisher–Yates on a copy). */
export function sample<T>(xs: T[], n: number): T[] {
  const copy = [...xs];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}
