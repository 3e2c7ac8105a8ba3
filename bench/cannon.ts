/**
 * One autocannon run reduced to the figures the tables compare (throughput of 2xx answers,
 * latency percentiles, failures), the same way for the API and for the bare reference, so a
 * ratio of the two compares like with like.
 */
import { randomUUID } from 'node:crypto';
import autocannon from 'autocannon';
import { round } from './lib.ts';

export type Cannon = { rps: number; p50: number; p99: number; total: number; non2xx: number; errors: number };

/** A load of `connections` for `duration` seconds; the load functions of (a) and (b) are these. */
export type Load = (connections: number, duration: number) => Promise<Cannon>;

export async function cannon(o: {
  url: string;
  method: 'GET' | 'POST';
  connections: number;
  duration: number;
  headers?: Record<string, string>;
  body?: string;
  /** A fresh Idempotency-Key per request, so that every POST creates a checkout. */
  uniqueKeys?: boolean;
}): Promise<Cannon> {
  let n = 0;
  const prefix = randomUUID();
  const result = await autocannon({
    url: o.url,
    method: o.method,
    connections: o.connections,
    duration: o.duration,
    ...(o.headers ? { headers: o.headers } : {}),
    ...(o.body !== undefined ? { body: o.body } : {}),
    ...(o.uniqueKeys
      ? {
          requests: [
            {
              setupRequest: (req) => ({
                ...req,
                headers: { ...req.headers, 'idempotency-key': `${prefix}-${n++}` },
              }),
            },
          ],
        }
      : {}),
  });
  const ok = result['2xx'];
  return {
    rps: round(ok / o.duration),
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors + result.timeouts,
  };
}
