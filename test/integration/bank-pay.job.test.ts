/**
 * bank-pay when the bank's final word comes after an unanswered attempt. The sandbox bank cannot
 * produce this in test time (its access tokens live 10 minutes), so the bank client here is a
 * stand-in; the database, the key ring and the job are the real ones.
 */
import { randomBytes } from 'node:crypto';
import type { Job } from 'bullmq';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CheckoutJobData } from '../../src/checkout/checkout.jobs.ts';
import { newCheckoutId } from '../../src/checkout/checkout.service.ts';
import { createKeyRing } from '../../src/infra/crypto.ts';
import { createSqlPool, type SqlPool } from '../../src/infra/database.ts';
import { type BankClient, BankError } from '../../src/integrations/bank.client.ts';
import { executePayment } from '../../src/jobs/bank-pay.job.ts';
import type { JobContext } from '../../src/jobs/job.context.ts';
import { createRepositories } from '../../src/repositories.ts';
import { type System, startSystem } from '../support/system.ts';

let system: System;
let sql: SqlPool;
beforeAll(async () => {
  system = await startSystem({}, { worker: false });
  sql = createSqlPool(system.config.databaseUrl, { poolSize: 2 });
});
afterAll(async () => {
  await sql?.end();
  await system?.close();
});

async function authorizedCheckout(
  stepErrors: number,
  extra: { paymentStatus?: string; accessTokenExpiresAt?: number } = {},
): Promise<string> {
  const keys = createKeyRing(system.config.tokenEncryptionKeys);
  const id = newCheckoutId();
  await system.db.checkout.create({
    data: {
      id,
      status: 'authorized',
      amount: 4990n,
      currency: 'EUR',
      bankId: 'sandbox',
      loginHint: 'alice',
      reference: `order-${randomBytes(3).toString('hex')}`,
      bindingMessage: 'PAY-TEST22',
      expiresAt: new Date(Date.now() + 60_000),
      stepErrors,
      paymentStatus: extra.paymentStatus ?? null,
      tokensEncrypted: keys.encrypt(
        JSON.stringify({ accessToken: 'at', accessTokenExpiresAt: extra.accessTokenExpiresAt ?? null }),
        id,
      ),
    },
  });
  return id;
}

function runWith(refusal: BankError, checkoutId: string) {
  let calls = 0;
  const run = runWithBank(async () => {
    calls++;
    throw refusal;
  }, checkoutId);
  return { run, calls: () => calls };
}

function runWithBank(initiatePayment: () => Promise<never>, checkoutId: string) {
  const bank = { initiatePayment } as unknown as BankClient;
  const ctx: JobContext = {
    config: system.config,
    ...createRepositories(system.db, sql),
    queue: system.queue.queue,
    keys: createKeyRing(system.config.tokenEncryptionKeys),
    banks: new Map([['sandbox', bank]]),
    log: pino({ level: 'silent' }),
  };
  const job = { data: { checkoutId } } as Job<CheckoutJobData>;
  return () => executePayment(job, ctx);
}

describe('bank-pay, final refusal', () => {
  const refusal = new BankError('payment_api_error', 'the payment API answered 401 (invalid_token)', {
    status: 401,
  });

  it('on a first attempt is a rejected payment', async () => {
    const id = await authorizedCheckout(0);
    expect(await runWith(refusal, id).run()).toBe('failed');
    const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ status: 'failed', failureCode: 'payment_rejected', tokensEncrypted: null });
  });

  it('after an attempt that got no answer is an unknown outcome, never "rejected" (the bank may have paid)', async () => {
    const id = await authorizedCheckout(2);
    const { run, calls } = runWith(refusal, id);
    expect(await run()).toBe('failed');
    expect(calls()).toBe(1);
    const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      status: 'failed',
      failureCode: 'payment_outcome_unknown',
      tokensEncrypted: null,
    });
    expect(row.failureMessage).toContain(id);
  });

  it('after a run that sent the request and died before any answer was written: unknown, never "rejected"', async () => {
    // What a run leaves behind when it is killed while its payment request is out.
    const id = await authorizedCheckout(0, { paymentStatus: 'requested' });
    expect(await runWith(refusal, id).run()).toBe('failed');
    const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row.failureCode).toBe('payment_outcome_unknown');
  });

  it('a run records that its request may be out before it asks the bank', async () => {
    const id = await authorizedCheckout(0);
    let seen: string | null | undefined;
    await runWithBank(async () => {
      seen = (await system.db.checkout.findUniqueOrThrow({ where: { id } })).paymentStatus;
      throw refusal;
    }, id)();
    expect(seen).toBe('requested');
  });

  it('no answer once the access token has expired: unknown, not retried, never "bank_unavailable"', async () => {
    const id = await authorizedCheckout(0, { accessTokenExpiresAt: Date.now() - 1_000 });
    const timeout = new BankError('bank_unavailable', 'payment: timed out', { retryable: true });
    const { run, calls } = runWith(timeout, id);
    expect(await run()).toBe('failed');
    expect(calls()).toBe(1);
    const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row.failureCode).toBe('payment_outcome_unknown');
  });
});

describe('bank-pay, the stored access token', () => {
  it('is bound to its checkout: a value copied from another checkout opens nowhere else, nothing is paid', async () => {
    const donor = await authorizedCheckout(0);
    const id = await authorizedCheckout(0);
    const { tokensEncrypted } = await system.db.checkout.findUniqueOrThrow({ where: { id: donor } });
    await system.db.checkout.update({ where: { id }, data: { tokensEncrypted } });
    const { run, calls } = runWith(new BankError('payment_api_error', 'unused'), id);
    expect(await run()).toBe('failed');
    expect(calls()).toBe(0);
    const row = await system.db.checkout.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({
      status: 'failed',
      failureCode: 'configuration_error',
      tokensEncrypted: null,
    });
  });
});
