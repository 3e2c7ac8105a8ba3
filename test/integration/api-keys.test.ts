/**
 * Merchant keys are remembered for a few seconds after a successful lookup: a revoked key stops
 * working within VERIFIED_KEY_TTL_MS, an unknown key is never remembered, and a remembered key
 * keeps its scopes (never taken for a full-access key).
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
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: null });
    await system.db.apiKey.update({ where: { id }, data: { revokedAt: new Date() } });
    const now = Date.now();
    // Still within the window: the remembered lookup answers.
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: null });
    vi.spyOn(Date, 'now').mockReturnValue(now + VERIFIED_KEY_TTL_MS + 1);
    expect(await authenticateApiKey(system.db, key)).toBeNull();
    // And stays refused.
    vi.restoreAllMocks();
    expect(await authenticateApiKey(system.db, key)).toBeNull();
  });

  it('an unknown key is looked up every time (a key created after a miss works at once)', async () => {
    expect(await authenticateApiKey(system.db, 'bpk_not-a-key')).toBeNull();
    const { id, key } = await createApiKey(system.db, 'new');
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: null });
  });
});

describe('scopes and the remembered lookups', () => {
  it('a remembered key keeps its scopes: the memory never widens a key', async () => {
    const { id, key } = await createApiKey(system.db, 'reader', ['checkouts:read']);
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: ['checkouts:read'] });
    // The stored row changes; within the window the answer comes from the memory, and it is the
    // key as it was verified, scopes included (not a bare id that would read as full access).
    await system.db.apiKey.update({ where: { id }, data: { scopes: ['checkouts:create'] } });
    const now = Date.now();
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: ['checkouts:read'] });
    // After the window, the stored scopes: a change of scopes takes effect as a revocation does.
    vi.spyOn(Date, 'now').mockReturnValue(now + VERIFIED_KEY_TTL_MS + 1);
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: ['checkouts:create'] });
  });

  it('an empty scope list cannot be stored: Prisma would read it as NULL, full access', async () => {
    await expect(createApiKey(system.db, 'nothing', [])).rejects.toThrow('no scope given');
    const { id } = await createApiKey(system.db, 'reader', ['checkouts:read']);
    await expect(system.db.apiKey.update({ where: { id }, data: { scopes: [] } })).rejects.toThrow(
      /api_keys_scopes_not_empty/,
    );
  });

  it('a stored scope this version does not know grants nothing', async () => {
    const { id, key } = await createApiKey(system.db, 'from-a-newer-version', ['checkouts:read']);
    await system.db.apiKey.update({ where: { id }, data: { scopes: ['refunds:create'] } });
    expect(await authenticateApiKey(system.db, key)).toEqual({ id, scopes: [] });
  });
});
