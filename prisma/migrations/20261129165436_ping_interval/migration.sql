-- AlterTable
ALTER TABLE "checkouts" ADD COLUMN     "earliest_poll_at" TIMESTAMPTZ(3);

-- Pinged checkouts due for their token request, claimed before every other due poll
-- (poll-schedule.repository.ts): a handful at any time, so the index stays tiny.
CREATE INDEX "checkouts_ping_due_idx" ON "checkouts"("next_poll_at")
  WHERE "ping_pending" AND "status" = 'awaiting_approval';
