/** `npm run apikey -- --name NAME`: creates a merchant API key and prints it alone on the last line. */
import { createApiKey } from '../src/infra/api-keys.ts';
import { createDatabase } from '../src/infra/database.ts';

const i = process.argv.indexOf('--name');
const name = i > 0 ? process.argv[i + 1]?.trim() : undefined;
if (!name || name.length > 100) {
  console.error('usage: npm run apikey -- --name <name (1-100 characters)>');
  process.exit(1);
}
const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set: point it at the Bankpay database (npm run migrate first)');
  process.exit(1);
}
const db = createDatabase(url, { poolSize: 1 });
try {
  const created = await createApiKey(db, name);
  console.error(`created API key "${created.name}" (id ${created.id}); it is shown once, store it now:`);
  console.log(created.key);
} catch (error) {
  console.error(`apikey failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await db.$disconnect();
}
