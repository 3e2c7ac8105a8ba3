import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { authenticateApiKey, hashSecret } from '../../src/infra/api-keys.ts';
import { createDatabase } from '../../src/infra/database.ts';
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
