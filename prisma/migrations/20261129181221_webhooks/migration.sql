-- CreateTable
CREATE TABLE "webhook_endpoints" (
    "id" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "events" TEXT[],
    "description" TEXT,
    "secret_sealed" TEXT NOT NULL,
    "previous_secret_sealed" TEXT,
    "previous_secret_until" TIMESTAMPTZ(3),
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "failing_since" TIMESTAMPTZ(3),
    "disabled_at" TIMESTAMPTZ(3),
    "disabled_reason" TEXT,

    CONSTRAINT "webhook_endpoints_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "webhook_deliveries" (
    "event_id" TEXT NOT NULL,
    "endpoint_id" TEXT NOT NULL,
    "state" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "delivered_at" TIMESTAMPTZ(3),

    CONSTRAINT "webhook_deliveries_pkey" PRIMARY KEY ("event_id","endpoint_id")
);

-- CreateTable
CREATE TABLE "webhook_attempts" (
    "id" BIGSERIAL NOT NULL,
    "event_id" TEXT NOT NULL,
    "endpoint_id" TEXT NOT NULL,
    "attempted_at" TIMESTAMPTZ(3) NOT NULL,
    "duration_ms" INTEGER NOT NULL,
    "status" INTEGER,
    "error" TEXT,

    CONSTRAINT "webhook_attempts_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "webhook_deliveries_endpoint_id_idx" ON "webhook_deliveries"("endpoint_id");

-- CreateIndex
CREATE INDEX "webhook_attempts_event_id_attempted_at_idx" ON "webhook_attempts"("event_id", "attempted_at");

-- AddForeignKey
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "events"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_deliveries" ADD CONSTRAINT "webhook_deliveries_endpoint_id_fkey" FOREIGN KEY ("endpoint_id") REFERENCES "webhook_endpoints"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "webhook_attempts" ADD CONSTRAINT "webhook_attempts_event_id_fkey" FOREIGN KEY ("event_id") REFERENCES "events"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- The deliveries a worker may claim: pending ones, per endpoint, by due time (a lease is a due
-- time in the future). Per endpoint, so that a claim that leaves out an endpoint with a large
-- backlog (one that hangs) does not walk through that backlog.
CREATE INDEX "webhook_deliveries_due_idx" ON "webhook_deliveries" ("endpoint_id", "next_attempt_at") WHERE "state" = 'pending';

-- The outbox trigger (migration event_outbox) now also writes the event's deliveries (DESIGN.md §7.3).
CREATE OR REPLACE FUNCTION "checkout_event_outbox"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  event_id text := 'evt_' || replace(gen_random_uuid()::text, '-', '');
  event_type text := 'checkout.' || NEW.status;
BEGIN
  INSERT INTO "events" ("id", "type", "checkout_id", "created_at", "data")
  VALUES (
    event_id,
    event_type,
    NEW.id,
    clock_timestamp(),
    jsonb_build_object(
      'id', NEW.id,
      'status', NEW.status,
      'amount', NEW.amount,
      'currency', NEW.currency,
      'bankId', NEW.bank_id,
      'reference', NEW.reference,
      'description', NEW.description,
      'bindingMessage', NEW.binding_message,
      'createdAt', to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'updatedAt', to_char(NEW.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'expiresAt', to_char(NEW.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'payment', CASE WHEN NEW.bank_payment_id IS NOT NULL AND NEW.bank_payment_id <> ''
        THEN jsonb_build_object('bankPaymentId', NEW.bank_payment_id,
                                'status', COALESCE(NEW.payment_status, 'unknown'))
        ELSE 'null'::jsonb END,
      'failure', CASE WHEN NEW.failure_code IS NOT NULL AND NEW.failure_code <> ''
        THEN jsonb_build_object('code', NEW.failure_code,
                                'message', COALESCE(NEW.failure_message, NEW.failure_code))
        ELSE 'null'::jsonb END
    )
  );
  -- One delivery per enabled endpoint that subscribes to the type, in the same transaction: an
  -- event never waits for a fan-out step that a crash could skip.
  INSERT INTO "webhook_deliveries" ("event_id", "endpoint_id", "next_attempt_at", "created_at")
  SELECT event_id, e."id", clock_timestamp(), clock_timestamp()
  FROM "webhook_endpoints" e
  WHERE e."disabled_at" IS NULL AND event_type = ANY (e."events");
  RETURN NULL;
END
$$;

