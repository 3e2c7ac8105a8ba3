-- AlterTable
ALTER TABLE "checkouts" ADD COLUMN     "notification_token_hash" TEXT,
ADD COLUMN     "ping_pending" BOOLEAN NOT NULL DEFAULT false;
