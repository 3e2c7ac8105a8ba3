/**
 * The defaults an operator copies: no key anyone could know is accepted in production, the Docker
 * files demand the secrets instead of supplying them, keep the sandbox bank app on this machine,
 * and never bake a `.env` into an image. docker-compose.yml is read as Compose reads it (YAML).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { ConfigError, isPublishedKey, loadConfig } from '../../src/config.ts';
import { sandboxBanksFile } from '../support/env.ts';

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

function env(overrides: Record<string, string | undefined>): Record<string, string | undefined> {
  return {
    DATABASE_URL: 'postgresql://u:p@127.0.0.1:5432/db',
    REDIS_URL: 'redis://127.0.0.1:6379',
    BANKS_FILE: sandboxBanksFile(),
    MERCHANT_NAME: 'Acme Shop',
    MERCHANT_IBAN: 'DE89370400440532013000',
    TOKEN_ENCRYPTION_KEYS: randomBytes(32).toString('base64'),
    CLIENT_SECRET_KEYS: randomBytes(32).toString('base64'),
    ...overrides,
  };
}

const publishedDockerDefault = '3q2+7wAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=';

describe('keys in production', () => {
  it.each([
    ['TOKEN_ENCRYPTION_KEYS', publishedDockerDefault],
    ['TOKEN_ENCRYPTION_KEYS', Buffer.alloc(32, 7).toString('base64')],
    ['CLIENT_SECRET_KEYS', Buffer.alloc(32).toString('base64')],
    [
      'TOKEN_ENCRYPTION_KEYS',
      `${randomBytes(32).toString('base64')},${Buffer.alloc(32, 9).toString('base64')}`,
    ],
  ])('%s = %s is refused with NODE_ENV=production, naming the variable', (name, value) => {
    expect(() => loadConfig(env({ NODE_ENV: 'production', [name]: value }))).toThrow(ConfigError);
    expect(() => loadConfig(env({ NODE_ENV: 'production', [name]: value }))).toThrow(
      new RegExp(`^${name}: key \\d is a published or non-random key`),
    );
    // Outside production (development, tests) such a key still works.
    expect(loadConfig(env({ [name]: value })).port).toBe(3000);
  });

  it('accepts random keys in production', () => {
    expect(loadConfig(env({ NODE_ENV: 'production' })).tokenEncryptionKeys).toHaveLength(1);
    for (let i = 0; i < 200; i++) expect(isPublishedKey(randomBytes(32))).toBe(false);
  });
});

describe('docker-compose.yml and .dockerignore', () => {
  const compose = parse(read('docker-compose.yml')) as {
    services: Record<string, { environment?: Record<string, string>; ports?: string[] }>;
    'x-app': { environment: Record<string, string> };
  };

  it('demands both key variables and supplies no default for them', () => {
    for (const name of ['TOKEN_ENCRYPTION_KEYS', 'CLIENT_SECRET_KEYS']) {
      expect(compose['x-app'].environment[name]).toMatch(new RegExp(`^\\$\\{${name}:\\?.+\\}$`));
    }
    expect(read('docker-compose.yml')).not.toContain(publishedDockerDefault);
  });

  it('publishes the sandbox bank app on this machine only', () => {
    const ports = compose.services.sandbox?.ports ?? [];
    expect(ports.length).toBeGreaterThan(0);
    for (const port of ports) expect(port).toMatch(/^127\.0\.0\.1:/);
  });

  it('keeps .env files out of the image', () => {
    const ignored = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim());
    expect(ignored).toContain('.env');
    expect(ignored).toContain('.env.*');
  });
});
