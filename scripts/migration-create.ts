/**
 * `npm run migration:create -- --name add_something`: writes prisma/migrations/<timestamp>_<name>/
 * migration.sql with the SQL that takes the database from the existing migrations to the
 * current prisma/schema.prisma.
 *
 * Prisma's CLI needs a native engine downloaded from the internet; this uses the WebAssembly
 * schema engine instead. Each migration folder keeps a copy of the schema it was made from
 * (schema.prisma beside migration.sql): the new migration is the diff from the latest copy to the
 * current schema. The engine insists on a live connection, so a scratch embedded PostgreSQL runs
 * for the duration (about a second).
 */
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PrismaPg } from '@prisma/adapter-pg';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import { freePort } from '../devstack/ports.ts';
import { startEmbeddedDatabase } from '../devstack/postgres.service.ts';
import { MIGRATIONS_DIR, readMigrations } from '../src/infra/migrations.ts';

const nameArg = process.argv.indexOf('--name');
const name = (nameArg > 0 ? process.argv[nameArg + 1] : undefined)?.replace(/[^a-z0-9_]/gi, '_');
if (!name) {
  console.error('usage: npm run migration:create -- --name <snake_case_name>');
  process.exit(1);
}

/** wasm-bindgen output for Node: Node 20 cannot import .wasm, so instantiate it by hand. */
async function loadSchemaEngine() {
  const dir = new URL('../node_modules/@prisma/schema-engine-wasm/', import.meta.url).pathname;
  const bindings = await import(`${dir}schema_engine_bg.js`);
  // Node has WebAssembly; the ES lib typings do not declare it.
  const wasm = (
    globalThis as unknown as {
      WebAssembly: { instantiate(b: Buffer, i: object): Promise<{ instance: { exports: unknown } }> };
    }
  ).WebAssembly;
  const { instance } = await wasm.instantiate(readFileSync(`${dir}schema_engine_bg.wasm`), {
    './schema_engine_bg.js': bindings,
  });
  bindings.__wbg_set_wasm(instance.exports);
  (instance.exports as { __wbindgen_start(): void }).__wbindgen_start();
  return bindings;
}

const scratch = mkdtempSync(join(tmpdir(), 'bankpay-migration-'));
chmodSync(scratch, 0o755); // PostgreSQL runs as its own user when we are root
const db = await startEmbeddedDatabase({
  dataDir: join(scratch, 'pg'),
  port: await freePort(),
  database: 'scratch',
  ephemeral: true,
});
try {
  const { SchemaEngine } = await loadSchemaEngine();
  const adapter = bindMigrationAwareSqlAdapterFactory(new PrismaPg({ connectionString: db.url }));
  const engine = await SchemaEngine.new({ datamodels: undefined }, () => {}, adapter);
  const schema = readFileSync(new URL('../prisma/schema.prisma', import.meta.url), 'utf8');
  const previous = readMigrations().at(-1);
  const previousSchemaFile = previous ? join(MIGRATIONS_DIR, previous.name, 'schema.prisma') : undefined;
  if (previousSchemaFile && !existsSync(previousSchemaFile)) {
    throw new Error(`${previousSchemaFile} is missing: it is the starting point of the next migration`);
  }
  const result = await engine.diff({
    from: previousSchemaFile
      ? {
          tag: 'schemaDatamodel',
          files: [{ path: 'schema.prisma', content: readFileSync(previousSchemaFile, 'utf8') }],
        }
      : { tag: 'empty' },
    to: { tag: 'schemaDatamodel', files: [{ path: 'schema.prisma', content: schema }] },
    script: true,
    exitCode: null,
    filters: { externalTables: [], externalEnums: [] },
  });
  const sql = String(result.stdout ?? '').trim();
  if (!sql || /^-- This is an empty migration/.test(sql)) {
    console.log('the schema matches the migrations: nothing to create');
  } else {
    const stamp = new Date().toISOString().replace(/\D/g, '').slice(0, 14);
    const dir = join(MIGRATIONS_DIR, `${stamp}_${name}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'migration.sql'), `${sql}\n`);
    writeFileSync(join(dir, 'schema.prisma'), schema);
    console.log(`created ${dir}/migration.sql`);
  }
} finally {
  await db.stop();
  rmSync(scratch, { recursive: true, force: true });
}
