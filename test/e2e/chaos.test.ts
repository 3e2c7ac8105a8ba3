/**
 * A short chaos run as part of the suite (`npm run chaos` with fewer checkouts): workers are
 * killed with SIGKILL every two seconds while customers approve, deny, ignore and cancel, in CIBA
 * poll mode and in ping mode with half the customers' pings dropped. Every status change is
 * delivered as a webhook to a receiver process that goes down and misbehaves meanwhile (killed,
 * answering 500, flapping, hanging), and in poll mode PostgreSQL is restarted once under it all.
 * No checkout may be paid twice, none may be left open, no event may be missing, invented or
 * left undelivered, and no worker may die of the database restart.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { npmScript } from '../support/npm-script.ts';

const run = promisify(execFile);

describe('npm run chaos (short)', () => {
  it.each([
    [
      'poll',
      ['--receiver-outage', 'kill,500', '--receiver-outage-every', '8', '--receiver-outage-for', '3'],
      ['--postgres-restart-at', '12'],
    ],
    [
      'ping',
      ['--receiver-outage', 'flap,hang', '--receiver-outage-every', '8', '--receiver-outage-for', '3'],
      ['--delivery-mode', 'ping', '--drop-pings', '0.5'],
    ],
  ])(
    'ends every checkout, pays none twice, delivers every event, with workers killed throughout (%s mode)',
    async (mode, outages, extra) => {
      const chaos = npmScript(
        'chaos',
        '--checkouts',
        '40',
        '--kill-every',
        '2',
        // 30 s to approve (60 s by default): the checkouts nobody answers end sooner, which pays
        // for the receiver's start and the database restart.
        '--expiry',
        '30',
        '--seed',
        String(Date.now() % 1000),
        ...outages,
        ...extra,
      );
      const { stdout } = await run(chaos.file, chaos.args, {
        timeout: 170_000,
      });
      const lines = stdout.trim().split('\n');
      const summary = lines.at(-1) ?? '';
      expect(summary).toMatch(
        /^chaos: checkouts=40 succeeded=\d+ declined=\d+ expired=\d+ failed=\d+ canceled=\d+ double_payments=0 stuck=0 approvals_lost=\d+ refusals_lost=\d+ events_undelivered=0 events_missing=0 events_invented=0 webhook_duplicates=\d+$/,
      );
      const checks = lines.filter((l) => l.includes('checks:')).join(' ');
      expect(checks).toMatch(/worker_kills=[1-9]\d*/);
      expect(checks).toContain('worker_exits=0');
      expect(checks).toContain('succeeded_without_one_payment=0');
      expect(checks).toContain('paid_but_not_succeeded=0');
      expect(checks).toContain('timeline_mismatch=0');
      expect(checks).toContain('webhooks_unverified=0');
      expect(checks).toContain('webhooks_unknown=0');
      expect(checks).toMatch(/receiver_outages=\w+:[1-9]/);
      expect(Number(/succeeded=(\d+)/.exec(summary)?.[1])).toBeGreaterThan(0);
      if (mode === 'poll') expect(checks).toContain('postgres_restarts=1');
      if (mode === 'ping') expect(checks).toMatch(/customers_with_pings_dropped=[1-9]\d*/);
    },
    180_000,
  );
});
