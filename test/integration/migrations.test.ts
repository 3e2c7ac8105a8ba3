import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { applyMigrations, MIGRATIONS_DIR, readMigrations } from '../../src/infra/migrations.ts';
import { npmScript } from '../support/npm-script.ts';

const run = promisify(execFile);
const migrate = npmScript('migrate');
const scratch = `bankpay_migrations_${process.pid}`;
let scratchUrl: string;

beforeAll(async () => {
  const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${scratch}`);
  await admin.query(`CREATE DATABASE ${scratch}`);
  await admin.end();
  scratchUrl = inject('postgresAdminUrl').replace(/\/postgres$/, `/${scratch}`);
});

afterAll(async () => {
  const admin = new pg.Client({ connectionString: inject('postgresAdminUrl') });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${scratch} WITH (FORCE)`);
  await admin.end();
});

describe('migrations', () => {
  it('every migration keeps the schema it was made from, and the newest one is the current schema', () => {
    const migrations = readMigrations();
    expect(migrations.length).toBeGreaterThan(0);
    for (const m of migrations) expect(existsSync(join(MIGRATIONS_DIR, m.name, 'schema.prisma'))).toBe(true);
    const newest = migrations.at(-1)!;
    const snapshot = readFileSync(join(MIGRATIONS_DIR, newest.name, 'schema.prisma'), 'utf8');
    const current = readFileSync(new URL('../../prisma/schema.prisma', import.meta.url), 'utf8');
    // A schema change without `npm run migration:create` would leave the database behind the code.
    expect(current, 'prisma/schema.prisma changed: run npm run migration:create -- --name <change>').toBe(
      snapshot,
    );
  });

  it('`npm run migrate` applies all migrations once, records them as Prisma does, and is idempotent', async () => {
    const first = await run(migrate.file, migrate.args, {
      env: { ...process.env, DATABASE_URL: scratchUrl },
    });
    expect(first.stdout).toMatch(
      new RegExp(`migrations: ${readMigrations().length} applied, 0 already applied`),
    );
    const second = await run(migrate.file, migrate.args, {
      env: { ...process.env, DATABASE_URL: scratchUrl },
    });
    expect(second.stdout).toMatch(
      new RegExp(`migrations: 0 applied, ${readMigrations().length} already applied`),
    );

    const client = new pg.Client({ connectionString: scratchUrl });
    await client.connect();
    const { rows } = await client.query(
      'SELECT migration_name, checksum, finished_at FROM _prisma_migrations',
    );
    expect(rows.map((r) => r.migration_name)).toEqual(readMigrations().map((m) => m.name));
    expect(rows.map((r) => r.checksum)).toEqual(readMigrations().map((m) => m.checksum));
    const tables = await client.query(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name",
    );
    expect(tables.rows.map((r) => r.table_name)).toEqual(
      expect.arrayContaining(['api_keys', 'checkout_events', 'checkouts', 'idempotency_records']),
    );
    await client.end();
  });

  it('concurrent migrators (API and worker starting together) do not collide', async () => {
    const results = await Promise.all([
      applyMigrations(scratchUrl),
      applyMigrations(scratchUrl),
      applyMigrations(scratchUrl),
    ]);
    expect(results.every((r) => r.applied.length === 0)).toBe(true);
  });

  it('fails with a message naming DATABASE_URL when it is missing', async () => {
    const env = { ...process.env };
    delete env.DATABASE_URL;
    await expect(run(migrate.file, migrate.args, { env })).rejects.toMatchObject({
      stderr: expect.stringContaining('DATABASE_URL is not set'),
    });
  });
});
