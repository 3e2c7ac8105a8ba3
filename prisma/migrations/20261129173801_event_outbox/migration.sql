-- CreateTable
CREATE TABLE "events" (
    "id" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "checkout_id" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "data" JSONB NOT NULL,

    CONSTRAINT "events_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "events_created_at_id_idx" ON "events"("created_at" DESC, "id" DESC);

-- CreateIndex
CREATE INDEX "events_checkout_id_idx" ON "events"("checkout_id");

-- The outbox (DESIGN.md §7.3): every status change a merchant is told of writes its event in the
-- transaction that makes it. A trigger rather than code in transition(): no path that changes a
-- status can leave its event out, and a change that rolls back takes its event with it.
-- `data` is the checkout as GET /v1/checkouts/{id} shows it after the change (checkout.service.ts
-- toView; test/integration/event-outbox.test.ts holds the two equal).
CREATE FUNCTION "checkout_event_outbox"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO "events" ("id", "type", "checkout_id", "created_at", "data")
  VALUES (
    'evt_' || replace(gen_random_uuid()::text, '-', ''),
    'checkout.' || NEW.status,
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
  RETURN NULL;
END
$$;

-- The event types of DESIGN.md §7.3: a checkout that starts waiting for the customer, and every
-- ending. (pending and authorized are steps of our own, not news for the merchant.)
CREATE TRIGGER "checkouts_event_outbox"
  AFTER UPDATE OF "status" ON "checkouts"
  FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status
        AND NEW.status IN ('awaiting_approval', 'succeeded', 'declined', 'expired', 'failed', 'canceled'))
  EXECUTE FUNCTION "checkout_event_outbox"();
