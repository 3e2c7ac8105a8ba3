/**
 * How (c) gets K checkouts awaiting approval: a warm-up, the memory baseline of (e), then the K
 * checkouts, through the API or straight into PostgreSQL and the queue from `--direct-from` on.
 * Apart from the stage so that the stage reads as the measurement it is.
 */
import { type Bench, log } from './bench.context.ts';
import { plan } from './bench.options.ts';
import { type Created, createDirect, createViaApi, statusCounts, waitAwaiting } from './checkouts.ts';
import { type Child, inLanes, round, sleep } from './lib.ts';
import { memorySnapshot } from './memory.stage.ts';

/**
 * Warm-up (a few checkouts through the whole start path, so the baseline includes the bank
 * client's discovery, keys and connections), the memory baseline, then K checkouts, until all
 * await approval or the ramp's cap passes (then what is pending is measured).
 */
export async function rampUp(bench: Bench, apiUrl: string, worker: Child, K: number) {
  const created: Created[] = [];
  let failedCreates = 0;
  const createOne = async (i: number) => {
    const checkout = await createViaApi(bench, apiUrl, i);
    if (checkout) created.push(checkout);
    else failedCreates++;
  };
  await inLanes(5, 5, createOne);
  await waitAwaiting(bench, 5, 30_000);
  await sleep(500);
  const warm = new Set(created.map((c) => c.id));
  const base = await memorySnapshot(bench, worker.pid);

  const t0 = Date.now();
  const direct = K >= plan.directFrom;
  if (direct) await createDirect(bench, K, created);
  else await inLanes(K, 32, createOne);
  const createSeconds = (Date.now() - t0) / 1000;
  let counts: Record<string, number>;
  try {
    counts = await waitAwaiting(bench, K + 5 - failedCreates, plan.rampCapMs);
  } catch {
    // The worker could not start them all in time: measure what is pending.
    counts = await statusCounts(bench);
    log(`K=${K}: not all awaiting approval after ${plan.rampCapMs / 1000} s: ${JSON.stringify(counts)}`);
  }
  const allAwaitingSeconds = (Date.now() - t0) / 1000;
  log(
    `K=${K}: created in ${round(createSeconds, 1)} s (${round(K / createSeconds)}/s ${direct ? 'inserted directly + enqueued' : 'through the API'}, ${failedCreates} failed), all awaiting approval after ${round(allAwaitingSeconds, 1)} s ${JSON.stringify(counts)}`,
  );
  return { created, warm, base, counts, direct, createSeconds, allAwaitingSeconds };
}
