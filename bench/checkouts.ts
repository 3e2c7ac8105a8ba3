/**
 * Making the checkouts a benchmark measures, and watching them start: through the API as a shop
 * would, or, for the large K of (c), straight into PostgreSQL and the queue (what the API writes
 * and enqueues, without its cost, so that the ramp is not the API's throughput).
 */
import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { newBindingMessage } from '../src/checkout/binding-message.ts';
import { JOB_NAMES, jobId } from '../src/checkout/checkout.jobs.ts';
import { newCheckoutId } from '../src/checkout/checkout.service.ts';
import { issueClientSecret } from '../src/checkout/client-secret.ts';
import { createKeyRing } from '../src/infra/crypto.ts';
import { QUEUE_NAME } from '../src/infra/queue.ts';
import type { Bench } from './bench.context.ts';
import { LOGIN } from './bench.options.ts';
import { sleep } from './lib.ts';

export interface Created {
  id: string;
  clientSecret: string;
}

export const checkoutBody = (i: number) =>
  JSON.stringify({
    amount: 4990,
    currency: 'EUR',
    bankId: 'sandbox',
    loginHint: LOGIN,
    reference: `order-${i}`,
  });

/** POST /v1/checkouts once; the answer, or undefined (its body read) when it is not 202. */
export async function createViaApi(bench: Bench, apiUrl: string, i: number): Promise<Created | undefined> {
  const res = await fetch(`${apiUrl}/v1/checkouts`, {
    method: 'POST',
    headers: { ...bench.auth, 'idempotency-key': randomUUID() },
    body: checkoutBody(i),
  });
  if (res.status !== 202) {
    await res.arrayBuffer();
    return undefined;
  }
  return (await res.json()) as Created;
}

/** What POST /v1/checkouts writes and enqueues, in batches (no idempotency record). */
export async function createDirect(bench: Bench, n: number, out: Created[]): Promise<void> {
  const { sql } = bench;
  const keyRing = createKeyRing([Buffer.from(bench.env.CLIENT_SECRET_KEYS!, 'base64')]);
  const { id: apiKeyId } = (await sql.query('SELECT id FROM api_keys LIMIT 1')).rows[0] as { id: string };
  const connection = new Redis(bench.redisUrl, { maxRetriesPerRequest: null });
  const queue = new Queue(QUEUE_NAME, { connection });
  try {
    for (let from = 0; from < n; from += 1_000) {
      const ids = Array.from({ length: Math.min(1_000, n - from) }, () => newCheckoutId());
      const now = new Date();
      await sql.query(
        `INSERT INTO checkouts (id, status, amount, currency, bank_id, login_hint, reference, binding_message, api_key_id, created_at, updated_at, expires_at)
         SELECT id, 'pending', 4990, 'EUR', 'sandbox', $2, 'order-' || id, bm, $3, $4, $4, $5
         FROM unnest($1::text[], $6::text[]) AS t(id, bm)`,
        [ids, LOGIN, apiKeyId, now, new Date(now.getTime() + 660_000), ids.map(() => newBindingMessage())],
      );
      await sql.query(
        `INSERT INTO checkout_events (checkout_id, step, outcome, detail)
         SELECT id, 'created', 'pending', '{"bankId":"sandbox"}'::jsonb FROM unnest($1::text[]) AS t(id)`,
        [ids],
      );
      await queue.addBulk(
        ids.map((id) => ({
          name: JOB_NAMES.cibaStart,
          data: { checkoutId: id },
          opts: {
            jobId: jobId(JOB_NAMES.cibaStart, id),
            removeOnComplete: true,
            removeOnFail: { age: 7 * 24 * 3600 },
            attempts: 20,
            backoff: { type: 'exponential', delay: 1_000 },
          },
        })),
      );
      for (const id of ids) out.push({ id, clientSecret: issueClientSecret(keyRing, id) });
    }
  } finally {
    await queue.close();
    connection.disconnect();
  }
}

/** No checkouts, no jobs, no bank requests: each K starts from the same empty state. */
export async function resetState(bench: Bench): Promise<void> {
  await bench.sql.query('TRUNCATE checkout_events, checkouts, idempotency_records');
  await bench.redisClient.flushall();
  await fetch(`${bench.control}/reset`, { method: 'POST' }).then((r) => r.arrayBuffer());
}

export async function statusCounts(bench: Bench): Promise<Record<string, number>> {
  const { rows } = await bench.sql.query('SELECT status, count(*)::int AS n FROM checkouts GROUP BY status');
  return Object.fromEntries((rows as Array<{ status: string; n: number }>).map((r) => [r.status, r.n]));
}

/** Waits until `n` checkouts await approval; the counts by status then. */
export async function waitAwaiting(
  bench: Bench,
  n: number,
  timeoutMs: number,
): Promise<Record<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const counts = await statusCounts(bench);
    if ((counts.awaiting_approval ?? 0) >= n) return counts;
    if (Date.now() > deadline) throw new Error(`not all awaiting approval: ${JSON.stringify(counts)}`);
    await sleep(250);
  }
}
