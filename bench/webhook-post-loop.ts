/**
 * The reference of (j)'s throughput (webhooks.stage.ts): what HTTP alone costs. A bare loop of
 * undici `request()` POSTs, in a process of its own like the worker, to the same receiver, with
 * the same body and headers a delivery carries (the signature computed once), the same Agent
 * settings as the webhook sender (one pool of CONCURRENCY connections, keep-alive) and
 * CONCURRENCY requests in flight; each answer's body read and dropped. No database, no signing,
 * no timers. Prints one JSON line: requests, seconds, this process's CPU seconds, non-2xx answers;
 * then waits to be stopped, so that its CPU can still be read from /proc.
 *
 * Environment: TARGET_URL, REQUESTS, CONCURRENCY, BODY, HEADERS (JSON).
 */
import { Agent, request } from 'undici';

const url = process.env.TARGET_URL ?? '';
const requests = Number(process.env.REQUESTS ?? 10_000);
const concurrency = Number(process.env.CONCURRENCY ?? 64);
const body = process.env.BODY ?? '{}';
const headers = JSON.parse(process.env.HEADERS ?? '{}') as Record<string, string>;
const agent = new Agent({ connections: concurrency, headersTimeout: 10_000, bodyTimeout: 10_000 });

let failed = 0;
async function run(n: number, prefix: string): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, n) }, async () => {
      while (next < n) {
        const i = next++;
        const res = await request(url, {
          dispatcher: agent,
          method: 'POST',
          headers: { ...headers, 'webhook-id': `${prefix}_${i}` },
          body,
        });
        await res.body.dump();
        if (res.statusCode < 200 || res.statusCode >= 300) failed++;
      }
    }),
  );
}

// Warm-up: the connections opened and the code compiled, as in a worker that has been running.
await run(Math.min(1_000, requests), 'ref_warm');
failed = 0;
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await run(requests, 'ref');
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
process.stdout.write(
  `${JSON.stringify({ requests, seconds, cpuSeconds: (cpu.user + cpu.system) / 1e6, failed })}\n`,
);
await agent.close();
setInterval(() => {}, 60_000);
