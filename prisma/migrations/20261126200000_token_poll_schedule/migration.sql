-- The token poller's claim (src/checkout/checkout.repository.ts, claimDuePolls): due polls in
-- due order, from an index that holds only the checkouts awaiting approval.
CREATE INDEX "checkouts_poll_due_idx" ON "checkouts"("next_poll_at") WHERE "status" = 'awaiting_approval';

-- A busy checkouts table changes fast and its plans depend on fresh statistics (a compare-and-set
-- UPDATE … WHERE id = $1 AND status = … planned before the first ANALYZE scans the status index):
-- analyze and vacuum it after 2 % / 5 % of its rows changed, not the defaults' 10 % / 20 %.
ALTER TABLE "checkouts" SET (
  autovacuum_analyze_scale_factor = 0.02,
  autovacuum_vacuum_scale_factor = 0.05,
  autovacuum_vacuum_insert_scale_factor = 0.05
);
ALTER TABLE "checkout_events" SET (autovacuum_analyze_scale_factor = 0.02);
