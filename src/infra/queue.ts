/**
 * The job queue: BullMQ on Redis (production default), or BullMQ's PostgreSQL backend on the same
 * database (QUEUE_BACKEND=postgres, the embedded default of `npm run dev` when no redis-server is
 * installed). Jobs carry only ids; Postgres stays the source of truth.
 */

import { once } from 'node:events';
import {
  createPostgresBackend,
  type Processor,
  Queue,
  Worker,
  type WorkerOptions,
  withBackend,
} from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../config.ts';

export const QUEUE_NAME = 'bankpay';

export interface QueueInfra {
  backend: Config['queue']['backend'];
  queue: Queue;
  createWorker(processor: Processor, options?: Partial<Omit<WorkerOptions, 'connection'>>): Worker;
  isReachable(): Promise<boolean>;
  close(): Promise<void>;
}

export function createQueueInfra(config: Config['queue'], databaseUrl: string): QueueInfra {
  // BullMQ's key prefix (Redis) or schema (PostgreSQL): separate namespaces on one server.
  const prefix = config.prefix;
  if (config.backend === 'redis') {
    // Producer side (the API): no offline queue, so a Redis outage fails fast instead of piling up.
    const producer = new Redis(config.redisUrl, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      lazyConnect: false,
    });
    producer.on('error', () => {}); // reported through readiness and failed commands, not crashes
    const queue = new Queue(QUEUE_NAME, { connection: producer, ...(prefix ? { prefix } : {}) });
    queue.on('error', () => {}); // an outage shows in readiness and in failed enqueues
    const workers: Worker[] = [];
    const workerConnections: Redis[] = [];
    return {
      backend: 'redis',
      queue,
      createWorker(processor, options = {}) {
        // BullMQ workers block on Redis and need retries forever (maxRetriesPerRequest: null).
        const connection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
        connection.on('error', () => {});
        workerConnections.push(connection);
        const worker = new Worker(QUEUE_NAME, processor, {
          connection,
          ...(prefix ? { prefix } : {}),
          ...options,
        });
        workers.push(worker);
        return worker;
      },
      async isReachable() {
        try {
          if (producer.status !== 'ready') {
            // Just started or reconnecting: give it a moment rather than reporting a blip.
            await Promise.race([
              once(producer, 'ready'),
              new Promise((_, reject) => setTimeout(reject, 1_000)),
            ]);
          }
          return (await producer.ping()) === 'PONG';
        } catch {
          return false;
        }
      },
      async close() {
        await Promise.all(workers.map((w) => w.close()));
        await queue.close();
        producer.disconnect();
        for (const c of workerConnections) c.disconnect();
      },
    };
  }
  const pg = withBackend(createPostgresBackend);
  const connection = {
    connectionString: databaseUrl,
    schema: prefix ? `bullmq_${prefix}` : 'bullmq',
    migrate: true,
  };
  const queue = new pg.Queue(QUEUE_NAME, { connection }) as unknown as Queue;
  queue.on('error', () => {}); // an outage shows in readiness and in failed enqueues
  const workers: Worker[] = [];
  return {
    backend: 'postgres',
    queue,
    createWorker(processor, options = {}) {
      const worker = new pg.Worker(QUEUE_NAME, processor, { connection, ...options }) as unknown as Worker;
      workers.push(worker);
      return worker;
    },
    async isReachable() {
      try {
        await queue.getJobCounts('waiting');
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      await Promise.all(workers.map((w) => w.close()));
      await queue.close();
    },
  };
}
