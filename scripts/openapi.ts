/**
 * `npm run openapi`: writes openapi.yaml from the route schemas (the one source of truth).
 * `--check` exits non-zero when the committed file differs (a test runs the same comparison).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { renderOpenApiYaml } from '../src/openapi.ts';

const file = new URL('../openapi.yaml', import.meta.url);
const yaml = await renderOpenApiYaml();
if (process.argv.includes('--check')) {
  const current = readFileSync(file, 'utf8');
  if (current !== yaml) {
    console.error('openapi.yaml is out of date: run npm run openapi');
    process.exit(1);
  }
  console.log('openapi.yaml is up to date');
} else {
  writeFileSync(file, yaml);
  console.log('wrote openapi.yaml');
}
