/**
 * The checkout element (DESIGN.md §7.4) in a real browser, end to end: Chromium opens the demo
 * shop (devstack/demo-shop.ts), pays with the element, and taps Approve or Deny in the sandbox
 * bank app on a second page, the customer's phone; the element follows the checkout through the
 * real API and worker. Ping and poll mode, deny, expiry, a failure, a cancel, keyboard only at
 * 320 px, the fallbacks (no EventSource: held reads; a stream that cannot pass and a proxy that
 * drops Prefer: plain reads), hostile strings, and an API restart while the element waits.
 * axe-core checks every state; each state's screenshot is kept in test-results/browser/
 * (BROWSER_ARTIFACTS_DIR), and with DOCS_SCREENSHOTS=1 the README's set in docs/images/.
 *
 * One Chromium for the file, a context per test, the tests of a block in parallel. Without
 * Chromium the file is skipped with a message, except in CI (.ci/run installs it), where it fails.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { text } from 'node:stream/consumers';
import type { Browser, BrowserContext, Locator, Page, Request } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import {
  axeViolations,
  checkoutElement,
  decideOnPhone,
  findChromium,
  launchChromium,
  payInShop,
  shownBindingMessage,
  whenElementShows,
} from '../../devstack/browser.ts';
import { type DemoShop, startDemoShop } from '../../devstack/demo-shop.ts';
import { freePort } from '../../devstack/ports.ts';
import { type DevSandbox, startDevSandbox } from '../../devstack/sandbox.service.ts';
import { sandboxBankEntry } from '../../sandbox/banks-entry.ts';
import { checkoutBody, decideInBankApp, eventually, pendingInBankApp, useSystem } from '../support/system.ts';

const chromiumPath = findChromium();
if (!chromiumPath && process.env.CI) {
  throw new Error('Chromium is not installed: CI runs the browser tests (.ci/run installs it with apt-get)');
}
if (!chromiumPath) {
  console.warn(
    '[browser] Chromium not found (apt-get install -y chromium, or set CHROMIUM_PATH): the checkout element browser tests are SKIPPED',
  );
}

const root = new URL('../../', import.meta.url).pathname;
const artifacts = process.env.BROWSER_ARTIFACTS_DIR ?? join(root, 'test-results', 'browser');
const docsImages = join(root, 'docs', 'images');
const updateDocs = process.env.DOCS_SCREENSHOTS === '1';

const BANKS = { ping: 'Sandbox Bank', poll: 'Sandbox Bank (poll)', short: 'Sandbox Bank (3 s expiry)' };
const SHOPPER = { width: 1000, height: 760 };
const PHONE = { width: 390, height: 760 };

// biome-ignore lint/suspicious/noExplicitAny: page-side values are read loosely
type Json = any;

describe.skipIf(!chromiumPath)('the checkout element in Chromium', () => {
  let sandbox: DevSandbox;
  let shop: DemoShop;
  let browser: Browser;
  let apiPort: number;
  let shopPort: number;
  /** A merchant's own site, for the README's ten lines: listening from the start, its pages set by that test. */
  let merchantPort: number;
  let merchantSite: Server | undefined;
  let merchantPages: RequestListener = (_req, res) => res.writeHead(404).end();
  const banksFile = join(inject('certsDir'), '..', `banks-element-${process.pid}.json`);

  // A sandbox bank of this file's own, able to ping this file's API (CIBA ping mode), and the
  // same bank in poll mode and with a 3-second approval window.
  beforeAll(async () => {
    mkdirSync(artifacts, { recursive: true });
    if (updateDocs) mkdirSync(docsImages, { recursive: true });
    [apiPort, shopPort] = [await freePort(), await freePort()];
    merchantSite = createServer((req, res) => merchantPages(req, res)).listen(0, '127.0.0.1');
    await once(merchantSite, 'listening');
    merchantPort = (merchantSite.address() as AddressInfo).port;
    sandbox = await startDevSandbox({
      certsDir: inject('certsDir'),
      port: 0,
      appPort: 0,
      testMode: true,
      defaultInterval: 1,
      merchantName: 'Acme Shop',
      notificationEndpoint: `http://127.0.0.1:${apiPort}/ciba/notify/sandbox`,
    });
    const entry = (overrides: Record<string, unknown>) =>
      sandboxBankEntry(sandbox.bank, { ...sandbox.certificates }, overrides);
    writeFileSync(
      banksFile,
      JSON.stringify({
        banks: [
          entry({ id: 'sandbox', name: BANKS.ping, deliveryMode: 'ping' }),
          entry({ id: 'sandbox-poll', name: BANKS.poll }),
          entry({ id: 'sandbox-short', name: BANKS.short, requestedExpiry: 3 }),
        ],
      }),
    );
  });
  afterAll(async () => {
    await browser?.close();
    merchantSite?.closeAllConnections();
    merchantSite?.close();
    await shop?.close();
    await sandbox?.bank.close();
  });
  const { system, http } = useSystem(() => ({
    BANKS_FILE: banksFile,
    PORT: String(apiPort),
    PUBLIC_URL: `http://127.0.0.1:${apiPort}`,
    CORS_ORIGINS: `http://127.0.0.1:${shopPort},http://127.0.0.1:${merchantPort}`,
  }));
  beforeAll(async () => {
    shop = await startDemoShop({
      port: shopPort,
      apiUrl: system().url,
      apiKey: system().apiKey,
      bankAppUrl: sandbox.bank.appUrl,
      merchantName: 'Acme Shop',
    });
    browser = await launchChromium(chromiumPath!);
  });

  /** A fresh customer at the sandbox bank: no test shares a bank app list with another. */
  async function customer(): Promise<string> {
    const login = `e-${randomBytes(5).toString('hex')}`;
    const res = await fetch(`${sandbox.bank.controlUrl}/customers`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login }),
    });
    if (res.status !== 201) throw new Error(`customer: ${res.status}`);
    return login;
  }

  const contexts: BrowserContext[] = [];
  afterAll(async () => {
    await Promise.all(contexts.map((c) => c.close().catch(() => {})));
  });
  async function newPage(
    viewport = SHOPPER,
    options: { bypassCSP?: boolean; noEventSource?: boolean } = {},
  ): Promise<Page> {
    const context = await browser.newContext({ viewport, bypassCSP: options.bypassCSP ?? false });
    contexts.push(context);
    if (options.noEventSource) {
      await context.addInitScript(() => {
        delete (globalThis as { EventSource?: unknown }).EventSource;
      });
    }
    const page = await context.newPage();
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    (page as Page & { errors: string[] }).errors = errors;
    return page;
  }
  const pageErrors = (page: Page) => (page as Page & { errors: string[] }).errors;

  async function shot(name: string, target: Page | Locator, docs = false): Promise<Buffer> {
    const file = join(artifacts, `${name}.png`);
    const image = await target.screenshot({ path: file, animations: 'disabled' });
    if (docs && updateDocs) copyFileSync(file, join(docsImages, `${name}.png`));
    return image;
  }

  /** Two screenshots side by side in one picture: the shop and the phone, as on one screen. */
  async function sideBySide(name: string, left: Buffer, right: Buffer): Promise<void> {
    const page = await newPage({ width: SHOPPER.width + PHONE.width + 24, height: SHOPPER.height });
    const img = (b: Buffer) => `<img alt="" src="data:image/png;base64,${b.toString('base64')}">`;
    await page.setContent(
      `<body style="margin:0;display:flex;gap:24px;background:#101828;align-items:flex-start">${img(left)}${img(right)}</body>`,
    );
    await shot(name, page, true);
  }

  /** The state the element is in now has no accessibility violation (axe-core, whole page). */
  async function expectAccessible(page: Page, state: string): Promise<void> {
    expect(await axeViolations(page), `axe-core violations with the element in state ${state}`).toEqual([]);
  }

  /** Every bankpay:* event the element fires, recorded in the page: [event, detail.status]. */
  async function recordEvents(page: Page): Promise<void> {
    await page.evaluate(() => {
      const w = globalThis as unknown as {
        document: { querySelector(s: string): EventTarget };
        bankpayEvents: string[][];
      };
      w.bankpayEvents = [];
      const element = w.document.querySelector('bankpay-checkout');
      for (const s of [
        'pending',
        'awaiting_approval',
        'authorized',
        'succeeded',
        'declined',
        'expired',
        'failed',
      ]) {
        element.addEventListener(`bankpay:${s}`, (e) =>
          w.bankpayEvents.push([s, (e as CustomEvent<{ status: string }>).detail.status]),
        );
      }
    });
  }
  const recordedEvents = (page: Page): Promise<string[][]> =>
    page.evaluate(() => (globalThis as unknown as { bankpayEvents: string[][] }).bankpayEvents);
  /** The checkout the element shows (its `checkout` property). */
  const elementCheckout = (page: Page): Promise<Json> =>
    page.evaluate(
      () =>
        (
          globalThis as unknown as { document: { querySelector(s: string): { checkout: unknown } } }
        ).document.querySelector('bankpay-checkout').checkout,
    );

  // Alone, first: its pictures are the README's, and its timing is not shared with other tests.
  describe('the story the README tells', () => {
    it('ping mode: the bank app beside the shop shows the same code; approved there, the shop shows success at once, no reload', async () => {
      // Alice, as a newcomer would pay in `npm run dev`: the pictures in the README are these.
      const [page, phone] = await Promise.all([newPage(), newPage(PHONE)]);
      const login = 'alice';
      await page.goto(shop.url);
      await checkoutElement(page).locator('select').waitFor();
      await page.evaluate(() => {
        (globalThis as { samePage?: boolean }).samePage = true;
      });
      await recordEvents(page);
      await shot('element-picker', checkoutElement(page), true);
      await expectAccessible(page, 'picker');

      await payInShop(page, shop.url, { bank: BANKS.ping, login });
      const code = await shownBindingMessage(page);
      expect(code).toMatch(/^PAY-[A-Z0-9]{6}$/);
      const element = checkoutElement(page);
      await expect
        .poll(() => element.locator('[part~="code-label"]').textContent())
        .toBe('Check that your bank app shows this code');
      await expect
        .poll(() => element.locator('[role="status"]').textContent())
        .toBe(`Approve the payment in your bank app. Check that it shows the code ${code}.`);
      await expect
        .poll(() => element.locator('[role="timer"]').textContent())
        .toMatch(/^[45]:\d\d left to approve$/);
      await expectAccessible(page, 'awaiting_approval');
      const shopAwaiting = await shot('shop-awaiting', page);
      await shot('element-awaiting', element, true);

      // The phone shows the same code, the merchant and the amount.
      await phone.goto(new URL(`#${login}`, sandbox.bank.appUrl).href);
      const card = phone.locator('article.card', { hasText: code });
      await card.waitFor();
      expect(await card.textContent()).toContain('Acme Shop');
      expect(await card.textContent()).toContain('€49.90');
      await sideBySide('shop-and-bank-app', shopAwaiting, await shot('bank-app-awaiting', phone));

      const shown = whenElementShows(page, 'succeeded');
      const tappedAt = await decideOnPhone(phone, sandbox.bank.appUrl, {
        login,
        bindingMessage: code,
        decision: 'approve',
      });
      const shownAt = await shown;
      console.log(`[browser] ping mode: approval tap → success shown in ${shownAt - tappedAt} ms`);
      // Ping mode: the bank tells the API at once; the stream brings it to the page.
      expect(shownAt - tappedAt).toBeLessThan(3_000);
      await expect.poll(() => element.locator('[part~="title"]').textContent()).toBe('Payment complete');
      expect(await element.locator('[part~="text"]').textContent()).toBe('You paid €49.90.');
      await expect.poll(() => page.locator('#thanks').isVisible()).toBe(true);
      expect(await page.evaluate(() => (globalThis as { samePage?: boolean }).samePage)).toBe(true);
      const events = await recordedEvents(page);
      expect(events.at(-1)).toEqual(['succeeded', 'succeeded']);
      for (const [name, status] of events) expect(status).toBe(name);
      const checkout = await elementCheckout(page);
      expect(checkout).toMatchObject({
        status: 'succeeded',
        amount: 4990,
        currency: 'EUR',
        bankId: 'sandbox',
      });
      expect(checkout.timeline).toBeUndefined();
      await expectAccessible(page, 'succeeded');
      await shot('element-succeeded', element, true);
      const phoneAfter = await shot('bank-app-approved', phone);
      await sideBySide('shop-and-bank-app-succeeded', await shot('shop-succeeded', page), phoneAfter);
      expect(pageErrors(page)).toEqual([]);
    }, 60_000);
  });

  describe.concurrent('paying in the demo shop', () => {
    it('poll mode, in German: approved in the bank app, the shop shows success', async ({ expect }) => {
      const [page, phone, login] = await Promise.all([newPage(), newPage(PHONE), customer()]);
      await payInShop(page, shop.url, { bank: BANKS.poll, login, language: 'de' });
      const code = await shownBindingMessage(page);
      const element = checkoutElement(page);
      expect(await element.locator('[part~="title"]').textContent()).toBe('In Ihrer Banking-App freigeben');
      expect(await element.locator('[part~="code-label"]').textContent()).toBe(
        'Prüfen Sie, dass Ihre Banking-App diesen Code zeigt',
      );
      expect(await element.locator('[part~="amount"]').textContent()).toMatch(/^49,90\s€$/);
      await expectAccessible(page, 'awaiting_approval (de)');
      await shot('element-awaiting-de', element, true);
      const shown = whenElementShows(page, 'succeeded');
      const tappedAt = await decideOnPhone(phone, sandbox.bank.appUrl, {
        login,
        bindingMessage: code,
        decision: 'approve',
      });
      const shownAt = await shown;
      console.log(
        `[browser] poll mode (1 s interval): approval tap → success shown in ${shownAt - tappedAt} ms`,
      );
      expect(await element.locator('[part~="title"]').textContent()).toBe('Zahlung erfolgreich');
      await expectAccessible(page, 'succeeded (de)');
      await shot('element-succeeded-de', element);
      expect(pageErrors(page)).toEqual([]);
    }, 60_000);

    it('deny: declined, nothing paid; Try again goes back to the picker with the bank and login kept', async ({
      expect,
    }) => {
      const [page, phone, login] = await Promise.all([newPage(), newPage(PHONE), customer()]);
      await payInShop(page, shop.url, { bank: BANKS.poll, login });
      const code = await shownBindingMessage(page);
      const shown = whenElementShows(page, 'declined');
      await decideOnPhone(phone, sandbox.bank.appUrl, { login, bindingMessage: code, decision: 'deny' });
      await shown;
      const element = checkoutElement(page);
      expect(await element.locator('[part~="title"]').textContent()).toBe('Payment declined');
      expect(await element.locator('[part~="text"]').textContent()).toBe(
        'You declined the payment in your bank app. Nothing was paid.',
      );
      await expectAccessible(page, 'declined');
      await shot('element-declined', element, true);
      await element.locator('button', { hasText: 'Try again' }).click();
      await element.locator('form').waitFor();
      expect(await element.locator('input[name=login]').inputValue()).toBe(login);
      expect(await element.locator('select').inputValue()).toBe('sandbox-poll');
      expect(await page.locator('[data-step="1"]').first().isDisabled()).toBe(false);
      expect(pageErrors(page)).toEqual([]);
    }, 60_000);

    it('expiry: not approved within the 3 s window → expired, with Try again', async ({ expect }) => {
      const [page, login] = await Promise.all([newPage(), customer()]);
      await payInShop(page, shop.url, { bank: BANKS.short, login });
      await shownBindingMessage(page);
      await whenElementShows(page, 'expired', 20_000);
      const element = checkoutElement(page);
      expect(await element.locator('[part~="title"]').textContent()).toBe('The request expired');
      expect(await element.locator('[part~="text"]').textContent()).toBe(
        'The payment was not approved in time. Nothing was paid.',
      );
      expect(await element.locator('button', { hasText: 'Try again' }).isVisible()).toBe(true);
      await expectAccessible(page, 'expired');
      await shot('element-expired', element, true);
    }, 60_000);

    it('a login the bank does not know: failed, said in words the shopper can act on', async ({ expect }) => {
      const page = await newPage();
      await payInShop(page, shop.url, {
        bank: BANKS.poll,
        login: `nobody-${randomBytes(3).toString('hex')}`,
      });
      await whenElementShows(page, 'failed');
      const element = checkoutElement(page);
      expect(await element.locator('[part~="title"]').textContent()).toBe('Payment failed');
      expect(await element.locator('[part~="text"]').textContent()).toBe(
        'Your bank does not know this login. Check it and try again.',
      );
      expect(await element.locator('[part~="detail"]').textContent()).toBe('Code: unknown_user_id');
      await expect
        .poll(() => element.locator('[role="status"]').textContent())
        .toBe('Payment failed. Your bank does not know this login. Check it and try again.');
      await expectAccessible(page, 'failed');
      await shot('element-failed', element, true);
    }, 60_000);

    it('the merchant cancels: canceled, no Try again', async ({ expect }) => {
      const [page, login] = await Promise.all([newPage(), customer()]);
      await payInShop(page, shop.url, { bank: BANKS.poll, login });
      await shownBindingMessage(page);
      const { id } = await elementCheckout(page);
      const shown = whenElementShows(page, 'canceled');
      expect((await http.post(`/v1/checkouts/${id}/cancel`)).status).toBe(200);
      await shown;
      const element = checkoutElement(page);
      expect(await element.locator('[part~="title"]').textContent()).toBe('Payment canceled');
      expect(await element.locator('button').count()).toBe(0);
      await expectAccessible(page, 'canceled');
      await shot('element-canceled', element, true);
    }, 60_000);

    it('keyboard only at 320 px: pick, type, Enter; the focus follows the news; nothing overflows', async ({
      expect,
    }) => {
      const [page, login] = await Promise.all([newPage({ width: 320, height: 640 }), customer()]);
      await page.goto(shop.url);
      const element = checkoutElement(page);
      await element.locator('select').focus();
      await page.keyboard.press('ArrowDown'); // the poll bank
      await page.keyboard.press('Tab');
      await page.keyboard.type(login);
      await expectAccessible(page, 'picker at 320 px');
      await page.keyboard.press('Enter');
      const code = await shownBindingMessage(page);
      const focused = () =>
        page.evaluate(
          () =>
            (
              globalThis as unknown as {
                document: {
                  querySelector(s: string): { shadowRoot: { activeElement: { id: string } | null } };
                };
              }
            ).document.querySelector('bankpay-checkout').shadowRoot.activeElement?.id,
        );
      await expect.poll(focused).toBe('title');
      const width = await page.evaluate(
        () =>
          (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document
            .documentElement.scrollWidth,
      );
      expect(width).toBeLessThanOrEqual(320);
      const box = await element.boundingBox();
      expect(box!.x + box!.width).toBeLessThanOrEqual(320);
      await expectAccessible(page, 'awaiting_approval at 320 px');
      await element.scrollIntoViewIfNeeded();
      await shot('element-320px', element, true);
      const shown = whenElementShows(page, 'succeeded');
      const request = await pendingInBankApp(login, 15_000, sandbox.bank.appUrl);
      expect(request.bindingMessage).toBe(code);
      await decideInBankApp(login, request.authReqId, 'approve', sandbox.bank.appUrl);
      await shown;
      await expect.poll(focused).toBe('title');
      await expectAccessible(page, 'succeeded at 320 px');
    }, 60_000);

    it('no EventSource in the browser: held reads (If-None-Match + Prefer: wait) bring the result', async ({
      expect,
    }) => {
      const [page, login] = await Promise.all([newPage(SHOPPER, { noEventSource: true }), customer()]);
      const requests: Request[] = [];
      page.on('request', (r) => {
        if (r.url().includes('/v1/checkouts/')) requests.push(r);
      });
      await payInShop(page, shop.url, { bank: BANKS.ping, login });
      const code = await shownBindingMessage(page);
      const shown = whenElementShows(page, 'succeeded');
      const request = await pendingInBankApp(login, 15_000, sandbox.bank.appUrl);
      expect(request.bindingMessage).toBe(code);
      await decideInBankApp(login, request.authReqId, 'approve', sandbox.bank.appUrl);
      await shown;
      expect(requests.some((r) => r.url().includes('/stream'))).toBe(false);
      const headers = await Promise.all(requests.map((r) => r.allHeaders()));
      expect(headers.some((h) => h.prefer === 'wait=25' && h['if-none-match']?.startsWith('W/"'))).toBe(true);
      for (const h of headers) expect(h.authorization).toMatch(/^Bearer chk_.+_secret_/);
      // A handful of requests, not a poll every second.
      expect(requests.length).toBeLessThan(8);
    }, 60_000);

    it('a stream that cannot pass and a proxy that drops Prefer: plain reads after Retry-After bring the result', async ({
      expect,
    }) => {
      const [page, login] = await Promise.all([newPage(), customer()]);
      const reads: Array<{ at: number; prefer: string | undefined; status: number }> = [];
      await page.route('**/v1/checkouts/*/stream*', (route) =>
        route.fulfill({ status: 503, contentType: 'text/plain', body: 'no streams through this proxy' }),
      );
      await page.route('**/v1/checkouts/chk_*', async (route) => {
        const request = route.request();
        if (request.method() !== 'GET') return route.continue();
        const headers = await request.allHeaders();
        const at = Date.now();
        const { prefer: _dropped, ...passed } = headers;
        const response = await route.fetch({ headers: passed });
        reads.push({ at, prefer: headers.prefer, status: response.status() });
        return route.fulfill({ response });
      });
      await payInShop(page, shop.url, { bank: BANKS.poll, login });
      const code = await shownBindingMessage(page);
      const shown = whenElementShows(page, 'succeeded');
      const request = await pendingInBankApp(login, 15_000, sandbox.bank.appUrl);
      expect(request.bindingMessage).toBe(code);
      await decideInBankApp(login, request.authReqId, 'approve', sandbox.bank.appUrl);
      await shown;
      // It asked to wait, got a 304 at once that said nothing of the wait (the proxy dropped it),
      // and read plainly from then on, each read after the Retry-After of the one before (≥ 1 s).
      const notHeld = reads.findIndex((r) => r.prefer !== undefined && r.status === 304);
      expect(notHeld, JSON.stringify(reads)).toBeGreaterThanOrEqual(0);
      const plain = reads.slice(notHeld + 1);
      expect(plain.length).toBeGreaterThan(0);
      for (const r of plain) expect(r.prefer).toBeUndefined();
      for (let i = 1; i < plain.length; i++) expect(plain[i]!.at - plain[i - 1]!.at).toBeGreaterThan(900);
    }, 60_000);

    it("the README's ten lines, as written, on a merchant's site of their own: pick, pay, approve, the page moves on", async ({
      expect,
    }) => {
      const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
      const section = readme.slice(readme.indexOf('**Ten lines in the page.**'));
      const snippet = /```html\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
      expect(snippet.split('\n').filter(Boolean)).toHaveLength(10);
      const served = await fetch(`${system().url}/elements/v1/checkout.js`);
      expect(snippet, 'the README pins another element: npm run element -- --update-readme').toContain(
        `integrity="${served.headers.get('subresource-integrity')}"`,
      );
      const page = snippet.replaceAll('https://pay.shop.example', system().url);
      // The merchant's site: the page, and a server that creates the checkout with its key.
      let created: Json;
      merchantPages = async (req, res) => {
        if (req.method === 'POST' && req.url === '/checkout') {
          const { bankId, loginHint } = JSON.parse(await text(req)) as Record<string, string>;
          const answer = await http.createCheckout({ ...checkoutBody(loginHint ?? ''), bankId });
          created = await answer.json();
          res
            .writeHead(200, { 'content-type': 'application/json' })
            .end(JSON.stringify({ clientSecret: created.clientSecret }));
          return;
        }
        const title = req.url?.startsWith('/thanks') ? 'Thank you' : 'Checkout';
        res
          .writeHead(200, { 'content-type': 'text/html; charset=utf-8' })
          .end(
            `<!doctype html><html lang="en"><head><title>${title}</title></head><body><main>${title === 'Checkout' ? page : '<h1>Thank you</h1>'}</main></body></html>`,
          );
      };
      const [shopper, login] = await Promise.all([newPage(), customer()]);
      await shopper.goto(`http://127.0.0.1:${merchantPort}/`);
      const element = checkoutElement(shopper);
      await element.locator('input[name=login]').fill(login);
      expect(await element.locator('button[type=submit]').textContent()).toBe('Pay €49.90');
      await element.locator('button[type=submit]').click();
      const code = await shownBindingMessage(shopper);
      const request = await pendingInBankApp(login, 15_000, sandbox.bank.appUrl);
      expect(request.bindingMessage).toBe(code);
      await decideInBankApp(login, request.authReqId, 'approve', sandbox.bank.appUrl);
      await shopper.waitForURL(`http://127.0.0.1:${merchantPort}/thanks?order=${created.reference}`, {
        timeout: 15_000,
      });
      expect(pageErrors(shopper)).toEqual([]);
    }, 60_000);

    it('the states in between, held still: creating, pending, authorized, loading, not found; each accessible', async ({
      expect,
    }) => {
      const page = await newPage();
      const apiOrigin = new URL(system().url).origin;
      const cors = {
        'access-control-allow-origin': new URL(shop.url).origin,
        'access-control-expose-headers': 'etag, retry-after, preference-applied',
      };
      let status = 'pending';
      let release: () => void = () => {};
      const created = new Promise<void>((resolve) => {
        release = resolve;
      });
      const now = new Date().toISOString();
      await page.route(`${apiOrigin}/v1/checkouts/**`, async (route) => {
        const request = route.request();
        if (request.method() === 'OPTIONS') {
          return route.fulfill({
            status: 204,
            headers: { ...cors, 'access-control-allow-headers': 'authorization, if-none-match, prefer' },
          });
        }
        const url = new URL(request.url());
        if (url.pathname.endsWith('/stream')) return route.fulfill({ status: 503, headers: cors, body: '' });
        // A held read answers after a while, as the API's would (here: with the state of now).
        const held = (await request.allHeaders())['if-none-match'];
        await new Promise((r) => setTimeout(r, held ? 300 : 500));
        if (url.pathname.endsWith('/chk_gone')) {
          return route.fulfill({
            status: 404,
            headers: cors,
            contentType: 'application/problem+json',
            body: JSON.stringify({ status: 404, code: 'checkout_not_found' }),
          });
        }
        return route.fulfill({
          headers: { ...cors, etag: `W/"${status}"`, 'preference-applied': 'wait=25' },
          json: {
            ...{
              id: 'chk_still',
              amount: 4990,
              currency: 'EUR',
              bankId: 'sandbox',
              reference: 'order-STILL',
            },
            ...{ description: null, bindingMessage: 'PAY-STILL1', createdAt: now, updatedAt: now },
            ...{
              expiresAt: new Date(Date.now() + 300_000).toISOString(),
              payment: null,
              failure: null,
              status,
            },
          },
        });
      });
      await page.route('**/api/checkout', async (route) => {
        await created;
        return route.fulfill({ status: 201, json: { clientSecret: 'chk_still_secret_x', id: 'chk_still' } });
      });
      await page.goto(shop.url);
      const element = checkoutElement(page);
      const title = element.locator('[part~="title"]');
      await element.locator('input[name=login]').fill('alice');
      await element.locator('button[type=submit]').click();
      const states: Array<[string, string, () => void]> = [
        ['creating', 'Sending the payment to your bank…', release],
        [
          'pending',
          'Contacting your bank…',
          () => {
            status = 'authorized';
          },
        ],
        [
          'authorized',
          'Approved. Completing the payment…',
          () =>
            void page.evaluate(() =>
              (
                globalThis as unknown as {
                  document: { querySelector(s: string): { setAttribute(n: string, v: string): void } };
                }
              ).document
                .querySelector('bankpay-checkout')
                .setAttribute('client-secret', 'chk_gone_secret_x'),
            ),
        ],
        ['loading', 'Loading the payment…', () => {}],
        ['error', 'This payment could not be loaded', () => {}],
      ];
      for (const [state, heading, next] of states) {
        await expect.poll(() => title.textContent(), { timeout: 10_000 }).toBe(heading);
        await expectAccessible(page, state);
        await shot(`element-${state}`, element);
        next();
      }
      expect(await element.locator('[part~="text"]').textContent()).toBe(
        'Reload the page, or start the payment again.',
      );
      expect(pageErrors(page)).toEqual([]);
    }, 60_000);

    it('hostile strings from the merchant and the bank are shown as text, never run or parsed', async ({
      expect,
    }) => {
      // CSP off in this page: were anything parsed as HTML, its script would run.
      const page = await newPage(SHOPPER, { bypassCSP: true });
      const hostile = {
        bank: '<img src=x onerror="globalThis.pwned=1">Evil Bank',
        reference: '<script>globalThis.pwned=2</script>',
        description: '<img src=x onerror="globalThis.pwned=3"> & <b>bold</b>',
        message: '<svg onload="globalThis.pwned=4"></svg>failure',
        merchantBinding: 'PAY-<i>X</i>',
      };
      const apiOrigin = new URL(system().url).origin;
      const cors = {
        'access-control-allow-origin': new URL(shop.url).origin,
        'access-control-allow-headers': 'authorization, if-none-match, prefer',
        'access-control-expose-headers': 'etag, retry-after, preference-applied',
      };
      const checkout = (status: string, failure: unknown) => ({
        id: 'chk_hostile',
        status,
        amount: 4990,
        currency: 'EUR',
        bankId: 'sandbox',
        reference: hostile.reference,
        description: hostile.description,
        bindingMessage: hostile.merchantBinding,
        createdAt: new Date().toISOString(),
        updatedAt: new Date().toISOString(),
        expiresAt: new Date(Date.now() + 300_000).toISOString(),
        payment: null,
        failure,
      });
      let reads = 0;
      await page.route(`${apiOrigin}/v1/**`, async (route) => {
        const request = route.request();
        if (request.method() === 'OPTIONS') return route.fulfill({ status: 204, headers: cors });
        const url = new URL(request.url());
        if (url.pathname === '/v1/banks') {
          return route.fulfill({
            headers: cors,
            json: {
              data: [
                { id: 'sandbox', name: hostile.bank },
                { id: 'other', name: 'Other Bank' },
              ],
            },
          });
        }
        if (url.pathname.endsWith('/stream')) return route.fulfill({ status: 503, headers: cors, body: '' });
        reads += 1;
        const body =
          reads === 1
            ? checkout('awaiting_approval', null)
            : checkout('failed', { code: 'strange_code', message: hostile.message });
        return route.fulfill({ headers: { ...cors, etag: `W/"v${reads}"` }, json: body });
      });
      await page.route('**/api/checkout', (route) =>
        route.fulfill({ status: 201, json: { clientSecret: 'chk_hostile_secret_abc', id: 'chk_hostile' } }),
      );
      await page.goto(shop.url);
      const element = checkoutElement(page);
      await element.locator('select').waitFor();
      expect(await element.locator('option').first().textContent()).toBe(hostile.bank);
      await element.locator('input[name=login]').fill('<b>alice</b>');
      await element.locator('button[type=submit]').click();
      await whenElementShows(page, 'failed');
      const text = (await element.locator('[part~="container"]').textContent()) ?? '';
      expect(text).toContain(`${hostile.reference} · ${hostile.description}`);
      expect(text).toContain(`${hostile.message} (strange_code)`);
      const inside = await page.evaluate(() => {
        const w = globalThis as unknown as {
          pwned?: number;
          document: {
            querySelector(s: string): { shadowRoot: { querySelectorAll(s: string): { length: number } } };
          };
        };
        const shadow = w.document.querySelector('bankpay-checkout').shadowRoot;
        return { pwned: w.pwned, markup: shadow.querySelectorAll('img, script, svg, b, i').length };
      });
      expect(inside).toEqual({ pwned: undefined, markup: 0 });
      await shot('element-hostile-strings', element);
    }, 60_000);
  });

  describe('an API restart', () => {
    it('while the element waits: it says it reconnects, catches up on what happened meanwhile, and shows the result', async () => {
      const [page, phone, login] = await Promise.all([newPage(), newPage(PHONE), customer()]);
      await payInShop(page, shop.url, { bank: BANKS.ping, login });
      const code = await shownBindingMessage(page);
      const { id } = await elementCheckout(page);
      const element = checkoutElement(page);
      const notice = element.locator('[part~="notice"]');
      const shown = whenElementShows(page, 'succeeded', 45_000);
      await system().restartApi(async () => {
        // The stream ended with the API: the element says so and keeps trying.
        await notice.waitFor({ timeout: 10_000 });
        expect(await notice.textContent()).toBe('Connection lost. Reconnecting…');
        await expectAccessible(page, 'awaiting_approval, reconnecting');
        await shot('element-reconnecting', element);
        // Approved while the API is down: the bank's ping finds no API, the worker's safety poll
        // settles it; the element learns of it only from the API that comes back.
        await decideOnPhone(phone, sandbox.bank.appUrl, { login, bindingMessage: code, decision: 'approve' });
        await eventually(
          async () => (await system().db.checkout.findUnique({ where: { id } }))?.status === 'succeeded',
          20_000,
          'the worker to record the payment',
        );
        expect(await element.locator('[part~="title"]').textContent()).toBe('Approve in your bank app');
      });
      await shown;
      expect(await element.locator('[part~="title"]').textContent()).toBe('Payment complete');
      expect(await notice.count()).toBe(0);
      await expectAccessible(page, 'succeeded after a restart');
      expect(pageErrors(page)).toEqual([]);
    }, 90_000);
  });
});
