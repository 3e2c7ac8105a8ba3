-- Restricted API keys: the scopes a key holds (src/infra/api-keys.ts SCOPES). NULL is full access,
-- which every key made before this migration keeps.
ALTER TABLE "api_keys" ADD COLUMN     "scopes" TEXT[];

-- Prisma reads a NULL list as an empty one, so an empty list must never be stored: it would read
-- as full access. A restricted key holds at least one scope (Prisma's schema cannot say this).
ALTER TABLE "api_keys" ADD CONSTRAINT "api_keys_scopes_not_empty"
  CHECK ("scopes" IS NULL OR cardinality("scopes") > 0);
