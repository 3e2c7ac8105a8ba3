/**
 * Job dispatch: one handler per job name. Jobs are thin glue between the checkout domain and the
 * outbound integrations; each run makes at most one bank request. Token polls are not queue jobs:
 * the token poller (token-poller.ts) runs them from Postgres.
 */
import type { Job, Processor } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import { type CheckoutJobData, JOB_NAMES } from '../checkout/checkout.jobs.ts';
import { executePayment } from './bank-pay.job.ts';
import { startBackchannelAuthentication } from './ciba-start.job.ts';
import type { JobContext } from './job.context.ts';
import { RECONCILE_JOB, reconcileCheckouts } from './reconcile.job.ts';

type Handler = (job: Job<CheckoutJobData>, ctx: JobContext, token?: string) => Promise<unknown>;

const JOB_HANDLERS: Record<string, Handler> = {
  [JOB_NAMES.cibaStart]: startBackchannelAuthentication,
  [JOB_NAMES.bankPay]: executePayment,
  [RECONCILE_JOB]: reconcileCheckouts,
};

export function createJobProcessor(ctx: JobContext): Processor {
  return async (job, token) => {
    const handler = JOB_HANDLERS[job.name];
    if (!handler) throw new UnrecoverableError(`no handler for job "${job.name}"`);
    return handler(
      job as Job<CheckoutJobData>,
      {
        ...ctx,
        // Every line of a checkout's job names the checkout (the reconciler's job has none).
        log: ctx.log.child({
          jobId: job.id,
          job: job.name,
          ...(job.data?.checkoutId ? { checkoutId: job.data.checkoutId } : {}),
        }),
      },
      token,
    );
  };
}
