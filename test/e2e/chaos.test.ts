/**
 * A short chaos run as part of the suite (`npm run chaos` with fewer checkouts): workers are
 * killed with SIGKILL every two seconds while customers approve, deny, ignore and cancel, in CIBA
 * poll mode and in ping mode with half the customers' pings dropped. No checkout may be paid
 * twice, none may be left open.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { npmScript } from '../support/npm-script.ts';

const run = promisify(execFile);

describe('npm run chaos (short)', () => {
  it.each([
    ['poll', []],
    ['ping', ['--delivery-mode', 'ping', '--drop-pings', '0.5']],
  ])(
    'ends every checkout, pays none twice, with workers killed throughout (%s mode)',
    async (mode, extra) => {
      const chaos = npmScript(
        'chaos',
        '--checkouts',
        '40',
        '--kill-every',
        '2',
        '--seed',
        String(Date.now() % 1000),
        ...extra,
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
      if (mode === 'ping') expect(checks).toMatch(/customers_with_pings_dropped=[1-9]\d*/);
    },
    180_000,
  );
});
