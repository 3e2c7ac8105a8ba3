/**
 * The checkout domain's operations for the API: create (idempotent), read, list, cancel.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Queue } from 'bullmq';
import type { BaseLogger } from 'pino';
import type { BankConfig, Config } from '../config.ts';
import type { KeyRing } from '../infra/crypto.ts';
import {
  BINDING_MESSAGE_MAX_LENGTH,
  bindingMessageWithAmount,
  newBindingMessage,
} from './binding-message.ts';
import { CheckoutError, checkoutNotFound } from './checkout.errors.ts';
import { enqueueCheckoutJob, JOB_NAMES } from './checkout.jobs.ts';
import type { CheckoutRepository, CheckoutRow, ListCursor } from './checkout.repository.ts';
import type { CheckoutView, CreateCheckoutInput } from './checkout.schemas.ts';
import { CANCELABLE_STATUSES, type CheckoutStatus, isTerminal } from './checkout.states.ts';
import { issueClientSecret } from './client-secret.ts';
import {
  IDEMPOTENCY_TTL_MS,
  type IdempotencyRepository,
  requestFingerprint,
} from './idempotency.repository.ts';
import { isSupportedCurrency } from './money.ts';

export interface CheckoutDeps {
  checkouts: CheckoutRepository;
  idempotency: IdempotencyRepository;
  queue: Queue;
  /** Signs and verifies clientSecrets (CLIENT_SECRET_KEYS). */
  clientSecretKeys: KeyRing;
  config: Config;
  log: Pick<BaseLogger, 'debug' | 'info' | 'warn' | 'error'>;
}

/** Time the worker gets to have the bank accept the request, on top of the bank's expiry. */
const START_GRACE_SECONDS = 60;

export function newCheckoutId(): string {
  return `chk_${randomBytes(15).toString('base64url')}`;
}

export function toView(row: CheckoutRow): CheckoutView {
  return {
    id: row.id,
    status: row.status as CheckoutStatus,
    amount: Number(row.amount),
    currency: row.currency,
    bankId: row.bankId,
    reference: row.reference,
    description: row.description,
    bindingMessage: row.bindingMessage,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
    expiresAt: row.expiresAt.toISOString(),
    payment: row.bankPaymentId
      ? { bankPaymentId: row.bankPaymentId, status: row.paymentStatus ?? 'unknown' }
      : null,
    failure: row.failureCode
      ? { code: row.failureCode, message: row.failureMessage ?? row.failureCode }
      : null,
  };
}

/**
 * The version of what a reader of the checkout sees (DESIGN.md §7.2): a digest of its status,
 * payment, failure, expiresAt and updatedAt, the only fields that ever change after creation.
 * Not the timeline (the merchant's record: a token poll adds to it without changing the
 * checkout), so a token poll, which touches neither these fields nor `updatedAt`, keeps the
 * version. 22 base64url characters (132 bits); the same state always gives the same version, in
 * every API process. It is the checkout's ETag and the `id:` of its stream events.
 */
export function checkoutVersion(view: CheckoutView): string {
  const state = [view.status, view.payment, view.failure, view.expiresAt, view.updatedAt];
  return createHash('sha256').update(JSON.stringify(state)).digest('base64url').slice(0, 22);
}

/** Seconds until asking for the status again can show something new (the `Retry-After` header). */
export function retryAfterSeconds(row: CheckoutRow, now = Date.now()): number | undefined {
  if (isTerminal(row.status as CheckoutStatus)) return undefined;
  if (row.status === 'awaiting_approval' && row.nextPollAt) {
    return Math.min(30, Math.max(1, Math.ceil((row.nextPollAt.getTime() - now) / 1000)));
  }
  return 1;
}

function findBank(config: Config, bankId: string): BankConfig {
  const bank = config.banks.find((b) => b.id === bankId);
  if (!bank) {
    throw new CheckoutError('unknown_bank', `No bank "${bankId}" is configured (GET /v1/banks lists them)`);
  }
  return bank;
}

export interface CreateResult {
  status: number;
  body: CheckoutView;
  replayed: boolean;
}

export async function createCheckout(
  deps: CheckoutDeps,
  apiKeyId: string,
  idempotencyKey: string,
  input: CreateCheckoutInput,
): Promise<CreateResult> {
  if (!isSupportedCurrency(input.currency)) {
    throw new CheckoutError('invalid_request', 'The request does not match the schema', {
      fields: [{ pointer: '/body/currency', detail: 'not a supported ISO 4217 currency' }],
    });
  }
  const bank = findBank(deps.config, input.bankId);
  // The customer must see what they approve: in the bank app's payment view (RFC 9396), or else
  // in the binding message itself.
  const bindingMessage = bank.authorizationDetails
    ? newBindingMessage()
    : bindingMessageWithAmount(input.amount, input.currency);
  if (bindingMessage === undefined) {
    throw new CheckoutError('invalid_request', 'The request does not match the schema', {
      fields: [
        {
          pointer: '/body/amount',
          detail: `too large to show in this bank's binding message (at most ${BINDING_MESSAGE_MAX_LENGTH} characters with the currency)`,
        },
      ],
    });
  }

  const fingerprint = requestFingerprint('POST', '/v1/checkouts', input);
  const now = new Date();
  const row: CheckoutRow = {
    id: newCheckoutId(),
    status: 'pending',
    amount: BigInt(input.amount),
    currency: input.currency,
    bankId: bank.id,
    loginHint: input.loginHint,
    reference: input.reference,
    description: input.description ?? null,
    bindingMessage,
    apiKeyId,
    createdAt: now,
    updatedAt: now,
    expiresAt: new Date(now.getTime() + (bank.requestedExpiry + START_GRACE_SECONDS) * 1000),
    authReqId: null,
    pollIntervalS: null,
    nextPollAt: null,
    stepErrors: 0,
    unansweredClaims: 0,
    tokenAnswerEncrypted: null,
    notificationTokenHash: null,
    pingPending: false,
    earliestPollAt: null,
    tokensEncrypted: null,
    subject: null,
    bankPaymentId: null,
    paymentStatus: null,
    failureCode: null,
    failureMessage: null,
  };
  const response = {
    apiKeyId,
    key: idempotencyKey,
    requestHash: fingerprint,
    status: 202,
    body: toView(row),
    expiresAt: new Date(now.getTime() + IDEMPOTENCY_TTL_MS),
  };
  // The usual case, a key never seen: checkout, event and stored response in one statement.
  if (!(await deps.checkouts.insert(row, response, 'new'))) {
    // The key exists: a replay, a reused key (422), one still in flight (409), or an expired or
    // abandoned record this request may take over.
    const claim = await deps.idempotency.claim(apiKeyId, idempotencyKey, fingerprint);
    if (claim.kind === 'reused') {
      throw new CheckoutError(
        'idempotency_key_reused',
        'This Idempotency-Key was used with a different request body',
      );
    }
    if (claim.kind === 'in_flight') {
      throw new CheckoutError(
        'idempotency_key_in_use',
        'A request with this Idempotency-Key is still being processed; retry later',
        { retryAfterSeconds: 1 },
      );
    }
    if (claim.kind === 'replay') {
      const body = claim.body as unknown as CheckoutView;
      return {
        status: claim.status,
        body: { ...body, clientSecret: issueClientSecret(deps.clientSecretKeys, body.id) },
        replayed: true,
      };
    }
    let stored = false;
    try {
      stored = await deps.checkouts.insert(row, response, 'claimed');
    } finally {
      if (!stored) await deps.idempotency.release(apiKeyId, idempotencyKey);
    }
    if (!stored) throw new Error('the Idempotency-Key claim was lost while creating the checkout');
  }

  // After the commit: Postgres is the source of truth. If the queue is unreachable the checkout
  // stays `pending` and the reconciler enqueues it once the queue is back.
  try {
    await enqueueCheckoutJob(deps.queue, JOB_NAMES.cibaStart, row.id);
  } catch (error) {
    deps.log.warn(
      { checkoutId: row.id, err: (error as Error).message },
      'could not enqueue ciba-start; the reconciler will',
    );
  }
  return {
    status: 202,
    body: { ...response.body, clientSecret: issueClientSecret(deps.clientSecretKeys, row.id) },
    replayed: false,
  };
}

/**
 * One checkout as the merchant reads it (with its timeline), its version (`checkoutVersion`) and
 * the `Retry-After` seconds while it is not terminal. Throws `checkout_not_found`.
 */
export async function getCheckout(
  deps: Pick<CheckoutDeps, 'checkouts'>,
  id: string,
): Promise<{ view: CheckoutView; version: string; retryAfter: number | undefined }> {
  const found = await deps.checkouts.findWithTimeline(id);
  if (!found) throw checkoutNotFound(id);
  const view = toView(found.row);
  return {
    view: { ...view, timeline: found.timeline },
    version: checkoutVersion(view),
    retryAfter: retryAfterSeconds(found.row),
  };
}

export async function listCheckouts(
  deps: CheckoutDeps,
  query: { limit?: number; starting_after?: string; status?: CheckoutStatus },
): Promise<{ data: CheckoutView[]; has_more: boolean }> {
  const limit = query.limit ?? 20;
  let cursor: ListCursor | undefined;
  if (query.starting_after) {
    const after = await deps.checkouts.findCursor(query.starting_after);
    if (!after) {
      throw new CheckoutError('invalid_request', 'starting_after is not a known checkout id', {
        fields: [{ pointer: '/querystring/starting_after', detail: 'unknown checkout id' }],
      });
    }
    cursor = after;
  }
  const rows = await deps.checkouts.list({
    limit: limit + 1,
    ...(cursor ? { cursor } : {}),
    ...(query.status ? { status: query.status } : {}),
  });
  return { data: rows.slice(0, limit).map(toView), has_more: rows.length > limit };
}

export async function cancelCheckout(deps: CheckoutDeps, id: string): Promise<CheckoutView> {
  const updated = await deps.checkouts.transition(
    id,
    CANCELABLE_STATUSES,
    'canceled',
    { failureCode: null },
    { step: 'cancel', outcome: 'canceled' },
  );
  if (updated) return toView(updated);
  const row = await deps.checkouts.find(id);
  if (!row) throw checkoutNotFound(id);
  if (row.status === 'canceled') return toView(row); // canceling twice is harmless
  throw new CheckoutError(
    'checkout_not_cancelable',
    `The checkout is ${row.status}; only pending or awaiting_approval checkouts can be canceled`,
  );
}
