/** A storefront page on a configured origin may follow its checkout; other origins get nothing. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

let api: ApiApp;

beforeAll(async () => {
  api = await startApiApp({ env: { CORS_ORIGINS: 'https://shop.example' } });
});
afterAll(async () => {
  await api?.close();
});

describe('CORS', () => {
  it('answers the preflight of a configured origin for GET with Authorization', async () => {
    const res = await api.app.inject({
      method: 'OPTIONS',
      url: '/v1/checkouts/chk_x',
      headers: {
        origin: 'https://shop.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'authorization',
      },
    });
    expect(res.statusCode).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe('https://shop.example');
    expect(String(res.headers['access-control-allow-headers'])).toContain('authorization');
    expect(String(res.headers['access-control-allow-methods'])).toBe('GET');
  });

  it('lets a page hold a read and resume a stream: If-None-Match, Prefer, Last-Event-ID; ETag readable', async () => {
    const preflight = await api.app.inject({
      method: 'OPTIONS',
      url: '/v1/checkouts/chk_x/stream',
      headers: {
        origin: 'https://shop.example',
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'if-none-match,prefer,last-event-id',
      },
    });
    expect(preflight.statusCode).toBe(204);
    const allowed = String(preflight.headers['access-control-allow-headers']).split(/,\s*/);
    expect(allowed).toEqual(expect.arrayContaining(['if-none-match', 'prefer', 'last-event-id']));
    const read = await api.app.inject({
      method: 'GET',
      url: '/v1/banks',
      headers: { origin: 'https://shop.example' },
    });
    const exposed = String(read.headers['access-control-expose-headers']).split(/,\s*/);
    expect(exposed).toEqual(expect.arrayContaining(['etag', 'preference-applied', 'retry-after']));
  });

  it('shares nothing with another origin', async () => {
    const res = await api.app.inject({
      method: 'GET',
      url: '/v1/banks',
      headers: { origin: 'https://evil.example' },
    });
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('rejects an origin that is not an origin at start', async () => {
    await expect(startApiApp({ env: { CORS_ORIGINS: 'https://shop.example/path' } })).rejects.toThrow(
      /CORS_ORIGINS: .* must be an origin only/,
    );
  });
});
