/**
 * `npm run element`: the checkout element as the API serves it (elements/checkout.js, DESIGN.md
 * §7.4): its size, raw and gzipped, against the budget, and the SRI hash a page pins it with.
 * There is nothing to compile (plain JavaScript with JSDoc types, checked by `npm run typecheck`);
 * this step is the check a release runs. It fails when the element is over its budget.
 * `-- --update-readme` writes the new hash where the README publishes it (a test holds the two equal).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES, checkoutElement } from '../src/elements/checkout-element.ts';
import { CHECKOUT_ELEMENT_PATH } from '../src/elements/elements.routes.ts';

const element = checkoutElement();
const kB = (bytes: number) => `${(bytes / 1024).toFixed(1)} kB`;
const within = element.gzip.length <= CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES;
console.log(`element    ${CHECKOUT_ELEMENT_PATH} (elements/checkout.js)`);
console.log(
  `size       ${kB(element.source.length)} raw, ${kB(element.gzip.length)} gzipped (${element.gzip.length} bytes)`,
);
console.log(`budget     ${kB(CHECKOUT_ELEMENT_GZIP_BUDGET_BYTES)} gzipped: ${within ? 'within' : 'OVER'}`);
console.log(`integrity  ${element.integrity}`);
if (process.argv.includes('--update-readme')) {
  const readme = new URL('../README.md', import.meta.url);
  const text = readFileSync(readme, 'utf8');
  const updated = text.replace(/sha384-[A-Za-z0-9+/]{64}/g, element.integrity);
  writeFileSync(readme, updated);
  console.log(updated === text ? 'README.md  already current' : 'README.md  updated');
}
if (!within) process.exit(1);
