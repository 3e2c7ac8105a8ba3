/** `npm run migrate`: applies pending migrations to DATABASE_URL. */
import { applyMigrations } from '../src/infra/migrations.ts';

const url = process.env.DATABASE_URL;
if (!url) {
  console.error(
    'DATABASE_URL is not set: set it to a PostgreSQL URL, e.g. postgresql://user:pass@127.0.0.1:5432/bankpay',
  );
  process.exit(1);
}
try {
  const started = Date.now();
  const result = await applyMigrations(url, { log: (line) => console.log(line) });
  console.log(
    `migrations: ${result.applied.length} applied, ${result.alreadyApplied} already applied (${Date.now() - started} ms)`,
  );
} catch (error) {
  console.error(`migrate failed: ${(error as Error).message}`);
  process.exit(1);
}
