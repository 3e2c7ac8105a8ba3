/**
 * Job dispatch: one processor per job name. Jobs are thin glue between the checkout domain and the
 * outbound integrations; each run makes at most one bank request.
 */
import type { Job, Processor, Queue } from 'bullmq';
import { UnrecoverableError } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.ts';
import type { Database } from '../infra/database.ts';

export interface JobContext {
  config: Config;
  db: Database;
  queue: Queue;
  log: Logger;
}

export type JobHandler = (job: Job, ctx: JobContext, token?: string) => Promise<unknown>;

export const JOB_HANDLERS: Record<string, JobHandler> = {};

export function createJobProcessor(ctx: JobContext): Processor {
  return async (job, token) => {
    const handler = JOB_HANDLERS[job.name];
    if (!handler) throw new UnrecoverableError(`no handler for job "${job.name}"`);
    return handler(
      job,
      ctx.log.child ? { ...ctx, log: ctx.log.child({ jobId: job.id, job: job.name }) } : ctx,
      token,
    );
  };
}
