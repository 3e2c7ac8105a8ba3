/**
 * A real browser for the browser tests and the element benchmark: the machine's Chromium (on
 * Debian/Ubuntu `apt-get install -y chromium`), driven by playwright-core. Playwright's own
 * browser downloads are not used: they need the internet, and CI installs Chromium from apt as it
 * installs Redis. Then the shopper and the customer's phone as a test or a benchmark drives
 * them: the demo shop's page (devstack/demo-shop.ts) and the sandbox bank app, and axe-core's
 * accessibility check of a page.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { type Browser, chromium, type Locator, type Page } from 'playwright-core';

/**
 * Headless, and quiet: as root the sandbox must be off, and without the background-networking
 * flags Chromium keeps calling hosts a machine without internet refuses.
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Where Chromium is: CHROMIUM_PATH, else Debian's and Ubuntu's usual places; null when absent. */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | null {
  const candidates = env.CHROMIUM_PATH
    ? [env.CHROMIUM_PATH]
    : ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/lib/chromium/chromium'];
  return candidates.find((path) => existsSync(path)) ?? null;
}

export async function launchChromium(executablePath = findChromium()): Promise<Browser> {
  if (!executablePath) {
    throw new Error('Chromium is not installed (apt-get install -y chromium, or set CHROMIUM_PATH)');
  }
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS });
}

/** What the element looks like from the page's global scope (types only: erased before the page runs them). */
interface PageWindow {
  document: { querySelector(selector: string): (EventTarget & { checkout: unknown }) | null };
  axe?: {
    run(context: unknown, options: unknown): Promise<{ violations: AxeViolation[] }>;
  };
}
interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: Array<{ target: unknown[] }>;
}

/** The demo shop's checkout element on `page`. */
export function checkoutElement(page: Page): Locator {
  return page.locator('bankpay-checkout');
}

/**
 * The shopper in the demo shop: opens it (unless the page shows it already), picks `bank` (by the name the picker shows), types
 * `login` and pays (the element's submit). Resolves once the shop has been asked to create the
 * checkout; the element then follows it.
 */
export async function payInShop(
  page: Page,
  shopUrl: string,
  o: { bank: string; login: string; language?: 'en' | 'de' },
): Promise<void> {
  if (page.url() !== shopUrl) await page.goto(shopUrl);
  if (o.language) await page.locator('#language').selectOption(o.language);
  const element = checkoutElement(page);
  await element.locator('select').selectOption({ label: o.bank });
  await element.locator('input[name=login]').fill(o.login);
  await element.locator('button[type=submit]').click();
}

/** The binding message the element shows once the bank has the request. */
export async function shownBindingMessage(page: Page, timeoutMs = 15_000): Promise<string> {
  const code = checkoutElement(page).locator('[part~="code"]');
  await code.waitFor({ timeout: timeoutMs });
  return (await code.textContent()) ?? '';
}

/**
 * The customer's phone: opens the sandbox bank app as `login`, waits for the request that shows
 * `bindingMessage`, and taps Approve or Deny. Resolves with the time of the tap (epoch ms).
 */
export async function decideOnPhone(
  phone: Page,
  bankAppUrl: string,
  o: { login: string; bindingMessage: string; decision: 'approve' | 'deny' },
): Promise<number> {
  await phone.goto(new URL(`#${o.login}`, bankAppUrl).href);
  const card = phone.locator('article.card', { hasText: o.bindingMessage });
  const button = card.locator(o.decision === 'approve' ? 'button.approve' : 'button.deny');
  await button.waitFor({ timeout: 15_000 });
  const tappedAt = Date.now();
  await button.click();
  return tappedAt;
}

/**
 * Resolves with the time (epoch ms, the page's clock, which is this machine's) at which the
 * element on `page` fires `bankpay:<status>`, i.e. shows it. Start it before the action that
 * leads there.
 */
export function whenElementShows(page: Page, status: string, timeoutMs = 30_000): Promise<number> {
  const shown = page.evaluate(
    (s) =>
      new Promise<number>((resolve) => {
        const w = globalThis as unknown as PageWindow;
        w.document
          .querySelector('bankpay-checkout')
          ?.addEventListener(`bankpay:${s}`, () => resolve(Date.now()), { once: true });
      }),
    status,
  );
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the element did not show ${status} within ${timeoutMs} ms`)),
      timeoutMs,
    );
  });
  return Promise.race([shown, late]).finally(() => clearTimeout(timer));
}

const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/**
 * axe-core's violations on the page as it is now (WCAG 2.x A and AA and axe's best practices),
 * each as `rule: selector, …`. axe is evaluated through the browser's debugging protocol, which
 * the page's Content-Security-Policy does not govern, so the page keeps its real CSP.
 */
export async function axeViolations(page: Page): Promise<string[]> {
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    const w = globalThis as unknown as PageWindow;
    const result = await w.axe!.run(w.document, { resultTypes: ['violations'] });
    return result.violations.map(
      (v) => `${v.id} (${v.impact}): ${v.help}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
    );
  });
  return violations;
}
