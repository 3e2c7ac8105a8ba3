/**
 * The bank's view of CIBA requests beyond what oidc-provider stores: who must approve what (the
 * bank app's inbox), and what arrived on the wire when (bc-authorize and every token poll), so
 * tests can measure a client's polling behaviour from the server side.
 *
 * oidc-provider's BackchannelAuthenticationRequest stays the source of truth for the protocol
 * state; this registry is a projection of it, filled in triggerAuthenticationDevice.
 */
import type { PaymentInitiation } from './payment-details.ts';

export const requestStatuses = ['pending', 'approved', 'denied'] as const;
export type RequestStatus = (typeof requestStatuses)[number];

export interface PollRecord {
  /** Epoch ms at which the bank received the token request. */
  at: number;
  /** HTTP status the bank answered with, or 'dropped' when the connection was abandoned. */
  outcome?: number | 'dropped';
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
}

// A request polled every second for its 10 minutes is 600 entries; this cap only protects the
// process from a runaway client.
const MAX_POLLS_KEPT = 5_000;
// Decided or expired requests stay visible (for timelines) this long after their expiry.
const RETENTION_MS = 10 * 60 * 1000;

export class RequestRegistry {
  private readonly records = new Map<string, BackchannelRecord>();

  add(record: BackchannelRecord): void {
    this.records.set(record.authReqId, record);
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

  decide(authReqId: string, status: Exclude<RequestStatus, 'pending'>): void {
    const record = this.records.get(authReqId);
    if (record) Object.assign(record, { status, decidedAt: Date.now() });
  }

  /** Pending and not yet expired, newest first. */
  pendingFor(login: string, now = Date.now()): BackchannelRecord[] {
    const out: BackchannelRecord[] = [];
    for (const record of this.records.values()) {
      if (record.login === login && record.status === 'pending' && record.expiresAt > now) out.push(record);
    }
    return out.reverse();
  }

  clear(): void {
    this.records.clear();
  }

  sweep(now = Date.now()): void {
    for (const [id, record] of this.records) {
      if (record.expiresAt + RETENTION_MS <= now) this.records.delete(id);
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

export function describeTimeline(record: BackchannelRecord) {
  return {
    authReqId: record.authReqId,
    login: record.login,
    clientId: record.clientId,
    status: record.status,
    bcAuthorize: { at: record.receivedAt, path: record.path, interval: record.interval ?? null },
    decidedAt: record.decidedAt ?? null,
    polls: record.polls.map((p) => ({ at: p.at, outcome: p.outcome ?? null })),
  };
}
