/**
 * `npm run apikey -- --name NAME [--scope a,b]`: creates a merchant API key and prints it alone on
 * the last line (full access without --scope). `npm run apikey -- --list`: the keys, without
 * their secrets (only a hash is stored; the secret is shown once, at creation).
 */
import { parseArgs } from 'node:util';
import {
  createApiKey,
  InvalidScopesError,
  type ListedApiKey,
  listApiKeys,
  parseScopes,
  SCOPES,
  type Scope,
} from '../src/infra/api-keys.ts';
import { createDatabase } from '../src/infra/database.ts';

const USAGE = [
  'usage: npm run apikey -- --name <name (1-100 characters)> [--scope <scope>,<scope>...]',
  '       npm run apikey -- --list',
  `scopes: ${SCOPES.join(', ')} (without --scope the key has full access)`,
].join('\n');

function usage(problem?: string): never {
  if (problem) console.error(`apikey: ${problem}`);
  console.error(USAGE);
  process.exit(1);
}

let args: { name?: string | undefined; scope?: string[] | undefined; list?: boolean | undefined };
try {
  ({ values: args } = parseArgs({
    options: {
      name: { type: 'string' },
      scope: { type: 'string', multiple: true },
      list: { type: 'boolean' },
    },
  }));
} catch (error) {
  usage((error as Error).message);
}

let create: { name: string; scopes: Scope[] | null } | undefined;
if (args.list) {
  if (args.name !== undefined || args.scope !== undefined) usage('--list takes no other option');
} else {
  const name = args.name?.trim();
  if (!name || name.length > 100) usage();
  try {
    // --scope may be repeated or comma-separated: the same list either way.
    create = { name, scopes: args.scope === undefined ? null : parseScopes(args.scope.join(',')) };
  } catch (error) {
    if (error instanceof InvalidScopesError) usage(error.message);
    throw error;
  }
}

const url = process.env.DATABASE_URL;
if (!url) {
  console.error('DATABASE_URL is not set: point it at the Bankpay database (npm run migrate first)');
  process.exit(1);
}

/** One line per key; names are the operator's own text, so control characters are shown escaped. */
function printKeys(keys: ListedApiKey[]): void {
  const rows = [
    ['ID', 'NAME', 'PREFIX', 'SCOPES', 'CREATED', 'REVOKED'],
    ...keys.map((k) => [
      k.id,
      JSON.stringify(k.name).slice(1, -1),
      k.prefix,
      k.scopes === null ? 'all' : k.scopes.join(','),
      k.createdAt.toISOString(),
      k.revokedAt?.toISOString() ?? '-',
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  for (const row of rows)
    console.log(
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    );
}

const db = createDatabase(url, { poolSize: 1 });
try {
  if (create) {
    const created = await createApiKey(db, create.name, create.scopes);
    const access = created.scopes === null ? 'full access' : `scopes ${created.scopes.join(', ')}`;
    console.error(
      `created API key "${created.name}" (id ${created.id}, ${access}); it is shown once, store it now:`,
    );
    console.log(created.key);
  } else {
    printKeys(await listApiKeys(db));
  }
} catch (error) {
  console.error(`apikey failed: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  await db.$disconnect();
}
