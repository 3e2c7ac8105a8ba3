/**
 * An npm script's command as package.json defines it, so tests exercise the command a user runs
 * (`npm run dev`, `npm run migrate`…) wherever it lives. Run with this Node directly (`tsx X` →
 * `node --import tsx X`): no npm in between, so signals and exit codes reach the test as they
 * reach a terminal.
 */
import { readFileSync } from 'node:fs';

const { scripts } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  scripts: Record<string, string>;
};

export function npmScript(name: string, ...args: string[]): { file: string; args: string[] } {
  const command = scripts[name];
  const [runner, ...rest] = command?.trim().split(/\s+/) ?? [];
  if (runner !== 'tsx') throw new Error(`npm run ${name} is not a tsx command: ${command}`);
  return { file: process.execPath, args: ['--import', 'tsx', ...rest, ...args] };
}
