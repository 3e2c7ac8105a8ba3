-- Live status (DESIGN.md §7.2): every change of what a reader of a checkout sees is announced on
-- the channel `checkout_changed`, the payload being the checkout id only. API processes LISTEN on
-- it and re-read the row, which is always what they send (src/checkout/checkout.watch.ts).
--
-- Why the database announces it, in a trigger:
-- - pg_notify inside the transaction that makes the change is delivered only when that
--   transaction commits, after the new row is visible: no listener hears of a change that was
--   rolled back, and none reads the row before the change is there.
-- - A trigger rather than a clause in each repository statement: no code path can forget it.
--   Status changes go through Prisma's nested writes (transition, updateWhileInStatus), which have
--   no place for a pg_notify, and a later statement cannot leave it out by accident.
-- - The WHEN clause names the columns the API shows (status, updated_at, expires_at, the payment
--   and the failure). The token poll bookkeeping (next_poll_at, unanswered_claims, step_errors
--   without updated_at, token_answer_encrypted: thousands of claims a second at 10,000 pending)
--   changes none of them, and an AFTER trigger whose WHEN is false queues nothing.
CREATE FUNCTION "checkout_changed_notify"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('checkout_changed', NEW.id);
  RETURN NULL;
END
$$;

CREATE TRIGGER "checkouts_notify_change"
  AFTER UPDATE ON "checkouts"
  FOR EACH ROW
  WHEN ((OLD.status, OLD.updated_at, OLD.expires_at, OLD.bank_payment_id, OLD.payment_status,
         OLD.failure_code, OLD.failure_message)
        IS DISTINCT FROM
        (NEW.status, NEW.updated_at, NEW.expires_at, NEW.bank_payment_id, NEW.payment_status,
         NEW.failure_code, NEW.failure_message))
  EXECUTE FUNCTION "checkout_changed_notify"();
