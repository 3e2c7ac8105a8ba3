import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { authenticateApiKey, hashSecret } from '../../src/infra/api-keys.ts';
import { createDatabase } from '../../src/infra/database.ts';
import { sandboxBanksFile } from '../support/env.ts';
import { npmScript } from '../support/npm-script.ts';

const run = promisify(execFile);
const apikey = npmScript('apikey');

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
      expect(await authenticateApiKey(db, key)).toBe(row?.id);
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
