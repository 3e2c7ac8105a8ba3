/**
 * One bank that answers token requests very slowly must not hold up the checkouts of another:
 * the token poller limits requests in flight per bank (POLL_CONCURRENCY), not per worker.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sandboxBanksFile } from '../support/env.ts';
import {
  bankControl,
  checkoutBody,
  decideInBankApp,
  eventually,
  newBankCustomer,
  pendingInBankApp,
  setFaults,
  useSystem,
} from '../support/system.ts';

const { http } = useSystem(() => {
  // The sandbox bank twice, under two ids: to Bankpay, two banks.
  const [sandbox] = (JSON.parse(readFileSync(sandboxBanksFile(), 'utf8')) as { banks: object[] }).banks;
  const banksFile = join(dirname(sandboxBanksFile()), `banks-isolation-${process.pid}.json`);
  writeFileSync(banksFile, JSON.stringify({ banks: [sandbox, { ...sandbox, id: 'sandbox-b', name: 'B' }] }));
  return { BANKS_FILE: banksFile, POLL_CONCURRENCY: '2', BANK_TIMEOUT_MS: '9000' };
});
let slowCustomer: string | undefined;

// Registered after useSystem: runs before the system is closed.
afterAll(async () => {
  if (slowCustomer) await setFaults(slowCustomer, {});
});

describe('token polls, per bank', () => {
  it('a bank that answers token requests 7 s late holds up only its own checkouts', async () => {
    slowCustomer = await newBankCustomer({ delayMs: { token: 7_000 } });
    for (let i = 0; i < 3; i++) {
      const res = await http.createCheckout(checkoutBody(slowCustomer, { bankId: 'sandbox-b' }));
      expect(res.status).toBe(202);
    }
    // Bank B's slots are taken by token requests it is sitting on.
    await eventually(
      async () => {
        const t = await bankControl<{ requests: Array<{ polls: unknown[] }> }>(
          `/customers/${slowCustomer}/timeline`,
        );
        return t.requests.filter((r) => r.polls.length > 0).length >= 2;
      },
      20_000,
      'two token requests at bank B',
    );

    // Meanwhile a customer of the other bank approves: paid at the usual pace (1 s interval).
    const login = await newBankCustomer();
    const res = await http.createCheckout(checkoutBody(login));
    const { id } = (await res.json()) as { id: string };
    const request = await pendingInBankApp(login);
    const approvedAt = Date.now();
    await decideInBankApp(login, request.authReqId, 'approve');
    const done = await http.waitForStatus(id, ['succeeded', 'failed'], 20_000);
    expect(done.status).toBe('succeeded');
    expect(Date.now() - approvedAt).toBeLessThan(5_000);
  }, 60_000);
});
