/**
 * The checkout element as the API serves it (DESIGN.md §7.4): the one ES module
 * `elements/checkout.js`, read once at start, with what a cache and a merchant's page need to
 * trust it: its Subresource Integrity hash (sha384, W3C SRI §3.1, over the bytes the browser
 * gets once any content coding is undone), a version for its ETag, and the gzip coding made once.
 * No HTTP here: the route (elements.routes.ts), `npm run element` and the demo shop use it.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

/** Where the element's source is, from the repository root. */
export const CHECKOUT_ELEMENT_FILE = new URL('../../elements/checkout.js', import.meta.url);

/** The budget the element must stay under, gzipped (issue 16); a test holds it. */
export const CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES = 15 * 1024;

export interface StaticModule {
  /** The module's bytes (UTF-8). */
  source: Buffer;
  /** The same, gzip-coded at the highest level (served to clients that accept gzip). */
  gzip: Buffer;
  /** `sha384-<base64>`: the value of a script tag's `integrity` attribute. */
  integrity: string;
  /** A digest of the content (22 base64url characters of its SHA-256): its entity tag's value. */
  version: string;
}

export function staticModule(source: Buffer): StaticModule {
  const sha384 = createHash('sha384').update(source).digest('base64');
  const version = createHash('sha256').update(source).digest('base64url').slice(0, 22);
  return {
    source,
    gzip: gzipSync(source, { level: 9 }),
    integrity: `sha384-${sha384}`,
    version,
  };
}

let loaded: StaticModule | undefined;

/** The checkout element, read from disk the first time it is asked for. */
export function checkoutElement(): StaticModule {
  loaded ??= staticModule(readFileSync(CHECKOUT_ELEMENT_FILE));
  return loaded;
}
