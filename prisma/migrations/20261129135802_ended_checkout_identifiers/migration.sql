-- AlterTable
ALTER TABLE "checkouts" ALTER COLUMN "login_hint" DROP NOT NULL;
