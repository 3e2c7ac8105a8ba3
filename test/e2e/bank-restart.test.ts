/**
 * A bank that restarts keeps what it promised. The sandbox bank keeps its state in its own schema
 * of the run's PostgreSQL (sandbox/journal.ts): after a restart with checkouts awaiting approval,
 * the bank app still lists the requests, the customer's decision reaches Bankpay, and the
 * approved one is paid exactly once.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type DevSandbox, startDevSandbox, writeSandboxBanksFile } from '../../devstack/sandbox.service.ts';
import { checkoutBody, decideInBankApp, eventually, pendingInBankApp, useSystem } from '../support/system.ts';

const schema = `sandbox_restart_${randomBytes(4).toString('hex')}`;
const banksFile = join(inject('certsDir'), '..', `banks-restart-${process.pid}.json`);

describe('the sandbox bank restarts while checkouts await approval', () => {
  let sandbox: DevSandbox;
  const start = (ports: { port: number; appPort: number }) =>
    startDevSandbox({
      certsDir: inject('certsDir'),
      ...ports,
      testMode: true,
      defaultInterval: 1,
      database: { url: inject('databaseUrl'), schema },
    });
  const control = async <T>(path: string, init?: RequestInit): Promise<T> => {
    const res = await fetch(`${sandbox.bank.controlUrl}${path}`, init);
    if (!res.ok) throw new Error(`control ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as T;
  };

  beforeAll(async () => {
    sandbox = await start({ port: 0, appPort: 0 });
    writeSandboxBanksFile(banksFile, sandbox);
  });
  afterAll(async () => {
    await sandbox?.bank.close();
  });
  const { http } = useSystem(() => ({ BANKS_FILE: banksFile }));

  it('lists the pending requests after the restart; approve pays once, deny declines', async () => {
    const login = `r-${randomBytes(5).toString('hex')}`;
    await control('/customers', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ login }),
    });
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const res = await http.createCheckout(checkoutBody(login));
      expect(res.status).toBe(202);
      ids.push(((await res.json()) as { id: string }).id);
    }
    for (const id of ids) await http.waitForStatus(id, ['awaiting_approval']);
    const before = await eventually(
      async () => {
        const res = await fetch(`${sandbox.bank.appUrl}app/api/customers/${login}/requests`);
        const body = (await res.json()) as { requests: Array<{ authReqId: string; bindingMessage: string }> };
        return body.requests.length === 2 && body.requests;
      },
      10_000,
      'two pending requests in the bank app',
    );

    // Down for 2 s: Bankpay's polls in that time fail to connect and are retried.
    const { port, appPort } = sandbox.bank;
    await sandbox.bank.close();
    await new Promise((r) => setTimeout(r, 2_000));
    sandbox = await start({ port, appPort });

    // The customer (created through the control API) and both requests are still there.
    const after = (await (
      await fetch(`${sandbox.bank.appUrl}app/api/customers/${login}/requests`)
    ).json()) as { requests: Array<{ authReqId: string; bindingMessage: string }> };
    expect(after.requests.map((r) => [r.authReqId, r.bindingMessage]).sort()).toEqual(
      before.map((r) => [r.authReqId, r.bindingMessage]).sort(),
    );
    // Still pending at Bankpay: the polls after the restart answered authorization_pending.
    await new Promise((r) => setTimeout(r, 1_500));
    for (const id of ids) {
      const checkout = (await (await http.get(`/v1/checkouts/${id}`)).json()) as { status: string };
      expect(checkout.status).toBe('awaiting_approval');
    }

    const [first, second] = after.requests;
    await decideInBankApp(login, first!.authReqId, 'approve', sandbox.bank.appUrl);
    await decideInBankApp(login, second!.authReqId, 'deny', sandbox.bank.appUrl);
    const outcomes = await Promise.all(
      ids.map((id) => http.waitForStatus(id, ['succeeded', 'declined', 'failed'])),
    );
    expect(outcomes.map((c) => c.status).sort()).toEqual(['declined', 'succeeded']);
    const payments = await control<{ payments: unknown[] }>(`/payments?login=${login}`);
    expect(payments.payments).toHaveLength(1);
    // Nothing is left for the customer to decide.
    await expect(pendingInBankApp(login, 300, sandbox.bank.appUrl)).rejects.toThrow(/no pending request/);
  });
});
