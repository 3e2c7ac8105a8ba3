/**
 * The bank's view of CIBA requests beyond what oidc-provider stores: who must approve what (the
 * bank app's inbox), and what arrived on the wire when (bc-authorize and every token poll), so
 * tests can measure a client's polling behaviour from the server side.
 *
 * oidc-provider's BackchannelAuthenticationRequest stays the source of truth for the protocol
 * state; this registry is a projection of it, filled in triggerAuthenticationDevice.
 *
 * With a journal (journal.ts) the requests themselves outlive a restart, so the bank app still
 * lists a pending request after it; what arrived on the wire (polls, bc-authorize attempts) is
 * kept in memory only.
 */

import type { IdTokenRewrite } from './id-token.ts';
import type { Journal, JournalRecord } from './journal.ts';
import type { PaymentInitiation } from './payment-details.ts';

export const requestStatuses = ['pending', 'approved', 'denied'] as const;
export type RequestStatus = (typeof requestStatuses)[number];

/**
 * What an answer meant: 'tokens' (token endpoint, 200), 'acknowledged' (bc-authorize, 200), the
 * OAuth error code of an error answer ('authorization_pending', 'slow_down', 'access_denied',
 * 'expired_token', 'invalid_grant', 'temporarily_unavailable' for a scripted 503, ...), 'dropped'
 * when the connection was abandoned, or `http_<status>` for an answer without an error code.
 */
export type AnswerResult = string;

export interface PollRecord {
  /** Epoch ms at which the bank received the token request. */
  at: number;
  /** HTTP status the bank answered with, or 'dropped' when the connection was abandoned. */
  outcome?: number | 'dropped';
  result?: AnswerResult;
  /** For a dropped or a scripted-over answer: what the bank had processed and would have answered. */
  unsent?: AnswerResult;
  /** When the ID Token of a 'tokens' answer was rewritten by a fault script (faults.ts). */
  idTokenFault?: IdTokenRewrite;
}

/** One CIBA ping (CIBA Core §10.2) the bank sent, or dropped by a fault script (ping.ts). */
export interface PingRecord {
  /** Epoch ms at which it left (after any scripted delay). */
  at: number;
  /** 1, or 2 for the second copy of a doubled ping. */
  copy: number;
  delayedMs: number;
  /** The client's HTTP status, 'dropped', or `error: <name>` when it could not be delivered. */
  outcome?: number | string;
}

/** One bc-authorize request, kept by its login_hint whether or not it created a request. */
export interface BcAuthorizeAttempt {
  at: number;
  path: string;
  outcome?: number | 'dropped';
  result?: AnswerResult;
  unsent?: AnswerResult;
  /** The auth_req_id of an acknowledged request. */
  authReqId?: string;
}

export interface BackchannelRecord {
  authReqId: string;
  login: string;
  clientId: string;
  clientName: string;
  scope: string;
  bindingMessage: string | undefined;
  payment: PaymentInitiation | undefined;
  /** Epoch ms at which the bc-authorize request reached the bank (before any scripted delay). */
  receivedAt: number;
  /** Path the bc-authorize request used (shows whether the client took the mTLS alias). */
  path: string;
  expiresAt: number;
  /** The `interval` the acknowledgement carried, when a fault script added one. */
  interval: number | undefined;
  status: RequestStatus;
  decidedAt: number | undefined;
  polls: PollRecord[];
  /** Pings sent for it (ping-mode clients only). */
  pings?: PingRecord[];
  /** Ping mode: the bearer token its pings carry (CIBA Core §7.1); shown by the control API only. */
  clientNotificationToken?: string;
  /** The bc-authorize answer, filled when it leaves (normally 200 'acknowledged'). */
  bcAuthorize?: BcAuthorizeAttempt;
}

// A request polled every second for its 10 minutes is 600 entries; this cap only protects the
// process from a runaway client.
const MAX_POLLS_KEPT = 5_000;
// Decided or expired requests stay visible (for timelines) this long after their expiry.
const RETENTION_MS = 10 * 60 * 1000;
// bc-authorize attempts kept per login hint (the most recent ones), and for how many hints.
const MAX_ATTEMPTS_PER_LOGIN = 1_000;
const MAX_ATTEMPT_LOGINS = 10_000;

export class RequestRegistry {
  private readonly records = new Map<string, BackchannelRecord>();
  private readonly attempts = new Map<string, BcAuthorizeAttempt[]>();

  constructor(private readonly journal?: Journal) {}

  /** Puts back the requests a journal kept; their poll timelines start empty. */
  restore(records: ReadonlyArray<JournalRecord<BackchannelRecord>>): void {
    for (const { data } of records) this.records.set(data.authReqId, { ...data, polls: [] });
  }

  private async persist(record: BackchannelRecord): Promise<void> {
    const { polls: _polls, pings: _pings, ...kept } = record;
    await this.journal?.put('request', record.authReqId, kept, record.expiresAt + RETENTION_MS);
  }

  async add(record: BackchannelRecord): Promise<void> {
    this.records.set(record.authReqId, record);
    await this.persist(record);
  }

  /** Records a bc-authorize request under its (unverified) login hint, known customer or not. */
  recordBcAuthorize(login: string | undefined, attempt: BcAuthorizeAttempt): BcAuthorizeAttempt {
    if (login === undefined) return attempt;
    let list = this.attempts.get(login);
    if (!list) {
      if (this.attempts.size >= MAX_ATTEMPT_LOGINS) return attempt;
      list = [];
      this.attempts.set(login, list);
    }
    list.push(attempt);
    if (list.length > MAX_ATTEMPTS_PER_LOGIN) list.splice(0, list.length - MAX_ATTEMPTS_PER_LOGIN);
    return attempt;
  }

  bcAuthorizeAttempts(login: string): BcAuthorizeAttempt[] {
    return this.attempts.get(login) ?? [];
  }

  /** Every request of a customer (pending, decided, expired; until swept), oldest first. */
  allFor(login: string): BackchannelRecord[] {
    return [...this.records.values()].filter((r) => r.login === login);
  }

  get(authReqId: string): BackchannelRecord | undefined {
    return this.records.get(authReqId);
  }

  loginOf(authReqId: string): string | undefined {
    return this.records.get(authReqId)?.login;
  }

  recordPoll(authReqId: string, at: number): PollRecord | undefined {
    const record = this.records.get(authReqId);
    if (!record) return undefined;
    const poll: PollRecord = { at };
    if (record.polls.length < MAX_POLLS_KEPT) record.polls.push(poll);
    return poll;
  }

  recordPing(authReqId: string, ping: PingRecord): PingRecord | undefined {
    const record = this.records.get(authReqId);
    if (!record) return undefined;
    record.pings ??= [];
    if (record.pings.length < MAX_POLLS_KEPT) record.pings.push(ping);
    return ping;
  }

  async decide(authReqId: string, status: Exclude<RequestStatus, 'pending'>): Promise<void> {
    const record = this.records.get(authReqId);
    if (!record) return;
    Object.assign(record, { status, decidedAt: Date.now() });
    await this.persist(record);
  }

  /** Pending and not yet expired, newest first. */
  pendingFor(login: string, now = Date.now()): BackchannelRecord[] {
    const out: BackchannelRecord[] = [];
    for (const record of this.records.values()) {
      if (record.login === login && record.status === 'pending' && record.expiresAt > now) out.push(record);
    }
    return out.reverse();
  }

  async clear(): Promise<void> {
    this.records.clear();
    this.attempts.clear();
    await this.journal?.clear('request');
  }

  sweep(now = Date.now()): void {
    for (const [id, record] of this.records) {
      if (record.expiresAt + RETENTION_MS <= now) this.records.delete(id);
    }
    // A bc-authorize attempt lives at most as long as the longest request it could have created.
    const horizon = now - 10 * 60 * 1000 - RETENTION_MS;
    for (const [login, list] of this.attempts) {
      const keep = list.filter((a) => a.at > horizon);
      if (keep.length === 0) this.attempts.delete(login);
      else if (keep.length !== list.length) this.attempts.set(login, keep);
    }
  }

  get size(): number {
    return this.records.size;
  }
}

/** What the bank app (and the control API) shows of a request. */
export function describeRequest(record: BackchannelRecord, now = Date.now()) {
  return {
    authReqId: record.authReqId,
    login: record.login,
    clientId: record.clientId,
    merchantName: record.clientName,
    scope: record.scope,
    bindingMessage: record.bindingMessage ?? null,
    payment: record.payment
      ? {
          amount: record.payment.instructedAmount.amount,
          currency: record.payment.instructedAmount.currency,
          creditorName: record.payment.creditorName,
          creditorIban: record.payment.creditorAccount.iban,
          remittanceInformation: record.payment.remittanceInformationUnstructured,
        }
      : null,
    status: record.status,
    createdAt: new Date(record.receivedAt).toISOString(),
    expiresAt: new Date(record.expiresAt).toISOString(),
    secondsLeft: Math.max(0, Math.floor((record.expiresAt - now) / 1000)),
  };
}

function describeAnswer(a: { outcome?: number | 'dropped'; result?: AnswerResult; unsent?: AnswerResult }) {
  return {
    outcome: a.outcome ?? null,
    result: a.result ?? null,
    ...(a.unsent ? { unsent: a.unsent } : {}),
  };
}

export function describeBcAuthorizeAttempt(a: BcAuthorizeAttempt) {
  return { at: a.at, path: a.path, ...describeAnswer(a), authReqId: a.authReqId ?? null };
}

export function describeTimeline(record: BackchannelRecord, now = Date.now()) {
  return {
    authReqId: record.authReqId,
    login: record.login,
    clientId: record.clientId,
    status: record.status,
    expiresAt: record.expiresAt,
    expired: record.expiresAt <= now,
    bcAuthorize: {
      at: record.receivedAt,
      path: record.path,
      interval: record.interval ?? null,
      ...describeAnswer(record.bcAuthorize ?? {}),
    },
    decidedAt: record.decidedAt ?? null,
    polls: record.polls.map((p) => ({
      at: p.at,
      ...describeAnswer(p),
      idTokenFault: p.idTokenFault ?? null,
    })),
    pings: (record.pings ?? []).map((p) => ({ ...p, outcome: p.outcome ?? null })),
    clientNotificationToken: record.clientNotificationToken ?? null,
  };
}
