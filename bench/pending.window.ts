/**
 * The steady-state window of (c): K checkouts polling and nothing else, read before and after
 * (CPU per component, PostgreSQL work and statements, token polls, worker RSS), and the plan of
 * the poller's claim on the table as it is then. Apart from the stage so that each reading of
 * the window is in one place.
 */
import { CLAIM_DUE_POLLS_SQL } from '../src/checkout/poll-schedule.repository.ts';
import { type Bench, log } from './bench.context.ts';
import { flags, plan } from './bench.options.ts';
import { type Child, round, rssBytes, sleep } from './lib.ts';
import { startProfiler, summarizeProfile } from './profile.ts';
import {
  components,
  coresBetween,
  cpuOf,
  pgStats,
  pgStatsDelta,
  redisUsed,
  resetStatements,
  statementsPer,
} from './readings.ts';

/**
 * The token poller's claim, planned on the statistics the table has now (a table that just
 * filled up may not have been analyzed yet), then after ANALYZE (what autovacuum does within
 * about a minute). --no-analyze measures without it.
 */
export async function claimPlans(bench: Bench, K: number): Promise<Record<string, string>> {
  const claimPlan = async () =>
    (
      (await bench.sql.query(`EXPLAIN /* bench: */ ${CLAIM_DUE_POLLS_SQL}`, [15, 100, []])).rows as Array<{
        'QUERY PLAN': string;
      }>
    )
      .map((r) => r['QUERY PLAN'].trim())
      .join(' / ');
  const plans: Record<string, string> = { beforeAnalyze: await claimPlan() };
  if (!flags['no-analyze']) {
    await bench.sql.query('ANALYZE checkouts, checkout_events');
    plans.afterAnalyze = await claimPlan();
  }
  log(`K=${K}: claim UPDATE plan ${JSON.stringify(plans)}`);
  return plans;
}

/** The steady-state window of K: CPU, PostgreSQL work and statements, polls, worker RSS. */
export async function measureWindow(
  bench: Bench,
  K: number,
  worker: Child,
  apiPid: number,
  rssStart: number,
) {
  const W = plan.window(K);
  const pids = components(bench, { worker: worker.pid, api: apiPid, bench: 0 });
  const bankProfiler = flags['profile-bank'] ? await startProfiler() : undefined;
  const start = Date.now();
  const cpu0 = cpuOf(bench, pids);
  const pg0 = await pgStats(bench);
  await resetStatements(bench);
  let rssMax = rssStart;
  while (Date.now() < start + W * 1000) {
    await sleep(1_000);
    rssMax = Math.max(rssMax, rssBytes(worker.pid));
    if (worker.process.exitCode !== null) throw new Error(`the worker exited:\n${worker.tail()}`);
  }
  const end = Date.now();
  const cores = coresBetween(cpu0, cpuOf(bench, pids), (end - start) / 1000);
  const bankProfile = bankProfiler ? summarizeProfile(await bankProfiler.stop(), 0) : undefined;
  if (bankProfile) log(`bank profile K=${K} (self time, window): ${JSON.stringify(bankProfile)}`);
  const pgDelta = await pgStatsDelta(bench, pg0);
  const redisAfter = await redisUsed(bench);
  const { rows: pollRows } = await bench.sql.query(
    "SELECT outcome, count(*)::int AS n FROM checkout_events WHERE step = 'token_poll' AND at >= $1 AND at < $2 GROUP BY outcome",
    [new Date(start), new Date(end)],
  );
  const pollStatements = await statementsPer(
    bench,
    (
      (
        await bench.sql.query(
          "SELECT /* bench: */ count(*)::int AS n FROM checkout_events WHERE step = 'token_poll' AND at >= $1",
          [new Date(start)],
        )
      ).rows[0] as { n: number }
    ).n,
    10,
  );
  const pollOutcomes = Object.fromEntries(
    (pollRows as Array<{ outcome: string; n: number }>).map((r) => [r.outcome, r.n]),
  );
  const polls = Object.values(pollOutcomes).reduce((a, b) => a + b, 0);
  const pgPerPoll = Object.fromEntries(
    Object.entries(pgDelta).map(([k, v]) => [k, round(v / Math.max(1, polls), 2)]),
  );
  const seconds = (end - start) / 1000;
  return {
    start,
    end,
    seconds,
    cores,
    bankProfile,
    redisAfter,
    pollOutcomes,
    polls,
    pollStatements,
    pgPerPoll,
    rssMax,
  };
}
