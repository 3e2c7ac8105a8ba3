/**
 * The merchant's webhook endpoints (DESIGN.md §7.3): the only code that touches the
 * `webhook_endpoints` table. Secrets arrive sealed (the service seals them with the key ring); this
 * file never sees one in the clear.
 */
import type { Database } from '../infra/database.ts';

/** The most endpoints an installation may have: each is a fan-out of every event. */
export const MAX_WEBHOOK_ENDPOINTS = 16;

export interface WebhookEndpointRow {
  id: string;
  url: string;
  events: string[];
  description: string | null;
  secretSealed: string;
  previousSecretSealed: string | null;
  previousSecretUntil: Date | null;
  createdAt: Date;
  failingSince: Date | null;
  disabledAt: Date | null;
  disabledReason: string | null;
}

export interface WebhookEndpointsRepository {
  /**
   * Stores a new endpoint, unless MAX_WEBHOOK_ENDPOINTS exist already: then null, nothing stored.
   * (Counted under a transaction-scoped advisory lock, so two creations at once cannot both pass.)
   */
  create(row: {
    id: string;
    url: string;
    events: string[];
    description: string | null;
    secretSealed: string;
  }): Promise<WebhookEndpointRow | null>;
  /** Every endpoint, newest first (at most MAX_WEBHOOK_ENDPOINTS). */
  list(): Promise<WebhookEndpointRow[]>;
  find(id: string): Promise<WebhookEndpointRow | null>;
  /** Deletes the endpoint and its pending deliveries (its attempts stay, with their events). False when unknown. */
  delete(id: string): Promise<boolean>;
  /**
   * A new secret: the current one becomes the previous one and keeps signing for `overlapMs` more
   * (by the database's clock, which the workers compare it with); a previous one still within its
   * overlap is dropped. Null when unknown.
   */
  rotateSecret(id: string, secretSealed: string, overlapMs: number): Promise<WebhookEndpointRow | null>;
}

/** An arbitrary constant: the advisory lock that serializes endpoint creation. */
const CREATE_LOCK = 7_340_015;

export function createWebhookEndpointsRepository(db: Database): WebhookEndpointsRepository {
  return {
    async create(row) {
      return db.$transaction(async (tx) => {
        await tx.$executeRaw`SELECT pg_advisory_xact_lock(${CREATE_LOCK})`;
        if ((await tx.webhookEndpoint.count()) >= MAX_WEBHOOK_ENDPOINTS) return null;
        return tx.webhookEndpoint.create({ data: row });
      });
    },
    async list() {
      return db.webhookEndpoint.findMany({ orderBy: [{ createdAt: 'desc' }, { id: 'desc' }] });
    },
    async find(id) {
      return db.webhookEndpoint.findUnique({ where: { id } });
    },
    async delete(id) {
      const { count } = await db.webhookEndpoint.deleteMany({ where: { id } });
      return count > 0;
    },
    async rotateSecret(id, secretSealed, overlapMs) {
      // One statement: the previous secret is the one stored at this instant, whatever another
      // rotation did just before.
      const rows = await db.$queryRaw<Array<{ id: string }>>`
        UPDATE "webhook_endpoints"
        SET "previous_secret_sealed" = "secret_sealed",
            "previous_secret_until" = now() + ${overlapMs} * interval '1 millisecond',
            "secret_sealed" = ${secretSealed}
        WHERE "id" = ${id}
        RETURNING "id"`;
      return rows.length > 0 ? db.webhookEndpoint.findUnique({ where: { id } }) : null;
    },
  };
}
