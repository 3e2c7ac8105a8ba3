/**
 * The token poller: CIBA poll mode (CIBA Core §7.3, §10.1) for every checkout awaiting the
 * customer's approval. Postgres holds the schedule (`next_poll_at`); each worker process runs one
 * poller that claims due checkouts in batches (one UPDATE … FOR UPDATE SKIP LOCKED, so two
 * workers never ask the bank about the same auth_req_id at once), makes one token request per
 * claimed checkout, and records what the answer means. This file is the mechanism (claims,
 * leases, per-bank limits, batched writes); what each answer means is token-poll.policy.ts.
 *
 * "Ask again later" answers, nearly all of them, are written in batches (one statement for many
 * checkouts: the next poll time plus a `token_poll` event each); settling answers are written one
 * by one, at once. Why not one queue job per poll: at 10,000 pending checkouts and a 5 s interval
 * that is 2,000 jobs/s of queue and database round trips, several times what one worker process
 * sustains (bench/RESULTS.md). A crash loses nothing: a claimed poll whose answer was not written
 * is claimed again when its lease lapses (BANK_TIMEOUT_MS + 5 s, at least the poll interval); a
 * live worker extends the lease of a request that runs long (discovery and key refreshes may add
 * bank round trips), so a claim never lapses under a worker that is still on it. Due times and
 * leases are the database's clock: the workers' hosts may disagree about the time.
 */

import { enqueueCheckoutJob, JOB_NAMES } from '../checkout/checkout.jobs.ts';
import {
  declineCheckout,
  expireCheckout,
  failCheckout,
  sanitizeBankText,
} from '../checkout/checkout.outcomes.ts';
import { openTokenAnswer, sealTokenAnswer, sealTokens } from '../checkout/checkout.payment.ts';
import type { CheckoutRow } from '../checkout/checkout.repository.ts';
import type { DuePoll, PollAnswer } from '../checkout/poll-schedule.repository.ts';
import {
  BankError,
  mayBeSettlingTokenAnswer,
  type RawTokenAnswer,
  type TokenPollOutcome,
} from '../integrations/bank.client.ts';
import { persistBankAnswer } from './bank-step.ts';
import type { JobContext } from './job.context.ts';
import { type BatchWriter, createBatchWriter, createNap } from './loop-parts.ts';
import { decideBeforePoll, decidePollAnswer, type PollDecision } from './token-poll.policy.ts';

export interface TokenPollerOptions {
  /** Token requests in flight at once to one bank (a bank that hangs does not hold up the others). */
  maxInFlight: number;
  /** Largest batch one claim takes. */
  batchSize: number;
  /** How often to look for due polls when there were none (ms): bounds the lateness it adds. */
  idleMs: number;
  /** How long an "ask again later" answer may wait to be written with others (ms). */
  flushMs: number;
}

export const DEFAULT_TOKEN_POLLER_OPTIONS: TokenPollerOptions = {
  maxInFlight: 200,
  batchSize: 100,
  idleMs: 100,
  flushMs: 20,
};

export interface TokenPoller {
  /** Stops claiming, waits for the token requests in flight and writes their answers. */
  close(): Promise<void>;
}

export function startTokenPoller(
  ctx: JobContext,
  options: TokenPollerOptions = DEFAULT_TOKEN_POLLER_OPTIONS,
): TokenPoller {
  const writer = createAnswerWriter(ctx, options.flushMs, options.batchSize);
  const leaseSeconds = (ctx.config.worker.bankTimeoutMs + 5_000) / 1000;
  const inFlight = new Set<Promise<unknown>>();
  const perBank = new Map<string, number>();
  const cap = options.maxInFlight * Math.max(1, ctx.banks.size);
  // Delivery modes, looked up once: only ping banks have pinged checkouts to claim first.
  const pingBanks = new Set(ctx.config.banks.filter((b) => b.deliveryMode === 'ping').map((b) => b.id));
  let stopped = false;
  const { nap, wake } = createNap();

  const loop = async () => {
    while (!stopped) {
      // Never more than maxInFlight per bank: a bank at its limit is left out, and a claim takes no
      // more than the bank with the least room left could start.
      let want = Math.min(cap - inFlight.size, options.batchSize);
      const busyBanks: string[] = [];
      for (const [bank, n] of perBank) {
        if (n >= options.maxInFlight) busyBanks.push(bank);
        else want = Math.min(want, options.maxInFlight - n);
      }
      let claimed = 0;
      if (want > 0) {
        try {
          const due = await ctx.pollSchedule.claimDue(leaseSeconds, want, busyBanks, pingBanks.size > 0);
          claimed = due.length;
          for (const poll of due) {
            // A request that runs long keeps its claim: extended every third of the lease.
            const keeper = setInterval(
              () => {
                ctx.pollSchedule
                  .extendLease(poll.id, poll.lease, leaseSeconds)
                  .then((lease) => {
                    if (lease) poll.lease = lease;
                  })
                  .catch(() => {});
              },
              (leaseSeconds * 1000) / 3,
            );
            const run = pollOnce(ctx, poll, writer, pingBanks)
              .catch((err: Error) =>
                ctx.log.error(
                  { checkoutId: poll.id, err: err.message },
                  'token poll failed; it runs again when its claim lapses',
                ),
              )
              .finally(() => clearInterval(keeper));
            inFlight.add(run);
            perBank.set(poll.bankId, (perBank.get(poll.bankId) ?? 0) + 1);
            void run.finally(() => {
              inFlight.delete(run);
              const left = (perBank.get(poll.bankId) ?? 1) - 1;
              perBank.set(poll.bankId, left);
              if (inFlight.size === cap - 1 || left === options.maxInFlight - 1) wake();
            });
          }
        } catch (err) {
          ctx.log.warn({ err: (err as Error).message }, 'could not claim due token polls; retrying');
          await nap(1_000);
          continue;
        }
      }
      // A full batch: more may be due right now. Otherwise look again shortly.
      if (claimed > 0 && claimed === want) await new Promise((r) => setImmediate(r));
      else await nap(options.idleMs);
    }
  };
  const running = loop();

  return {
    async close() {
      stopped = true;
      wake();
      await running;
      await Promise.all(inFlight);
      await writer.close();
    },
  };
}

/** An "ask again later" answer to a poll's claim; the lease is read when the batch is written. */
type LaterAnswer = { poll: DuePoll; answer: Omit<PollAnswer, 'id' | 'lease'> };
type AnswerWriter = BatchWriter<LaterAnswer>;

/** Collects "ask again later" answers and writes them in batches (at most `flushMs` later). */
function createAnswerWriter(ctx: JobContext, flushMs: number, maxBatch: number): AnswerWriter {
  return createBatchWriter<LaterAnswer>(flushMs, maxBatch, async (batch) => {
    const answers = batch.map(({ poll, answer }) => ({ ...answer, id: poll.id, lease: poll.lease }));
    await persistBankAnswer(ctx, 'token poll answers', () => ctx.pollSchedule.recordAnswers(answers)).catch(
      (err: Error) =>
        // Nothing is lost: these polls are claimed again when their lease lapses.
        ctx.log.warn({ err: err.message, answers: answers.length }, 'could not record token poll answers'),
    );
  });
}

async function settle(ctx: JobContext, poll: DuePoll, decision: Extract<PollDecision, { kind: 'settle' }>) {
  const { to, failure } = decision;
  const event = { step: 'token_poll', outcome: failure.code, detail: decision.detail };
  const done: CheckoutRow | null = await persistBankAnswer(ctx, 'token poll outcome', () =>
    to === 'declined'
      ? declineCheckout(ctx.checkouts, poll.id, event)
      : to === 'expired'
        ? expireCheckout(
            ctx.checkouts,
            { id: poll.id, status: 'awaiting_approval' },
            'token_poll',
            failure.code,
          )
        : failCheckout(ctx.checkouts, poll.id, 'awaiting_approval', failure, event),
  );
  if (done)
    ctx.log.info(
      { checkoutId: poll.id, status: to, code: failure.code, bankText: sanitizeBankText(failure.bankText) },
      `checkout ${poll.id} ${to}: ${failure.code}`,
    );
  return to;
}

async function authorize(
  ctx: JobContext,
  poll: DuePoll,
  decision: Extract<PollDecision, { kind: 'authorize' }>,
) {
  // The bank will not give these tokens twice: keep trying to store them through a short outage.
  const authorized = await persistBankAnswer(ctx, 'tokens', () =>
    ctx.checkouts.transition(
      poll.id,
      'awaiting_approval',
      'authorized',
      {
        tokensEncrypted: sealTokens(ctx.keys, poll.id, decision.tokens, Date.now()),
        subject: decision.subject,
        nextPollAt: null,
        stepErrors: 0,
        unansweredClaims: 0,
        tokenAnswerEncrypted: null,
      },
      { step: 'token_poll', outcome: 'tokens', detail: { idToken: 'valid' } },
    ),
  );
  // Canceled in the meantime: the tokens are dropped unused and nothing is paid.
  if (!authorized) return 'skipped';
  ctx.log.info({ checkoutId: poll.id, status: 'authorized' }, 'checkout authorized by the customer');
  // If this enqueue fails (Redis down), the reconciler enqueues the payment later.
  await enqueueCheckoutJob(ctx.queue, JOB_NAMES.bankPay, poll.id).catch((err: Error) =>
    ctx.log.warn({ checkoutId: poll.id, err: err.message }, 'could not enqueue the payment yet'),
  );
  return 'authorized';
}

/**
 * Writes a settling token answer down the moment it is read, before validating it or anything
 * else (the bank answers an auth_req_id once and revokes the tokens if asked again): one short
 * statement, retried through a short database outage. The window in which a crash loses the
 * approval is then just the request itself and this write.
 */
async function keepTokenAnswer(ctx: JobContext, poll: DuePoll, raw: RawTokenAnswer): Promise<void> {
  const sealed = sealTokenAnswer(ctx.keys, poll.id, raw);
  await persistBankAnswer(ctx, 'token answer', () => ctx.pollSchedule.storeAnswer(poll.id, sealed));
  const pauseMs = ctx.config.worker.pauseAfterTokenAnswerStoredMs;
  if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
}

/** One token request for one claimed checkout, and what follows from its answer (token-poll.policy.ts). */
async function pollOnce(
  ctx: JobContext,
  poll: DuePoll,
  writer: AnswerWriter,
  pingBanks: ReadonlySet<string>,
): Promise<string> {
  const bank = ctx.banks.get(poll.bankId);
  // An answer a worker stored and did not finish with (it died): finished here, the bank not asked.
  const stored = poll.storedAnswer ? openTokenAnswer(ctx.keys, poll.id, poll.storedAnswer) : undefined;
  let decision = decideBeforePoll(
    { ...poll, storedAnswer: stored ? poll.storedAnswer : null },
    Date.now(),
    bank !== undefined,
  );
  if (!decision && bank) {
    let answer: TokenPollOutcome | BankError;
    try {
      let raw = stored;
      if (!raw) {
        raw = await bank.requestTokenAnswer(poll.authReqId);
        if (mayBeSettlingTokenAnswer(raw)) await keepTokenAnswer(ctx, poll, raw);
      }
      answer = await bank.processTokenAnswer(poll.authReqId, raw, { loginHint: poll.loginHint });
    } catch (error) {
      if (!(error instanceof BankError)) throw error;
      answer = error;
    }
    decision = decidePollAnswer(
      { ...poll, deliveryMode: pingBanks.has(poll.bankId) ? 'ping' : 'poll' },
      answer,
    );
    if (stored) ctx.log.info({ checkoutId: poll.id }, 'finishing a token answer stored before a crash');
  }
  if (!decision) throw new Error('no decision for a claimed token poll');
  switch (decision.kind) {
    case 'ask_again': {
      const { kind: _, ...answer } = decision;
      if (answer.stepErrors > 0) {
        // Debug, not warn: in a bank outage this is every poll of every checkout (thousands a
        // second); the timeline records each, and the bank's health shows in the other steps' logs.
        ctx.log.debug(
          { checkoutId: poll.id, code: answer.outcome, retryInMs: answer.waitMs },
          'token poll failed; retrying',
        );
      }
      writer.add({ poll, answer });
      return answer.outcome;
    }
    case 'settle':
      return settle(ctx, poll, decision);
    case 'authorize':
      return authorize(ctx, poll, decision);
  }
}
