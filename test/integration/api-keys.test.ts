/**
 * Merchant keys are remembered for a few seconds after a successful lookup: a revoked key stops
 * working within VERIFIED_KEY_TTL_MS, an unknown key is never remembered.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { authenticateApiKey, createApiKey, VERIFIED_KEY_TTL_MS } from '../../src/infra/api-keys.ts';
import { type System, startSystem } from '../support/system.ts';

let system: System;
beforeAll(async () => {
  system = await startSystem({}, { worker: false });
});
afterAll(async () => {
  await system?.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('merchant key lookups', () => {
  it('a revoked key is refused once the remembered lookup has lapsed', async () => {
    const { id, key } = await createApiKey(system.db, 'revoke-me');
    expect(await authenticateApiKey(system.db, key)).toBe(id);
    await system.db.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
    const now = Date.now();
    // Still within the window: the remembered lookup answers.
    expect(await authenticateApiKey(system.db, key)).toBe(id);
    vi.spyOn(Date, 'now').mockReturnValue(now + VERIFIED_KEY_TTL_MS + 1);
    expect(await authenticateApiKey(system.db, key)).toBeNull();
    // And stays refused.
    vi.restoreAllMocks();
    expect(await authenticateApiKey(system.db, key)).toBeNull();
  });

  it('an unknown key is looked up every time (a key created after a miss works at once)', async () => {
    expect(await authenticateApiKey(system.db, 'bpk_not-a-key')).toBeNull();
    const { id, key } = await createApiKey(system.db, 'new');
    expect(await authenticateApiKey(system.db, key)).toBe(id);
  });
});
