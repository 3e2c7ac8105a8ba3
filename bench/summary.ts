/**
 * The closing summary of `npm run bench`: one line per measured run, then the lines scripts and
 * the README quote (`ratio create_vs_bare=…`, `ratio status_vs_bare=…`,
 * `pending_<K>_lateness_p99_ms=…` for the largest K last), and the raw figures as JSON on request.
 */

import { writeFileSync } from 'node:fs';
import type { CreateRun } from './create.stage.ts';
import { round } from './lib.ts';
import { type LiveStage, liveLines } from './live.stage.ts';
import type { NaiveStage } from './naive.stage.ts';
import type { PendingStage } from './pending.stage.ts';
import type { DeliveryModeRun } from './ping.stage.ts';
import type { StatusRun } from './status.stage.ts';
import { type WebhookStage, webhookLines } from './webhooks.stage.ts';

export interface Results {
  create?: Record<string, CreateRun>;
  status?: Record<string, StatusRun>;
  pending?: Record<string, PendingStage>;
  naive?: Record<string, NaiveStage>;
  deliveryModes?: Record<string, DeliveryModeRun>;
  live?: LiveStage;
  webhooks?: WebhookStage;
  [key: string]: unknown;
}

const label = (k: number) => (k % 1000 === 0 ? `${k / 1000}k` : String(k));

export function printSummary(results: Results, ks: number[], jsonFile: string | undefined): void {
  if (jsonFile) writeFileSync(jsonFile, `${JSON.stringify(results, null, 2)}\n`);
  const create = results.create ?? {};
  const status = results.status ?? {};
  const pending = results.pending ?? {};
  const at16 = create[16];
  const st16 = status[16];
  const createRatio = at16 ? at16.api.rps / at16.bare.rps : Number.NaN;
  const statusRatio = st16 ? st16.api.rps / st16.bare.rps : Number.NaN;
  console.log('');
  console.log('summary');
  for (const [c, r] of Object.entries(create)) {
    console.log(
      `  POST c=${c.padEnd(3)} api ${String(r.api.rps).padStart(6)} req/s p50 ${r.api.p50} ms p99 ${r.api.p99} ms | bare ${String(r.bare.rps).padStart(6)} req/s p99 ${r.bare.p99} ms | ratio ${round(r.api.rps / r.bare.rps, 3)}`,
    );
  }
  for (const [c, r] of Object.entries(status)) {
    console.log(
      `  GET  c=${c.padEnd(3)} api ${String(r.api.rps).padStart(6)} req/s p50 ${r.api.p50} ms p99 ${r.api.p99} ms | bare ${String(r.bare.rps).padStart(6)} req/s p99 ${r.bare.p99} ms | ratio ${round(r.api.rps / r.bare.rps, 3)}`,
    );
  }
  for (const [k, st] of Object.entries(pending)) {
    console.log(
      `  pending K=${k}: ${st.pollsPerSecond} polls/s, lateness p50 ${st.latenessMs.p50} ms p99 ${st.latenessMs.p99} ms, worker ${st.cores.worker} cores, postgres ${st.cores.postgres}, redis ${st.cores.redis}, bank+bench ${st.cores.bench}; pg per poll ${JSON.stringify(st.pgPerPoll)}; approval→succeeded p50 ${st.approval.latencyMs.p50} ms p99 ${st.approval.latencyMs.p99} ms; per checkout worker ${st.memory.workerRssPerCheckout} B, redis ${st.memory.redisPerCheckout} B, postgres ${st.memory.postgresPerCheckout} B`,
    );
  }
  for (const [k, st] of Object.entries(results.naive ?? {})) {
    console.log(
      `  naive   K=${k}: ~${st.pollsPerSecondFromBankSample} polls/s, lateness p50 ${st.latenessMs.p50} ms p99 ${st.latenessMs.p99} ms, ${st.cores.naive} cores, RSS ${st.rssMiB} MiB (${st.rssPerLoop} B per loop)`,
    );
  }
  const modes = results.deliveryModes ?? {};
  for (const [key, run] of Object.entries(modes)) {
    console.log(
      `  ${run.mode} mode K=${run.K}: approval→succeeded p50 ${run.approval.latencyMs.p50} ms p99 ${run.approval.latencyMs.p99} ms (n=${run.approval.latencyMs.n}); ${run.approval.tokenRequestsPerApproval} token requests from the decision on (${run.approval.tokenRequestsPerApprovedCheckout} in all); pending: ${run.tokenRequestsPerSecond} token requests/s, worker ${run.cores.worker} cores = ${run.workerCpuUsPerPendingSecond} µs CPU per pending checkout per s [${key}]`,
    );
  }
  const wh = results.webhooks;
  if (wh) {
    const { latency: l, throughput: t, backlog: b } = wh;
    console.log(
      `  webhooks: commit→received p50 ${l.commitToReceivedMs.p50} ms p99 ${l.commitToReceivedMs.p99} ms at ${l.changesPerSecond} changes/s; ${t.dispatcher.deliveries} due at once: ${t.dispatcher.perSecond}/s, worker ${t.dispatcher.workerCpuUsPerDelivery} µs + postgres ${t.dispatcher.postgresCpuUsPerDelivery} µs of CPU per delivery | bare POST loop ${t.bare.perSecond}/s, ${t.bare.cpuUsPerRequest} µs; backlog of ${b.queued}: drained at ${b.drain.perSecond}/s, live events meanwhile p50 ${b.live.duringDrainMs.p50} ms p99 ${b.live.duringDrainMs.p99} ms`,
    );
  }
  // The delivery-mode figures at the smallest K measured in both modes (1,000 by default).
  const bothAt = Object.values(modes)
    .filter((r) => r.mode === 'ping' && modes[`poll_${r.K}`])
    .map((r) => r.K)
    .sort((a, b) => a - b)[0];
  if (bothAt !== undefined) {
    const ping = modes[`ping_${bothAt}`]!;
    const poll = modes[`poll_${bothAt}`]!;
    console.log(`ping_approval_to_succeeded_p99_ms=${round(ping.approval.latencyMs.p99)}`);
    console.log(`poll_approval_to_succeeded_p99_ms=${round(poll.approval.latencyMs.p99)}`);
    console.log(`ping_approval_to_stream_p99_ms=${round(ping.approval.toStreamMs.p99)}`);
    console.log(`poll_approval_to_stream_p99_ms=${round(poll.approval.toStreamMs.p99)}`);
    console.log(`ping_token_requests_per_approval=${ping.approval.tokenRequestsPerApproval}`);
    for (const r of Object.values(modes)) {
      console.log(`${r.mode}_${label(r.K)}_worker_cpu_us_per_pending_s=${r.workerCpuUsPerPendingSecond}`);
    }
  }
  if (results.live) for (const line of liveLines(results.live)) console.log(line);
  if (results.webhooks) for (const line of webhookLines(results.webhooks)) console.log(line);
  const largest = Math.max(...ks);
  const lastStage = pending[largest];
  for (const k of ks.filter((x) => x !== largest)) {
    console.log(`pending_${label(k)}_lateness_p99_ms=${round(pending[k]!.latenessMs.p99)}`);
  }
  console.log(`ratio create_vs_bare=${round(createRatio, 2)}`);
  console.log(`ratio status_vs_bare=${round(statusRatio, 2)}`);
  if (lastStage) console.log(`pending_${label(largest)}_lateness_p99_ms=${round(lastStage.latenessMs.p99)}`);
}
