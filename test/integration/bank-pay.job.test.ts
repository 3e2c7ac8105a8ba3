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
import { type BankClient, BankError } from '../../src/integrations/bank.client.ts';
import { executePayment } from '../../src/jobs/bank-pay.job.ts';
import type { JobContext } from '../../src/jobs/job.context.ts';
import { type System, startSystem } from '../support/system.ts';

let system: System;
beforeAll(async () => {
  system = await startSystem({}, { worker: false });
});
afterAll(async () => {
  await system?.close();
});

async function authorizedCheckout(stepErrors: number): Promise<string> {
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
      tokensEncrypted: keys.encrypt(JSON.stringify({ accessToken: 'at', accessTokenExpiresAt: null })),
    },
  });
  return id;
}

function runWith(refusal: BankError, checkoutId: string) {
  let calls = 0;
  const bank = {
    initiatePayment: async () => {
      calls++;
      throw refusal;
    },
  } as unknown as BankClient;
  const ctx: JobContext = {
    config: system.config,
    db: system.db,
    queue: system.queue.queue,
    keys: createKeyRing(system.config.tokenEncryptionKeys),
    banks: new Map([['sandbox', bank]]),
    log: pino({ level: 'silent' }),
  };
  const job = { data: { checkoutId } } as Job<CheckoutJobData>;
  return { run: () => executePayment(job, ctx), calls: () => calls };
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
});
