-- AlterTable
ALTER TABLE "checkouts" ADD COLUMN     "token_answer_encrypted" TEXT,
ADD COLUMN     "unanswered_claims" INTEGER NOT NULL DEFAULT 0;
