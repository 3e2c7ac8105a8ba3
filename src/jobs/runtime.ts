/**
 * Everything a worker process runs, started and stopped together: the queue consumer (ciba-start,
 * bank-pay, reconcile), the token poller, the webhook dispatcher, and the reconciler's schedule, re-registered now and
 * then so a Redis that lost its data gets it back without a restart.
 */
import type { QueueInfra } from '../infra/queue.ts';
import type { JobContext } from './job.context.ts';
import { createJobProcessor } from './job.dispatch.ts';
import { scheduleReconciler } from './reconcile.job.ts';
import { DEFAULT_TOKEN_POLLER_OPTIONS, startTokenPoller } from './token-poller.ts';
import { DEFAULT_WEBHOOK_DISPATCHER_OPTIONS, startWebhookDispatcher } from './webhook-dispatcher.ts';

export interface WorkerRuntime {
  /** Stops taking work, lets running jobs and token requests finish, records their answers. */
  close(): Promise<void>;
}

export async function startWorkerRuntime(ctx: JobContext, queue: QueueInfra): Promise<WorkerRuntime> {
  const { worker: settings } = ctx.config;
  const worker = queue.createWorker(createJobProcessor(ctx), {
    concurrency: settings.concurrency,
    lockDuration: settings.lockDurationMs,
    stalledInterval: Math.min(settings.lockDurationMs, 5_000),
    maxStalledCount: 1_000, // a job whose worker died is retried, not failed: the job is idempotent
  });
  worker.on('error', (err) => ctx.log.error({ err: err.message }, 'worker error'));
  worker.on('failed', (job, err) =>
    ctx.log.warn({ jobId: job?.id, job: job?.name, err: err.message }, 'job failed'),
  );
  const poller = startTokenPoller(ctx, {
    ...DEFAULT_TOKEN_POLLER_OPTIONS,
    maxInFlight: settings.pollConcurrency,
  });
  const webhooks = startWebhookDispatcher(ctx, DEFAULT_WEBHOOK_DISPATCHER_OPTIONS);

  const refreshSchedule = () =>
    scheduleReconciler(ctx).catch((err: Error) =>
      ctx.log.warn({ err: err.message }, 'could not register the reconciler schedule'),
    );
  await refreshSchedule();
  const scheduleTimer = setInterval(
    refreshSchedule,
    Math.max(1_000, Math.min(60_000, settings.reconcileEveryMs * 3)),
  );
  scheduleTimer.unref();

  return {
    async close() {
      clearInterval(scheduleTimer);
      await Promise.all([worker.close(), poller.close(), webhooks.close()]);
    },
  };
}
