/**
 * (i) CIBA ping mode against poll mode, side by side in one run (DESIGN.md §7.1): K checkouts
 * awaiting approval in each mode, on the same sandbox bank (interval 5 s), with the same worker.
 *
 *   approval → succeeded   a sample approved in the bank app, the checkout's own updatedAt of
 *                          succeeded minus the approve call (the same clock)
 *   token requests         per approved checkout, as the bank received them (its timeline):
 *                          ping mode's target is ≤ 2 (the pinged one plus at most one safety poll)
 *   worker CPU             per pending checkout, over a window with nothing else happening: poll
 *                          mode asks every interval, ping mode only every 4 intervals
 */
import { EventSource } from 'eventsource';
import { Agent, fetch as undiciFetch } from 'undici';
import { approveSample } from './approval.stage.ts';
import { sample } from './bank-timeline.ts';
import { type Bench, log } from './bench.context.ts';
import { plan, QUICK } from './bench.options.ts';
import { resetState } from './checkouts.ts';
import { round, sleep, summarize } from './lib.ts';
import { rampUp } from './pending.ramp.ts';
import { components, coresBetween, cpuOf } from './readings.ts';

export type DeliveryModeRun = Awaited<ReturnType<typeof measureMode>>;

/**
 * Poll then ping at each K of `ks`, so each ping figure has its poll reference in the same run;
 * above POLL_MODE_MAX_K ping mode only (poll mode there needs more token requests per second than
 * one worker is sized for: K ÷ 5 s; its CPU per pending checkout at the smaller K is the reference).
 */
export async function measurePingVsPoll(
  bench: Bench,
  ks: number[],
): Promise<Record<string, DeliveryModeRun>> {
  const runs: Record<string, DeliveryModeRun> = {};
  for (const K of ks) {
    for (const mode of ['poll', 'ping'] as const) {
      if (mode === 'poll' && K > POLL_MODE_MAX_K) continue;
      runs[`${mode}_${K}`] = await measureMode(bench, K, mode);
    }
  }
  return runs;
}

const POLL_MODE_MAX_K = 10_000;

async function measureMode(bench: Bench, K: number, mode: 'poll' | 'ping') {
  log(`(i) ${mode} mode, K=${K}: starting API and worker`);
  await resetState(bench);
  const extra = mode === 'ping' ? bench.ping.env : {};
  const api = await bench.processes.startApi(extra);
  const worker = bench.processes.startChild('src/worker.ts', extra);
  try {
    const ramp = await rampUp(bench, api.url, worker, K);
    // Ping mode's first safety poll is 4 intervals (20 s) after the acknowledgement: a window of
    // 25 s sees every pending checkout's schedule at least once in both modes.
    const W = QUICK ? 25 : 40;
    const pids = components(bench, { worker: worker.pid, api: api.child.pid, bench: 0 });
    const start = Date.now();
    const cpu0 = cpuOf(bench, pids);
    await sleep(W * 1000);
    const end = Date.now();
    const cores = coresBetween(cpu0, cpuOf(bench, pids), (end - start) / 1000);
    const { rows } = await bench.sql.query(
      "SELECT count(*)::int AS n FROM checkout_events WHERE step = 'token_poll' AND at >= $1 AND at < $2",
      [new Date(start), new Date(end)],
    );
    const tokenRequests = (rows[0] as { n: number }).n;

    const pending = (
      await bench.sql.query("SELECT id, auth_req_id FROM checkouts WHERE status = 'awaiting_approval'")
    ).rows as Array<{ id: string; auth_req_id: string }>;
    const authReqOf = new Map(pending.map((r) => [r.id, r.auth_req_id]));
    const secretOf = new Map(ramp.created.map((c) => [c.id, c.clientSecret]));
    const approved = sample(
      pending.map((r) => r.id).filter((id) => !ramp.warm.has(id)),
      plan.approvals(K),
    );
    // A browser's view: an EventSource per approved checkout (clientSecret in the URL), opened
    // before the approval, noting when `succeeded` arrives.
    const streams = followSucceeded(api.url, approved, secretOf);
    await streams.opened;
    const approvals = await approveSample(bench, { K, approved, authReqOf, secretOf, apiUrl: api.url });
    await streams.settled(5_000);
    const toStream = approved
      .map((id) => {
        const seen = streams.succeededAt.get(id);
        const asked = approvals.approvedAt.get(id);
        return seen !== undefined && asked !== undefined ? seen - asked : undefined;
      })
      .filter((x): x is number => x !== undefined);
    streams.close();
    // Token requests the bank received for each approved checkout from the customer's decision on
    // (the one that fetched the result, plus any that were already due), and over its whole life.
    const afterDecision: number[] = [];
    const lifetime: number[] = [];
    for (const id of approved) {
      const res = await fetch(`${bench.control}/requests/${authReqOf.get(id)}/timeline`);
      if (!res.ok) continue;
      const t = (await res.json()) as { decidedAt: number | null; polls: Array<{ at: number }> };
      lifetime.push(t.polls.length);
      afterDecision.push(t.polls.filter((p) => t.decidedAt !== null && p.at >= t.decidedAt).length);
    }
    const mean = (xs: number[]) => round(xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length), 2);
    log(
      `(i) ${mode} mode, K=${K}: approval → stream shows succeeded p50 ${summarize(toStream).p50} ms p99 ${summarize(toStream).p99} ms (n=${toStream.length})`,
    );
    const run = {
      K,
      mode,
      pending: pending.length,
      windowSeconds: round((end - start) / 1000, 1),
      tokenRequestsPerSecond: round(tokenRequests / ((end - start) / 1000)),
      cores,
      /** Worker CPU per pending checkout: microseconds of CPU per second of waiting. */
      workerCpuUsPerPendingSecond: round(((cores.worker ?? 0) * 1e6) / Math.max(1, pending.length), 1),
      approval: {
        n: approved.length,
        outcomes: approvals.outcomes,
        latencyMs: summarize(approvals.latencies),
        /** Approve call → an SSE client of the checkout's stream receives `succeeded`. */
        toStreamMs: summarize(toStream),
        /** Token requests from the decision to the result (ping mode: 1 when the ping worked). */
        tokenRequestsPerApproval: mean(afterDecision),
        /** Token requests over the request's whole life (poll mode: one per interval while waiting). */
        tokenRequestsPerApprovedCheckout: mean(lifetime),
      },
    };
    log(
      `(i) ${mode} mode, K=${K}: approval → succeeded p50 ${run.approval.latencyMs.p50} ms p99 ${run.approval.latencyMs.p99} ms (n=${run.approval.latencyMs.n}, ${JSON.stringify(approvals.outcomes)}), ${run.approval.tokenRequestsPerApproval} token requests from the decision on (${run.approval.tokenRequestsPerApprovedCheckout} over the checkout's life), ${run.tokenRequestsPerSecond} token requests/s pending, cores ${JSON.stringify(run.cores)} (worker: ${run.workerCpuUsPerPendingSecond} µs CPU per pending checkout per s)`,
    );
    return run;
  } finally {
    await bench.processes.stopChild(worker);
    await bench.processes.stopChild(api.child);
  }
}

/** EventSources on the streams of `ids`, as a browser opens them, noting when `succeeded` arrives. */
function followSucceeded(apiUrl: string, ids: string[], secretOf: Map<string, string>) {
  const agent = new Agent({ connections: null });
  const succeededAt = new Map<string, number>();
  const sources: EventSource[] = [];
  let opened = 0;
  let onOpened: () => void = () => {};
  const allOpened = new Promise<void>((resolve) => {
    onOpened = resolve;
    if (ids.length === 0) resolve();
  });
  for (const id of ids) {
    const url = `${apiUrl}/v1/checkouts/${id}/stream?client_secret=${encodeURIComponent(secretOf.get(id) ?? '')}`;
    const source = new EventSource(url, {
      fetch: (input, init) =>
        undiciFetch(input, { ...(init as object), dispatcher: agent }) as unknown as Promise<Response>,
    });
    let first = true;
    source.addEventListener('checkout', (e) => {
      if (first) {
        first = false;
        if (++opened === ids.length) onOpened();
      }
      if ((JSON.parse(e.data) as { status: string }).status === 'succeeded' && !succeededAt.has(id))
        succeededAt.set(id, Date.now());
    });
    sources.push(source);
  }
  return {
    succeededAt,
    opened: Promise.race([allOpened, sleep(10_000)]),
    async settled(timeoutMs: number) {
      const deadline = Date.now() + timeoutMs;
      while (succeededAt.size < ids.length && Date.now() < deadline) await sleep(100);
    },
    close() {
      for (const s of sources) s.close();
      void agent.destroy();
    },
  };
}
