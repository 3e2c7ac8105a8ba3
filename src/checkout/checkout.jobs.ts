/**
 * The work a checkout needs next, as queue jobs. Payloads are ids only (Postgres holds the state);
 * job ids are deterministic, so enqueueing the same step twice is a no-op while it is queued.
 */
import type { JobsOptions, Queue } from 'bullmq';

export const JOB_NAMES = {
  cibaStart: 'ciba-start',
  bankPay: 'bank-pay',
} as const;
export type JobName = (typeof JOB_NAMES)[keyof typeof JOB_NAMES];

export interface CheckoutJobData {
  checkoutId: string;
}

const BASE_OPTIONS: JobsOptions = {
  removeOnComplete: true,
  removeOnFail: { age: 7 * 24 * 3600 },
  // Only for unexpected failures (e.g. Postgres briefly down): bank retries are scheduled by the
  // jobs themselves, never sooner than the bank allows.
  attempts: 20,
  backoff: { type: 'exponential', delay: 1_000 },
};

export function jobId(name: JobName, checkoutId: string): string {
  return `${name}-${checkoutId}`;
}

export async function enqueueCheckoutJob(queue: Queue, name: JobName, checkoutId: string): Promise<void> {
  await queue.add(name, { checkoutId } satisfies CheckoutJobData, {
    ...BASE_OPTIONS,
    jobId: jobId(name, checkoutId),
  });
}
