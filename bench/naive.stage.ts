/**
 * (f) The naive alternative to (c): one openid-client poll loop per checkout, in one process
 * (bench/naive-child.ts), measured the same way (lateness at the bank, CPU, memory). It is the
 * reference that says what the durable token poller costs, or saves, against the obvious design.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sample, timelineLateness } from './bank-timeline.ts';
import { type Bench, log } from './bench.context.ts';
import { INTERVAL_MS, LOGIN, plan } from './bench.options.ts';
import { resetState } from './checkouts.ts';
import { type Child, round, rssBytes, sleep } from './lib.ts';
import { coresBetween, cpuOf } from './readings.ts';

export type NaiveStage = Awaited<ReturnType<typeof measureNaiveAt>>;

export async function measureNaive(bench: Bench): Promise<Record<string, NaiveStage>> {
  const naive: Record<string, NaiveStage> = {};
  for (const K of plan.naiveKs) naive[K] = await measureNaiveAt(bench, K);
  return naive;
}

/** The child's JSON event lines (`setup`, `started`), collected as they come. */
function naiveEvents(child: Child) {
  const events: Array<Record<string, number | string>> = [];
  child.onLine((line) => {
    if (line.startsWith('{"event"')) events.push(JSON.parse(line) as Record<string, number | string>);
  });
  return async (name: string, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const e = events.find((x) => x.event === name);
      if (e) return e;
      if (child.process.exitCode !== null) throw new Error(`naive child exited:\n${child.tail()}`);
      if (Date.now() > deadline) throw new Error(`naive child: no ${name} in time:\n${child.tail()}`);
      await sleep(100);
    }
  };
}

async function measureNaiveAt(bench: Bench, K: number) {
  log(`(f) K=${K}: naive openid-client loops`);
  await resetState(bench);
  const idsFile = join(bench.dir, `naive-${K}.json`);
  const child = bench.processes.startChild('bench/naive-child.ts', {
    NAIVE_K: String(K),
    NAIVE_IDS_FILE: idsFile,
    NAIVE_LOGIN: LOGIN,
  });
  const waitEvent = naiveEvents(child);
  const setup = await waitEvent('setup', 30_000);
  const start = await waitEvent('started', 60_000 + K * 20);
  const W = plan.window(K);
  const pids = { naive: child.pid, bench: 0 };
  const windowStart = Date.now();
  const cpu0 = cpuOf(bench, pids);
  let rssMax = rssBytes(child.pid);
  while (Date.now() < windowStart + W * 1000) {
    await sleep(1_000);
    rssMax = Math.max(rssMax, rssBytes(child.pid));
  }
  const windowEnd = Date.now();
  const cores = coresBetween(cpu0, cpuOf(bench, pids), (windowEnd - windowStart) / 1000);
  await bench.processes.stopChild(child);
  const authReqIds = JSON.parse(readFileSync(idsFile, 'utf8')) as string[];
  const late = await timelineLateness(bench, sample(authReqIds, plan.latenessSample), windowStart, windowEnd);
  const stage = {
    K,
    windowSeconds: round((windowEnd - windowStart) / 1000, 1),
    startSeconds: round(Number(start.ms) / 1000, 1),
    pollsPerSecondFromBankSample: round(late.pollsPerSecondEstimate * K),
    expectedPollsPerSecond: round(K / (INTERVAL_MS / 1000)),
    cores,
    rssMiB: round(rssMax / 2 ** 20, 1),
    rssPerLoop: round((Number(start.rss) - Number(setup.rss)) / K),
    latenessMs: late.lateness,
  };
  log(
    `(f) K=${K} naive: ~${stage.pollsPerSecondFromBankSample} polls/s, lateness p50 ${late.lateness.p50} ms p99 ${late.lateness.p99} ms (n=${late.lateness.n}), cores ${JSON.stringify(cores)}, RSS ${stage.rssMiB} MiB (${stage.rssPerLoop} B per loop)`,
  );
  return stage;
}
