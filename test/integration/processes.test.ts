import { once } from 'node:events';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../devstack/ports.ts';
import { testEnv } from '../support/env.ts';
import { spawnScript } from '../support/system.ts';

async function waitFor(url: string, ms: number): Promise<Response> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await fetch(url);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

describe('npm start and npm run worker', () => {
  it.each(['src/server.ts', 'src/worker.ts'])(
    '%s stops at start with a message naming the invalid field',
    async (script) => {
      const started = Date.now();
      const { child, output } = spawnScript(script, testEnv({ MERCHANT_IBAN: 'DE00000000000000000000' }));
      const [code] = await once(child, 'exit');
      expect(code).toBe(78);
      expect(output()).toContain('configuration error: MERCHANT_IBAN is not a valid IBAN');
      expect(Date.now() - started).toBeLessThan(10_000);
    },
  );

  it('the API serves, then finishes gracefully on SIGTERM', async () => {
    const port = await freePort();
    const { child, output } = spawnScript(
      'src/server.ts',
      testEnv({ PORT: String(port), LOG_LEVEL: 'info' }),
    );
    try {
      const ready = await waitFor(`http://127.0.0.1:${port}/health/ready`, 20_000);
      expect(ready.status).toBe(200);
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(output()).toContain('shutting down');
    } finally {
      child.kill('SIGKILL');
    }
  });

  it('the worker starts, then stops gracefully on SIGTERM', async () => {
    const { child, output } = spawnScript('src/worker.ts', testEnv({ LOG_LEVEL: 'info' }));
    try {
      const deadline = Date.now() + 20_000;
      while (!output().includes('worker started') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 100));
      expect(output()).toContain('worker started');
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      expect(code).toBe(0);
      expect(output()).toContain('"msg":"stopped"');
    } finally {
      child.kill('SIGKILL');
    }
  });
});
