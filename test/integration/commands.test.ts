import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { authenticateApiKey, createApiKey, hashSecret } from '../../src/infra/api-keys.ts';
import { createDatabase } from '../../src/infra/database.ts';
import { sandboxBanksFile } from '../support/env.ts';
import { npmScript } from '../support/npm-script.ts';

const run = promisify(execFile);
const apikey = npmScript('apikey');

function runApikey(...args: string[]) {
  return run(apikey.file, [...apikey.args, ...args], {
    env: { ...process.env, DATABASE_URL: inject('databaseUrl') },
  });
}

describe('npm run apikey', () => {
  it('prints a new key alone on the last line and stores only its hash', async () => {
    const { stdout } = await run('npm', ['run', '--silent', 'apikey', '--', '--name', 'test shop'], {
      env: { ...process.env, DATABASE_URL: inject('databaseUrl') },
    });
    const key = stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^bpk_[A-Za-z0-9_-]{43}$/);

    const db = createDatabase(inject('databaseUrl'));
    try {
      const row = await db.apiKey.findUnique({ where: { hash: hashSecret(key) } });
      expect(row?.name).toBe('test shop');
      expect(JSON.stringify(row)).not.toContain(key);
      // No --scope: full access (scopes NULL), as every key made before scopes existed.
      expect(await authenticateApiKey(db, key)).toEqual({ id: row?.id, scopes: null });
      expect(await authenticateApiKey(db, `${key.slice(0, -1)}x`)).toBeNull();
      expect(await authenticateApiKey(db, 'not-a-key')).toBeNull();
    } finally {
      await db.$disconnect();
    }
  });

  it('refuses a missing name', async () => {
    await expect(
      run(apikey.file, apikey.args, {
        env: { ...process.env, DATABASE_URL: inject('databaseUrl') },
      }),
    ).rejects.toMatchObject({
      stderr: expect.stringContaining('usage: npm run apikey -- --name'),
    });
  });

  it('--scope makes a restricted key: the key alone on the last line, the scopes stored', async () => {
    const name = `storefront ${randomUUID()}`;
    const { stdout, stderr } = await runApikey(
      '--name',
      name,
      '--scope',
      'checkouts:read,checkouts:create',
      '--scope',
      'checkouts:read',
    );
    const key = stdout.trim().split('\n').at(-1)!;
    expect(key).toMatch(/^bpk_[A-Za-z0-9_-]{43}$/);
    expect(stderr).toContain('scopes checkouts:create, checkouts:read');
    const db = createDatabase(inject('databaseUrl'));
    try {
      const row = await db.apiKey.findUniqueOrThrow({ where: { hash: hashSecret(key) } });
      expect(row).toMatchObject({ name, scopes: ['checkouts:create', 'checkouts:read'] });
      expect(await authenticateApiKey(db, key)).toEqual({
        id: row.id,
        scopes: ['checkouts:create', 'checkouts:read'],
      });
    } finally {
      await db.$disconnect();
    }
  });

  it.each([
    [['--scope', 'checkouts:write'], 'unknown scope "checkouts:write"'],
    [['--scope', 'checkouts:read,refunds:create'], 'unknown scope "refunds:create"'],
    [['--scope', ''], 'no scope given'],
    [['--scope'], "'--scope <value>' argument missing"],
    [['--scopes', 'checkouts:read'], "Unknown option '--scopes'"],
  ])('refuses %j with a usage error naming the problem, and makes no key', async (extra, message) => {
    const name = `refused ${randomUUID()}`;
    const refused = runApikey('--name', name, ...extra);
    await expect(refused).rejects.toMatchObject({
      code: 1,
      stdout: '',
      stderr: expect.stringContaining(message),
    });
    await expect(refused).rejects.toMatchObject({
      stderr: expect.stringContaining('scopes: checkouts:create, checkouts:read, checkouts:cancel'),
    });
    const db = createDatabase(inject('databaseUrl'));
    try {
      expect(await db.apiKey.count({ where: { name } })).toBe(0);
    } finally {
      await db.$disconnect();
    }
  });

  it('--list shows every key with its id, name, prefix, scopes, creation and revocation, never a secret', async () => {
    const db = createDatabase(inject('databaseUrl'));
    try {
      const full = await createApiKey(db, `full ${randomUUID()}`);
      const reader = await createApiKey(db, `reporting ${randomUUID()}`, ['checkouts:read']);
      const revokedAt = new Date('2026-11-20T10:00:00.000Z');
      await db.apiKey.update({ where: { id: reader.id }, data: { revokedAt } });
      const rows = await db.apiKey.findMany({ where: { id: { in: [full.id, reader.id] } } });

      const { stdout } = await runApikey('--list');
      const lines = stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^ID\s+NAME\s+PREFIX\s+SCOPES\s+CREATED\s+REVOKED$/);
      const line = (id: string) => lines.find((l) => l.startsWith(id)) ?? '';
      for (const row of rows) {
        const cells = line(row.id).split(/ {2,}/);
        expect(cells).toEqual([
          row.id,
          row.name,
          row.prefix,
          row.id === full.id ? 'all' : 'checkouts:read',
          row.createdAt.toISOString(),
          row.id === full.id ? '-' : revokedAt.toISOString(),
        ]);
      }
      for (const { key } of [full, reader]) {
        expect(stdout).not.toContain(key);
        expect(stdout).not.toContain(hashSecret(key));
        // Nothing of the secret beyond the prefix that identifies it.
        expect(stdout).not.toContain(key.slice(0, 16));
      }
    } finally {
      await db.$disconnect();
    }
  });
});

describe('npm run jwks', () => {
  it('prints the public JWK set of the banks file, each key with its kid, and names them per bank', async () => {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'jwks'], {
      env: { ...process.env, BANKS_FILE: sandboxBanksFile() },
    });
    const jwks = JSON.parse(stdout) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys.length).toBeGreaterThan(0);
    for (const key of jwks.keys) {
      expect(key).toMatchObject({ kid: expect.any(String), use: 'sig' });
      expect(key).not.toHaveProperty('d');
    }
    expect(stderr).toContain(`sandbox: ${jwks.keys[0]?.kid}`);
  });

  it('refuses to run without BANKS_FILE', async () => {
    const { BANKS_FILE: _, ...env } = process.env;
    await expect(run('npm', ['run', '--silent', 'jwks'], { env })).rejects.toMatchObject({
      stderr: expect.stringContaining('BANKS_FILE is not set'),
    });
  });
});
