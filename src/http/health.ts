/**
 * Liveness (the process answers) and readiness (Postgres and the queue are reachable), for load
 * balancers and orchestrators. Readiness answers 503 problem+json with Retry-After when not ready.
 */
import type { FastifyInstance } from 'fastify';
import { Type } from 'typebox';
import { ProblemError, problemResponses } from './problem.ts';

const HealthSchema = Type.Object(
  {
    status: Type.Literal('ok'),
    checks: Type.Optional(Type.Object({ database: Type.String(), queue: Type.String() })),
  },
  { additionalProperties: false },
);

export interface HealthDependencies {
  isDatabaseReachable(): Promise<boolean>;
  isQueueReachable(): Promise<boolean>;
}

export async function healthRoutes(app: FastifyInstance, deps: HealthDependencies): Promise<void> {
  app.get(
    '/health/live',
    {
      schema: {
        operationId: 'getLiveness',
        tags: ['health'],
        summary: 'The process is up',
        response: {
          200: {
            ...HealthSchema,
            'x-response-description': 'The process answers',
            examples: [{ status: 'ok' }],
          },
        },
      },
    },
    async () => ({ status: 'ok' as const }),
  );
  app.get(
    '/health/ready',
    {
      schema: {
        operationId: 'getReadiness',
        tags: ['health'],
        summary: 'Postgres and the queue are reachable',
        response: {
          200: {
            ...HealthSchema,
            'x-response-description': 'Ready: Postgres and the queue answer',
            examples: [{ status: 'ok', checks: { database: 'ok', queue: 'ok' } }],
          },
          ...problemResponses(['dependency_unavailable'], { dependency_unavailable: 'queue unreachable' }),
        },
      },
    },
    async () => {
      const [database, queue] = await Promise.all([deps.isDatabaseReachable(), deps.isQueueReachable()]);
      if (!database || !queue) {
        const down = [!database && 'database', !queue && 'queue'].filter(Boolean).join(' and ');
        throw new ProblemError('dependency_unavailable', `${down} unreachable`, { retryAfterSeconds: 5 });
      }
      return { status: 'ok' as const, checks: { database: 'ok', queue: 'ok' } };
    },
  );
}
