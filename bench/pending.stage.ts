/**
 * (c) K checkouts awaiting approval at once, nothing else running: token polls per second, CPU
 * per component, Redis memory, PostgreSQL writes and statements per poll, and poll lateness at
 * the bank (the gap between polls minus the 5 s interval). It is the scale figure: how many
 * customers can be deciding at once on one worker. (d) and (e) are measured on the same K.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { approveSample } from './approval.stage.ts';
import { sample, timelineLateness } from './bank-timeline.ts';
import { type Bench, log } from './bench.context.ts';
import { flags, INTERVAL_MS, plan } from './bench.options.ts';
import { resetState } from './checkouts.ts';
import { round, sleep, summarize } from './lib.ts';
import { memoryPerCheckout, memorySnapshot } from './memory.stage.ts';
import { rampUp } from './pending.ramp.ts';
import { claimPlans, measureWindow } from './pending.window.ts';
import { type ProfileSummary, profileFile, summarizeProfile } from './profile.ts';

export type PendingStage = Awaited<ReturnType<typeof measurePendingAt>>;

export async function measurePending(bench: Bench): Promise<Record<string, PendingStage>> {
  const pending: Record<string, PendingStage> = {};
  for (const K of plan.ks) pending[K] = await measurePendingAt(bench, K);
  return pending;
}

async function measurePendingAt(bench: Bench, K: number) {
  log(`(c) K=${K}: starting API and worker`);
  await resetState(bench);
  const api = await bench.processes.startApi();
  const workerProfDir = join(bench.dir, `worker-prof-${K}`);
  if (flags['profile-worker']) mkdirSync(workerProfDir);
  const workerSpawnedAt = Date.now();
  const worker = bench.processes.startChild(
    'src/worker.ts',
    {},
    flags['profile-worker'] ? ['--cpu-prof', `--cpu-prof-dir=${workerProfDir}`] : [],
  );
  const ramp = await rampUp(bench, api.url, worker, K);
  const after = await memorySnapshot(bench, worker.pid);
  const plans = await claimPlans(bench, K);
  const memory = memoryPerCheckout(K, ramp.base, after);

  // Steady state: K checkouts polling, nothing else.
  if (plan.settle(K) > 0) {
    log(`K=${K}: ${plan.settle(K)} s to settle before the window`);
    await sleep(plan.settle(K) * 1000);
  }
  const ids = (
    await bench.sql.query("SELECT id, auth_req_id FROM checkouts WHERE status = 'awaiting_approval'")
  ).rows as Array<{ id: string; auth_req_id: string }>;
  const authReqOf = new Map(ids.map((r) => [r.id, r.auth_req_id]));
  const secretOf = new Map(ramp.created.map((c) => [c.id, c.clientSecret]));
  const candidates = ids.map((r) => r.id).filter((id) => !ramp.warm.has(id));
  const A = plan.approvals(K);
  const approved = sample(candidates, A);
  const approvedSet = new Set(approved);
  const w = await measureWindow(bench, K, worker, api.child.pid, after.worker);

  const sampled = sample(
    candidates.filter((id) => !approvedSet.has(id)),
    plan.latenessSample,
  ).map((id) => authReqOf.get(id)!);
  const [approvals, late] = await Promise.all([
    approveSample(bench, { K, approved, authReqOf, secretOf, apiUrl: api.url }),
    timelineLateness(bench, sampled, w.start, w.end),
  ]);
  const approval = { n: A, outcomes: approvals.outcomes, latencyMs: summarize(approvals.latencies) };
  const stage = {
    K,
    pendingInWindow: ramp.counts.awaiting_approval ?? 0,
    claimPlans: plans,
    ...(w.bankProfile ? { bankProfile: w.bankProfile } : {}),
    creation: ramp.direct ? 'direct insert + enqueue' : 'POST /v1/checkouts',
    windowSeconds: round(w.seconds, 1),
    createPerSecond: round(K / ramp.createSeconds),
    allAwaitingSeconds: round(ramp.allAwaitingSeconds, 1),
    pollsPerSecond: round(w.polls / w.seconds),
    expectedPollsPerSecond: round(K / (INTERVAL_MS / 1000)),
    pollsPerSecondFromBankSample: round(late.pollsPerSecondEstimate * K),
    pollOutcomes: w.pollOutcomes,
    cores: w.cores,
    workerRssMaxMiB: round(w.rssMax / 2 ** 20, 1),
    redisUsedMiB: round(w.redisAfter / 2 ** 20, 1),
    statementsPerPoll: w.pollStatements,
    pgPerPoll: w.pgPerPoll,
    latenessMs: late.lateness,
    approval,
    memory,
  };
  log(
    `(c) K=${K}: ${stage.pollsPerSecond} polls/s (expected ${stage.expectedPollsPerSecond}), lateness p50 ${late.lateness.p50} ms p99 ${late.lateness.p99} ms max ${late.lateness.max} ms (n=${late.lateness.n}), cores ${JSON.stringify(w.cores)}, pg per poll ${JSON.stringify(w.pgPerPoll)}, outcomes ${JSON.stringify(w.pollOutcomes)}`,
  );
  log(`(c) K=${K}: statements per poll: ${JSON.stringify(w.pollStatements)}`);
  log(
    `(d) K=${K}: approval → succeeded p50 ${approval.latencyMs.p50} ms p99 ${approval.latencyMs.p99} ms (n=${approval.latencyMs.n}) ${JSON.stringify(approval.outcomes)}`,
  );
  await bench.processes.stopChild(worker);
  const profile = flags['profile-worker'] ? profileFile(workerProfDir) : undefined;
  let workerProfile: ProfileSummary | undefined;
  if (profile) {
    workerProfile = summarizeProfile(profile, w.start - workerSpawnedAt);
    log(`worker profile K=${K} (self time, from the window on): ${JSON.stringify(workerProfile)}`);
  }
  await bench.processes.stopChild(api.child);
  return { ...stage, ...(workerProfile ? { workerProfile } : {}) };
}
