/**
 * A short chaos run as part of the suite (`npm run chaos` with fewer checkouts): workers are
 * killed with SIGKILL every two seconds while customers approve, deny, ignore and cancel.
 * No checkout may be paid twice, none may be left open.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { npmScript } from '../support/npm-script.ts';

const run = promisify(execFile);

describe('npm run chaos (short)', () => {
  it('ends every checkout, pays none twice, with workers killed throughout', async () => {
    const chaos = npmScript(
      'chaos',
      '--checkouts',
      '40',
      '--kill-every',
      '2',
      '--seed',
      String(Date.now() % 1000),
    );
    const { stdout } = await run(chaos.file, chaos.args, {
      timeout: 170_000,
    });
    const lines = stdout.trim().split('\n');
    const summary = lines.at(-1) ?? '';
    expect(summary).toMatch(
      /^chaos: checkouts=40 succeeded=\d+ declined=\d+ expired=\d+ failed=\d+ canceled=\d+ double_payments=0 stuck=0 approvals_lost=\d+ refusals_lost=\d+$/,
    );
    const checks = lines.find((l) => l.includes('checks:')) ?? '';
    expect(checks).toMatch(/worker_kills=[1-9]\d*/);
    expect(checks).toContain('succeeded_without_one_payment=0');
    expect(checks).toContain('paid_but_not_succeeded=0');
    expect(Number(/succeeded=(\d+)/.exec(summary)?.[1])).toBeGreaterThan(0);
  }, 180_000);
});
