/**
 * GET /elements/v1/checkout.js: the checkout element (DESIGN.md §7.4), one static ES module for
 * storefront pages on any origin. Public, cacheable, and verifiable: a page can pin it with the
 * `integrity` attribute, whose value the answer also carries (`Subresource-Integrity`, and as
 * RFC 9530 `Repr-Digest`). Any other path under /elements/ is the app's 404 problem+json.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { Type } from 'typebox';
import { ifNoneMatchMatches, weakETag } from '../http/conditional.ts';
import { problemResponses } from '../http/problem.ts';
import { checkoutElement, type StaticModule } from './checkout-element.ts';

export const CHECKOUT_ELEMENT_PATH = '/elements/v1/checkout.js';

/** Short enough that a fix reaches pages within minutes; the ETag makes the check cheap. */
const CACHE_CONTROL = 'public, max-age=300';

/** Adds `value` to the response's Vary header (the CORS plugin may have set one). */
function vary(reply: FastifyReply, value: string): void {
  const current = reply.getHeader('vary');
  reply.header('vary', current ? `${String(current)}, ${value}` : value);
}

/** Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3: listed, or `*`, with a weight above 0). */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let gzip: number | undefined;
  let any: number | undefined;
  for (const item of header.split(',')) {
    const [name = '', ...parameters] = item.split(';');
    const q = parameters.map((p) => p.trim().toLowerCase()).find((p) => p.startsWith('q='));
    const weight = q === undefined ? 1 : Number(q.slice(2));
    const coding = name.trim().toLowerCase();
    if (coding === 'gzip' || coding === 'x-gzip') gzip = weight;
    else if (coding === '*') any = weight;
  }
  const weight = gzip ?? any ?? 0;
  return Number.isFinite(weight) && weight > 0;
}

export async function elementsRoutes(
  app: FastifyInstance,
  options: { element?: StaticModule } = {},
): Promise<void> {
  const element = options.element ?? checkoutElement();
  const digest = `sha-384=:${element.integrity.slice('sha384-'.length)}:`;
  app.get(
    CHECKOUT_ELEMENT_PATH,
    {
      config: { public: true },
      schema: {
        operationId: 'getCheckoutElement',
        tags: ['elements'],
        summary: 'The checkout element: <bankpay-checkout>, one ES module for the storefront page',
        description:
          'Load it with `<script type="module" src=".../elements/v1/checkout.js" integrity="sha384-…" ' +
          'crossorigin="anonymous">` or `import` it. Any origin may load it (`Access-Control-Allow-Origin: *`); ' +
          'the `Subresource-Integrity` header carries the value for the integrity attribute. The element reads ' +
          'the checkout with its clientSecret only; its attributes, events and styling are in the README.',
        response: {
          200: {
            description: 'The module (gzip-coded when the client accepts it), cacheable for 5 minutes',
            content: {
              'text/javascript': {
                schema: Type.String(),
                example:
                  "export class BankpayCheckout extends HTMLElement { /* … */ }\ncustomElements.define('bankpay-checkout', BankpayCheckout);\n",
              },
            },
            headers: {
              ETag: {
                type: 'string',
                description: 'A weak tag of the content: send it back as If-None-Match',
              },
              'Subresource-Integrity': {
                type: 'string',
                description: 'The value of the script tag’s `integrity` attribute: `sha384-<base64>`',
              },
              'Repr-Digest': { type: 'string', description: 'The same SHA-384 as RFC 9530 writes it' },
            },
          },
          304: {
            type: 'null',
            description: 'Not Modified: the If-None-Match tag is the current content',
          },
          ...problemResponses(['rate_limited']),
        },
      },
    },
    async (request, reply) => {
      reply.header('cache-control', CACHE_CONTROL);
      reply.header('etag', weakETag(element.version));
      // A public static module: any page may load it (module scripts are fetched with CORS).
      reply.header('access-control-allow-origin', '*');
      reply.header('cross-origin-resource-policy', 'cross-origin');
      reply.header('subresource-integrity', element.integrity);
      reply.header('repr-digest', digest);
      vary(reply, 'Accept-Encoding');
      if (ifNoneMatchMatches(request.headers['if-none-match'], element.version)) {
        return reply.code(304).send();
      }
      reply.type('text/javascript; charset=utf-8');
      if (acceptsGzip(request.headers['accept-encoding'])) {
        reply.header('content-encoding', 'gzip');
        return reply.send(element.gzip);
      }
      return reply.send(element.source);
    },
  );
}
