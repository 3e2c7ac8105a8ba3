/**
 * GET /elements/v1/checkout.js (DESIGN.md §7.4): the checkout element as a static ES module that
 * any storefront origin may import: JavaScript media type, cacheable, an ETag that answers 304,
 * CORS for every origin, its SRI hash in a header (the one the README publishes), gzip when
 * accepted; other paths under /elements/ are 404 problem+json, never a 5xx.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CHECKOUT_ELEMENT_FILE,
  CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES,
  checkoutElement,
} from '../../src/elements/checkout-element.ts';
import { acceptsGzip } from '../../src/elements/elements.routes.ts';
import { type ApiApp, startApiApp } from '../support/api-app.ts';

const PATH = '/elements/v1/checkout.js';
const source = readFileSync(CHECKOUT_ELEMENT_FILE);
const integrity = `sha384-${createHash('sha384').update(source).digest('base64')}`;

let api: ApiApp;
beforeAll(async () => {
  api = await startApiApp({ env: { CORS_ORIGINS: 'https://shop.example' } });
});
afterAll(async () => {
  await api?.close();
});

describe('GET /elements/v1/checkout.js', () => {
  it('serves the module: JavaScript, cacheable, any origin, its SRI hash and ETag', async () => {
    const res = await api.app.inject({
      method: 'GET',
      url: PATH,
      headers: { origin: 'https://elsewhere.example' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/javascript; charset=utf-8');
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(res.rawPayload.equals(source)).toBe(true);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.headers['access-control-allow-origin']).toBe('*');
    expect(res.headers['cross-origin-resource-policy']).toBe('cross-origin');
    expect(res.headers['x-content-type-options']).toBe('nosniff');
    expect(res.headers['subresource-integrity']).toBe(integrity);
    expect(res.headers['repr-digest']).toBe(`sha-384=:${integrity.slice(7)}:`);
    expect(String(res.headers.vary)).toMatch(/accept-encoding/i);
    expect(res.headers.etag).toMatch(/^W\/"[A-Za-z0-9_-]{22}"$/);
    // The storefront's configured origin gets the same public answer.
    const fromShop = await api.app.inject({
      method: 'GET',
      url: PATH,
      headers: { origin: 'https://shop.example' },
    });
    expect(fromShop.headers['access-control-allow-origin']).toBe('*');
  });

  it('answers 304 to its ETag, and gzip to a client that accepts it', async () => {
    const first = await api.app.inject({ method: 'GET', url: PATH });
    const etag = String(first.headers.etag);
    const again = await api.app.inject({ method: 'GET', url: PATH, headers: { 'if-none-match': etag } });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers.etag).toBe(etag);
    expect(again.headers['cache-control']).toBe('public, max-age=300');
    const other = await api.app.inject({ method: 'GET', url: PATH, headers: { 'if-none-match': 'W/"old"' } });
    expect(other.statusCode).toBe(200);

    const zipped = await api.app.inject({
      method: 'GET',
      url: PATH,
      headers: { 'accept-encoding': 'br, gzip' },
    });
    expect(zipped.headers['content-encoding']).toBe('gzip');
    expect(gunzipSync(zipped.rawPayload).equals(source)).toBe(true);
    expect(zipped.headers.etag).toBe(etag);
    expect(zipped.headers['subresource-integrity']).toBe(integrity);
    const head = await api.app.inject({ method: 'HEAD', url: PATH });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-type']).toBe('text/javascript; charset=utf-8');
  });

  it('reads Accept-Encoding as RFC 9110 does', () => {
    expect(acceptsGzip('gzip')).toBe(true);
    expect(acceptsGzip('gzip, deflate, br')).toBe(true);
    expect(acceptsGzip('*')).toBe(true);
    expect(acceptsGzip('GZIP;q=0.5')).toBe(true);
    expect(acceptsGzip('gzip;q=0')).toBe(false);
    expect(acceptsGzip('*;q=1, gzip;q=0')).toBe(false);
    expect(acceptsGzip('br, identity')).toBe(false);
    expect(acceptsGzip('gzip;q=nonsense')).toBe(false);
    expect(acceptsGzip(undefined)).toBe(false);
  });

  it('answers anything else under /elements/ with 404 problem+json, odd input included', async () => {
    for (const url of [
      '/elements/v1/other.js',
      '/elements/v2/checkout.js',
      '/elements/v1/',
      '/elements/v1/checkout.js/extra',
      '/elements/v1/..%2f..%2fpackage.json',
      '/elements/v1/%00',
    ]) {
      const res = await api.app.inject({ method: 'GET', url });
      expect(res.statusCode, url).toBe(404);
      expect(res.headers['content-type'], url).toMatch(/^application\/problem\+json/);
      expect(res.json(), url).toMatchObject({ status: 404, code: 'not_found' });
    }
    const malformed = await api.app.inject({ method: 'GET', url: '/elements/v1/%E0%A4%A.js' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.headers['content-type']).toMatch(/^application\/problem\+json/);
    // A query string changes nothing; another method is not allowed there.
    expect((await api.app.inject({ method: 'GET', url: `${PATH}?v=1&x=%ZZ` })).statusCode).toBeLessThan(500);
    const post = await api.app.inject({ method: 'POST', url: PATH, payload: {} });
    expect(post.statusCode).toBe(404);
    expect(post.headers['content-type']).toMatch(/^application\/problem\+json/);
  });
});

describe('the element file', () => {
  it(`stays under its budget of ${CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES / 1024} kB gzipped, with no import of anything`, () => {
    const element = checkoutElement();
    expect(element.gzip.length).toBeLessThan(CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES);
    // No runtime dependency: the module imports nothing.
    expect(source.toString('utf8')).not.toMatch(/^\s*import\s|\bimport\(/m);
  });

  it('has its SRI hash published in the README, so that a page copied from there loads it', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(
      readme.includes(integrity),
      `README.md: publish the new SRI hash ${integrity} (npm run element -- --update-readme)`,
    ).toBe(true);
  });
});
