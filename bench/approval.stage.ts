/**
 * (d) Approval → succeeded latency: a sample of the K pending checkouts of (c) approved in the
 * bank app, spread over a few seconds, each watched through the API until it ends. It runs after
 * the (c) window, while the other checkouts keep polling, so that its status reads do not count
 * in the figures of (c).
 */
import type { Bench } from './bench.context.ts';
import { LOGIN, QUICK } from './bench.options.ts';
import { sleep } from './lib.ts';

export interface ApprovalRun {
  /** How each approved checkout ended (status, `approve_<http status>` or `timeout`). */
  outcomes: Record<string, number>;
  /** Milliseconds from the approve call to the checkout's own `updatedAt` of succeeded. */
  latencies: number[];
  /** When each checkout's approve call was made (epoch ms). */
  approvedAt: Map<string, number>;
}

/**
 * Approves `approved` (checkout ids) and waits for their outcomes, for at most 30 s (70 s from
 * K = 10,000 on); watchers still running then keep adding to the returned run.
 */
export async function approveSample(
  bench: Bench,
  o: {
    K: number;
    approved: string[];
    authReqOf: Map<string, string>;
    secretOf: Map<string, string>;
    apiUrl: string;
  },
): Promise<ApprovalRun> {
  const run: ApprovalRun = { outcomes: {}, latencies: [], approvedAt: new Map() };
  const { outcomes } = run;
  const A = o.approved.length;
  const approve = () =>
    Promise.all(
      o.approved.map(async (id, i) => {
        await sleep((i * (QUICK ? 1_000 : 5_000)) / A);
        const t = Date.now();
        run.approvedAt.set(id, t);
        const res = await fetch(`${bench.bank.appUrl}app/api/requests/${o.authReqOf.get(id)}/approve`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ login: LOGIN }),
        });
        await res.arrayBuffer();
        if (!res.ok) {
          outcomes[`approve_${res.status}`] = (outcomes[`approve_${res.status}`] ?? 0) + 1;
          return;
        }
        const deadline = t + (o.K >= 10_000 ? 60_000 : 20_000);
        while (Date.now() < deadline) {
          const r = await fetch(`${o.apiUrl}/v1/checkouts/${id}`, {
            headers: { authorization: `Bearer ${o.secretOf.get(id)}` },
          });
          const view = r.ok ? ((await r.json()) as { status: string; updatedAt: string }) : undefined;
          const s = view ? view.status : `http_${r.status}`;
          if (!['awaiting_approval', 'authorized', 'pending'].includes(s)) {
            outcomes[s] = (outcomes[s] ?? 0) + 1;
            // When it became succeeded, by the checkout's own clock (same machine), so that the
            // watchers can look only now and then instead of loading the API they measure.
            if (s === 'succeeded' && view) run.latencies.push(Date.parse(view.updatedAt) - t);
            return;
          }
          await sleep(500);
        }
        outcomes.timeout = (outcomes.timeout ?? 0) + 1;
      }),
    );
  await Promise.race([approve(), sleep(o.K >= 10_000 ? 70_000 : 30_000)]);
  return run;
}
