/**
 * The demo shop of `npm run dev` (and of the browser tests and the element benchmark): a product
 * page with a basket and "Pay with your bank", which is the checkout element (DESIGN.md §7.4) in
 * bank picker mode, loaded from the API with its SRI hash. Its tiny server side is what a
 * merchant's server does: it prices the basket and creates the checkout with the merchant API key
 * (`POST /api/checkout` → Bankpay's `POST /v1/checkouts`), and hands the page only the checkout's
 * clientSecret.
 *
 *   GET  /               the shop page (strict CSP: scripts from itself and the API only)
 *   GET  /shop.js, /shop.css
 *   POST /api/checkout   { bankId, loginHint, items: { [productId]: quantity }, attempt } → { clientSecret, id, reference }
 *
 * The page's origin must be in the API's CORS_ORIGINS: the element reads the banks and the
 * checkout from the API directly.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readBody as readRequestBody } from '../sandbox/http.ts';
import { checkoutElement } from '../src/elements/checkout-element.ts';

export interface Product {
  id: string;
  name: string;
  /** Minor units of the shop's currency. */
  price: number;
  blurb: string;
}

export const DEMO_CATALOGUE: readonly Product[] = [
  { id: 'tee', name: 'Bankpay T-shirt', price: 2495, blurb: 'Organic cotton, one size fits all' },
  { id: 'mug', name: 'Approval mug', price: 1250, blurb: 'For the coffee you drink while you approve' },
];

/** The products' pictures: inline SVG (no emoji font needed, nothing for the CSP to allow). */
const PICTURES: Record<string, string> = {
  tee: '<path d="M22 10l-12 6 4 10 6-3v27h28V23l6 3 4-10-12-6c-2 4-6 6-12 6s-10-2-12-6z" fill="#3b2f8f"/>',
  mug:
    '<path d="M14 16h28v28a6 6 0 0 1-6 6H20a6 6 0 0 1-6-6z" fill="#b54708"/>' +
    '<path d="M42 22h4a6 6 0 0 1 0 12h-4" fill="none" stroke="#b54708" stroke-width="4"/>',
};
export const DEMO_CURRENCY = 'EUR';

export interface DemoShopOptions {
  /** 0 or absent: a free port. */
  port?: number;
  /** The API as this server reaches it (to create checkouts). */
  apiUrl: string;
  /** The API as the shopper's browser reaches it (the element's api-base); default apiUrl. */
  publicApiUrl?: string;
  /** The merchant API key; it never leaves this server. */
  apiKey: string;
  /** The sandbox bank app, linked from the page ("open it beside this page"). */
  bankAppUrl?: string;
  /** Shown as the shop's name and to the element (the bank app shows the API's MERCHANT_NAME). */
  merchantName: string;
  /** Called with one line per checkout created or refused. */
  log?: (line: string) => void;
}

export interface DemoShop {
  url: string;
  port: number;
  close(): Promise<void>;
}

const STATIC_DIR = new URL('./demo-shop/', import.meta.url);
const MAX_BODY = 4096;
const ATTEMPT = /^[A-Za-z0-9-]{8,64}$/;

/** Escapes text for an HTML text node or a quoted attribute value. */
function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function renderPage(o: DemoShopOptions & { publicApiUrl: string }): string {
  const element = checkoutElement();
  const api = escapeHtml(o.publicApiUrl);
  const merchant = escapeHtml(o.merchantName);
  const catalogue = JSON.stringify(DEMO_CATALOGUE).replace(/</g, '\\u003c');
  const products = DEMO_CATALOGUE.map(
    (p) => `
      <div class="product">
        <svg class="picture" viewBox="0 0 64 64" aria-hidden="true">${PICTURES[p.id] ?? ''}</svg>
        <div><h3>${escapeHtml(p.name)}</h3><p>${escapeHtml(p.blurb)}</p></div>
        <div class="qty" role="group" aria-label="Quantity of ${escapeHtml(p.name)}">
          <button type="button" data-product="${p.id}" data-step="-1" aria-label="One ${escapeHtml(p.name)} less">−</button>
          <output id="qty-${p.id}" aria-live="polite">0</output>
          <button type="button" data-product="${p.id}" data-step="1" aria-label="One ${escapeHtml(p.name)} more">+</button>
        </div>
      </div>`,
  ).join('');
  const bankApp = o.bankAppUrl
    ? `<p class="hint">This is a sandbox: pay as <strong>alice</strong>, <strong>bob</strong> or <strong>carol</strong>,
        and approve on their phone, the <a href="${escapeHtml(o.bankAppUrl)}" target="_blank" rel="noopener">sandbox bank app</a>:
        open it beside this page.</p>`
    : '';
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${merchant}: demo shop</title>
<link rel="stylesheet" href="/shop.css">
<script type="module" src="${api}/elements/v1/checkout.js" integrity="${element.integrity}" crossorigin="anonymous"></script>
<script type="module" src="/shop.js"></script>
<script type="application/json" id="catalogue">${catalogue}</script>
</head>
<body>
<header>
  <h1>${merchant}</h1>
  <label>Language <select id="language"><option value="en">English</option><option value="de">Deutsch</option></select></label>
</header>
<main>
  <section aria-labelledby="products-title">
    <div class="card">
      <h2 id="products-title">Products</h2>${products}
    </div>
    <div class="card">
      <h2>How paying with your bank works</h2>
      <ol class="steps">
        <li>Choose your bank and type the login you use for it.</li>
        <li>Your bank sends the payment to its app on your phone. Check that it shows the same code as this page.</li>
        <li>Approve it in the app. This page shows the result by itself: no reload, no card number.</li>
      </ol>
      ${bankApp}
    </div>
  </section>
  <section aria-labelledby="basket-title">
    <div class="card basket">
      <h2 id="basket-title">Your basket</h2>
      <table><tbody id="basket-rows"></tbody><tfoot><tr><td>Total</td><td id="basket-total"></td></tr></tfoot></table>
    </div>
    <div class="card thanks" id="thanks" role="status" hidden>
      <h2>Thank you!</h2>
      <p>Order <strong id="thanks-reference"></strong> is paid. We ship it tomorrow.</p>
    </div>
    <bankpay-checkout api-base="${api}" merchant-name="${merchant}" currency="${DEMO_CURRENCY}" lang="en"></bankpay-checkout>
  </section>
</main>
</body>
</html>
`;
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(body));
}

/** The body as text, refused past MAX_BODY (the sandbox's reader). */
async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRequestBody(req, MAX_BODY)).toString('utf8');
}

interface CheckoutRequest {
  bankId: string;
  loginHint: string;
  items: Record<string, number>;
  attempt: string;
}

function parseCheckoutRequest(body: unknown): CheckoutRequest | string {
  if (typeof body !== 'object' || body === null) return 'send a JSON object';
  const { bankId, loginHint, items, attempt } = body as Record<string, unknown>;
  if (typeof bankId !== 'string' || bankId.length === 0 || bankId.length > 64) return 'bankId';
  if (typeof loginHint !== 'string' || loginHint.trim().length === 0 || loginHint.length > 255)
    return 'loginHint';
  if (typeof attempt !== 'string' || !ATTEMPT.test(attempt)) return 'attempt';
  if (typeof items !== 'object' || items === null) return 'items';
  const quantities: Record<string, number> = {};
  for (const product of DEMO_CATALOGUE) {
    const quantity = (items as Record<string, unknown>)[product.id] ?? 0;
    if (!Number.isInteger(quantity) || (quantity as number) < 0 || (quantity as number) > 9) return 'items';
    quantities[product.id] = quantity as number;
  }
  return { bankId, loginHint: loginHint.trim(), items: quantities, attempt };
}

export async function startDemoShop(options: DemoShopOptions): Promise<DemoShop> {
  const publicApiUrl = (options.publicApiUrl ?? options.apiUrl).replace(/\/+$/, '');
  const apiOrigin = new URL(publicApiUrl).origin;
  const page = renderPage({ ...options, publicApiUrl });
  const css = readFileSync(new URL('shop.css', STATIC_DIR), 'utf8');
  const js = readFileSync(new URL('shop.js', STATIC_DIR), 'utf8');
  // Scripts from this shop and the API only; the element's styles are a constructed stylesheet,
  // which style-src does not govern, so no 'unsafe-inline' anywhere.
  const csp = [
    "default-src 'none'",
    `script-src 'self' ${apiOrigin}`,
    `connect-src 'self' ${apiOrigin}`,
    "style-src 'self'",
    "img-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
  const log = options.log ?? (() => {});

  async function createCheckout(req: IncomingMessage, res: ServerResponse): Promise<void> {
    // A JSON content type is not a "simple" one: another site's page cannot post here without a
    // preflight, which this server never allows.
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) {
      return sendJson(res, 415, { error: 'send application/json' });
    }
    let parsed: CheckoutRequest | string;
    try {
      parsed = parseCheckoutRequest(JSON.parse(await readBody(req)));
    } catch {
      parsed = 'send a JSON object';
    }
    if (typeof parsed === 'string') return sendJson(res, 400, { error: `invalid ${parsed}` });
    const lines = DEMO_CATALOGUE.filter((p) => (parsed.items[p.id] ?? 0) > 0);
    const amount = lines.reduce((sum, p) => sum + (parsed.items[p.id] ?? 0) * p.price, 0);
    if (amount === 0) return sendJson(res, 400, { error: 'the basket is empty' });
    const reference = `order-${randomBytes(3).toString('hex').toUpperCase()}`;
    const description = lines.map((p) => `${parsed.items[p.id]} × ${p.name}`).join(', ');
    let answer: Response;
    try {
      answer = await fetch(`${options.apiUrl.replace(/\/+$/, '')}/v1/checkouts`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${options.apiKey}`,
          'content-type': 'application/json',
          'idempotency-key': `demo-shop-${parsed.attempt}`,
        },
        body: JSON.stringify({
          amount,
          currency: DEMO_CURRENCY,
          bankId: parsed.bankId,
          loginHint: parsed.loginHint,
          reference,
          description,
        }),
        signal: AbortSignal.timeout(10_000),
      });
    } catch (error) {
      log(`checkout not created: the API did not answer (${(error as Error).message})`);
      return sendJson(res, 502, { error: 'the payment service did not answer' });
    }
    const body = (await answer.json().catch(() => ({}))) as Record<string, unknown>;
    if (answer.status !== 202) {
      log(`checkout refused by the API: ${answer.status} ${String(body.code ?? '')}`);
      return sendJson(res, answer.status >= 500 ? 502 : 400, { error: body.code ?? 'refused' });
    }
    log(
      `checkout ${String(body.id)} for ${reference} (${description}), ${(amount / 100).toFixed(2)} ${DEMO_CURRENCY}`,
    );
    return sendJson(res, 201, { clientSecret: body.clientSecret, id: body.id, reference });
  }

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'http://shop.invalid').pathname;
    const method = req.method ?? 'GET';
    if (method === 'GET' && (path === '/' || path === '/index.html')) {
      return send(res, 200, 'text/html; charset=utf-8', page, {
        'content-security-policy': csp,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      });
    }
    if (method === 'GET' && path === '/shop.js') return send(res, 200, 'text/javascript; charset=utf-8', js);
    if (method === 'GET' && path === '/shop.css') return send(res, 200, 'text/css; charset=utf-8', css);
    if (method === 'GET' && path === '/favicon.ico') {
      res.writeHead(204).end();
      return;
    }
    if (method === 'POST' && path === '/api/checkout') return createCheckout(req, res);
    sendJson(res, 404, { error: 'not found' });
  }

  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    route(req, res).catch((error: Error) => {
      log(`error: ${error.message}`);
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error' });
      else res.destroy();
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
