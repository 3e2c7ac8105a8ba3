/**
 * reconcile: the safety net that makes "every checkout reaches a terminal state" hold when the
 * queue lost a job (Redis lost its data, an enqueue failed after the commit, a job exhausted its
 * attempts while Postgres was down). Postgres is the source of truth: for each checkout that has
 * made no progress for a while, the job its status calls for is re-enqueued unless it is alive;
 * checkouts past their expiry are closed. Runs from a BullMQ job scheduler, one run at a time.
 */
import type { Job } from 'bullmq';
import { enqueueCheckoutJob, JOB_NAMES, type JobName, jobId } from '../checkout/checkout.jobs.ts';
import { expireCheckout } from '../checkout/checkout.outcomes.ts';
import type { CheckoutStatus } from '../checkout/checkout.states.ts';
import type { JobContext } from './job.context.ts';

export const RECONCILE_JOB = 'reconcile';
const BATCH = 500;
/** The token poller settles expiry itself; the reconciler only steps in once it is clearly late. */
const EXPIRY_SLACK_MS = 5_000;

const NEXT_JOB: Partial<Record<CheckoutStatus, JobName>> = {
  pending: JOB_NAMES.cibaStart,
  authorized: JOB_NAMES.bankPay,
};

export interface ReconcileReport {
  requeued: number;
  expired: number;
  idempotencyRecordsPurged: number;
}

export async function reconcileCheckouts(_job: Job, ctx: JobContext): Promise<ReconcileReport> {
  const now = Date.now();
  const report: ReconcileReport = { requeued: 0, expired: 0, idempotencyRecordsPurged: 0 };

  // Past the expiry and still waiting for the customer (or for the bank to accept the request).
  const overdue = await ctx.checkouts.findExpired(
    ['pending', 'awaiting_approval'],
    new Date(now - EXPIRY_SLACK_MS),
    BATCH,
  );
  for (const c of overdue) {
    if (c.status !== 'pending' && c.status !== 'awaiting_approval') continue;
    if (await expireCheckout(ctx.checkouts, { id: c.id, status: c.status }, 'reconcile')) report.expired++;
  }

  // No progress for longer than the grace period: is the job that should move it still alive?
  const stale = new Date(now - ctx.config.worker.reconcileGraceMs);
  // (Checkouts awaiting approval need no job: the token poller finds them by `nextPollAt`.)
  const stuck = await ctx.checkouts.findStalled(['pending', 'authorized'], stale, BATCH);
  for (const c of stuck) {
    const name = NEXT_JOB[c.status];
    if (!name) continue;
    const existing = await ctx.queue.getJob(jobId(name, c.id));
    if (existing) {
      const state = await existing.getState();
      if (state !== 'failed' && state !== 'completed' && state !== 'unknown') continue;
      await existing.remove().catch(() => {});
    }
    await enqueueCheckoutJob(ctx.queue, name, c.id);
    report.requeued++;
    ctx.log.warn(
      { checkoutId: c.id, status: c.status, job: name },
      'reconciler re-enqueued a checkout that had no live job',
    );
  }

  report.idempotencyRecordsPurged = await ctx.idempotency.purgeExpired(new Date(now));
  if (report.requeued || report.expired) ctx.log.info(report, 'reconciled');
  return report;
}

/** Registers (or refreshes) the schedule; idempotent, so every worker may call it, and again later. */
export async function scheduleReconciler(ctx: Pick<JobContext, 'queue' | 'config'>): Promise<void> {
  await ctx.queue.upsertJobScheduler(
    RECONCILE_JOB,
    { every: ctx.config.worker.reconcileEveryMs },
    { name: RECONCILE_JOB, opts: { removeOnComplete: true, removeOnFail: 100 } },
  );
}
