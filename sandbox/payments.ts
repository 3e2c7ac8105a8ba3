/**
 * The bank's payment API (DESIGN.md §4), on the same mTLS listener as the OP, under `/api`.
 *
 * Accepts only the OP's JWT access tokens (RFC 9068) for this API, bound to the presented client
 * certificate (RFC 8705 §3), and only payments equal to the RFC 9396 payment_initiation details
 * the customer approved. Payments are idempotent per client and Idempotency-Key.
 */
import { createHash, randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { createLocalJWKSet, type JSONWebKeySet, type JWTPayload, jwtVerify } from 'jose';
import type { FaultBook } from './faults.ts';
import {
  dropConnection,
  HttpError,
  pathSegments,
  readJson,
  sendError,
  sendJson,
  sendScripted,
  sleep,
} from './http.ts';
import type { Journal, JournalRecord } from './journal.ts';
import {
  findPaymentInitiation,
  type PaymentOrder,
  parsePaymentOrder,
  sameOrder,
  toOrder,
} from './payment-details.ts';
import { PAYMENTS_SCOPE } from './provider.ts';

export const paymentStatuses = ['accepted', 'rejected'] as const;
export type PaymentStatus = (typeof paymentStatuses)[number];

export interface Payment {
  paymentId: string;
  status: PaymentStatus;
  reason?: string;
  clientId: string;
  login: string;
  idempotencyKey: string;
  order: PaymentOrder;
  /** The access token (jti) that paid: one payment per approval. */
  tokenId: string;
  createdAt: string;
}

/** The answer of POST and GET: `{ paymentId, status, reason? }`. */
export function paymentView(p: Payment): { paymentId: string; status: PaymentStatus; reason?: string } {
  return { paymentId: p.paymentId, status: p.status, ...(p.reason ? { reason: p.reason } : {}) };
}

/**
 * One POST /payments that reached the bank, whatever became of it, so a test can prove that no
 * payment call was made (or how many). `login` and `clientId` come from the access token when its
 * signature, issuer and audience verified (even if it was then refused, e.g. bound to another
 * certificate: `error` says why); without such a token they are null.
 */
export interface PaymentAttempt {
  at: string;
  login: string | null;
  clientId: string | null;
  idempotencyKey: string | null;
  /** HTTP status answered, or 'dropped' when the connection was abandoned. */
  status: number | 'dropped';
  /** The error code of an error answer (`invalid_token`, `payment_mismatch`, ...). */
  error: string | null;
  paymentId: string | null;
}

// The most recent attempts kept (a benchmark pays far more often than a test reads them).
const MAX_ATTEMPTS_KEPT = 50_000;

/** The bank's payments (kept in the journal, so idempotency holds across a restart) and attempts (memory). */
export class PaymentLedger {
  private readonly payments = new Map<string, Payment>();
  private attemptLog: PaymentAttempt[] = [];
  private readonly byIdempotencyKey = new Map<string, Payment>();
  private readonly byToken = new Map<string, Payment>();

  constructor(private readonly journal?: Journal) {}

  /** Puts back the payments a journal kept. */
  restore(records: ReadonlyArray<JournalRecord<Payment>>): void {
    for (const { data } of records) this.index(data);
  }

  static keyOf(clientId: string, idempotencyKey: string): string {
    return `${clientId}\u0000${idempotencyKey}`;
  }

  async add(payment: Payment): Promise<void> {
    this.index(payment);
    await this.journal?.put('payment', payment.paymentId, payment);
  }

  private index(payment: Payment): void {
    this.payments.set(payment.paymentId, payment);
    this.byIdempotencyKey.set(PaymentLedger.keyOf(payment.clientId, payment.idempotencyKey), payment);
    this.byToken.set(payment.tokenId, payment);
  }

  get(paymentId: string): Payment | undefined {
    return this.payments.get(paymentId);
  }

  byKey(clientId: string, idempotencyKey: string): Payment | undefined {
    return this.byIdempotencyKey.get(PaymentLedger.keyOf(clientId, idempotencyKey));
  }

  byTokenId(tokenId: string): Payment | undefined {
    return this.byToken.get(tokenId);
  }

  list(filter: { login?: string; clientId?: string } = {}): Payment[] {
    return [...this.payments.values()].filter(
      (p) =>
        (filter.login === undefined || p.login === filter.login) &&
        (filter.clientId === undefined || p.clientId === filter.clientId),
    );
  }

  recordAttempt(attempt: PaymentAttempt): void {
    this.attemptLog.push(attempt);
    if (this.attemptLog.length > MAX_ATTEMPTS_KEPT * 1.1)
      this.attemptLog = this.attemptLog.slice(-MAX_ATTEMPTS_KEPT);
  }

  /** Attempts in arrival order; `login: null` selects those without a verified token. */
  attempts(filter: { login?: string | null; clientId?: string } = {}): PaymentAttempt[] {
    return this.attemptLog.filter(
      (a) =>
        (filter.login === undefined || a.login === filter.login) &&
        (filter.clientId === undefined || a.clientId === filter.clientId),
    );
  }

  async clear(): Promise<void> {
    this.attemptLog = [];
    this.payments.clear();
    this.byIdempotencyKey.clear();
    this.byToken.clear();
    await this.journal?.clear('payment');
  }
}

export interface PaymentsApiSetup {
  issuer: string;
  paymentsApiUrl: string;
  /** The OP's public signing keys. */
  jwks: JSONWebKeySet;
  ledger: PaymentLedger;
  faults: FaultBook;
}

interface Caller {
  clientId: string;
  login: string;
  tokenId: string;
  claims: JWTPayload;
}

const invalidToken = (description: string) =>
  new HttpError(401, 'invalid_token', description, {
    'www-authenticate': `Bearer error="invalid_token", error_description="${description}"`,
  });

export function createPaymentsApi(setup: PaymentsApiSetup) {
  const { issuer, paymentsApiUrl, ledger, faults } = setup;
  const keys = createLocalJWKSet(setup.jwks);
  const apiPath = new URL(paymentsApiUrl).pathname; // '/api'

  /** The token's subject and client, once its signature, issuer and audience verified. */
  const verifiedTokenOf = new WeakMap<IncomingMessage, { login: string | null; clientId: string | null }>();
  /** The payment a request created, also when its answer is then dropped. */
  const createdBy = new WeakMap<IncomingMessage, string>();

  async function authenticate(req: IncomingMessage): Promise<Caller> {
    const header = req.headers.authorization ?? '';
    const match = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/.exec(header);
    if (!match?.[1]) {
      // RFC 6750 §3.1: no error code when the request carried no token at all.
      throw new HttpError(401, 'invalid_request', 'a Bearer access token is required', {
        'www-authenticate': 'Bearer realm="sandbox-bank"',
      });
    }
    let claims: JWTPayload;
    try {
      ({ payload: claims } = await jwtVerify(match[1], keys, {
        issuer,
        audience: paymentsApiUrl,
        typ: 'at+jwt',
        algorithms: ['PS256'],
      }));
    } catch {
      throw invalidToken('the access token is invalid or expired');
    }
    verifiedTokenOf.set(req, {
      login: typeof claims.sub === 'string' ? claims.sub : null,
      clientId: typeof claims.client_id === 'string' ? claims.client_id : null,
    });
    // RFC 8705 §3: the token is only good with the certificate it is bound to.
    const cnf = claims.cnf as Record<string, unknown> | undefined;
    const bound = cnf?.['x5t#S256'];
    if (typeof bound !== 'string') throw invalidToken('the access token is not certificate-bound');
    const socket = req.socket as TLSSocket;
    const cert = socket.getPeerX509Certificate?.();
    if (!cert || !socket.authorized) throw invalidToken('a trusted client certificate is required');
    const thumbprint = createHash('sha256').update(cert.raw).digest('base64url');
    if (thumbprint !== bound) throw invalidToken('the access token is bound to another certificate');
    if (
      !String(claims.scope ?? '')
        .split(' ')
        .includes(PAYMENTS_SCOPE)
    ) {
      throw new HttpError(403, 'insufficient_scope', `the access token lacks the ${PAYMENTS_SCOPE} scope`, {
        'www-authenticate': `Bearer error="insufficient_scope", scope="${PAYMENTS_SCOPE}"`,
      });
    }
    if (
      typeof claims.client_id !== 'string' ||
      typeof claims.sub !== 'string' ||
      typeof claims.jti !== 'string'
    ) {
      throw invalidToken('the access token lacks client_id, sub or jti');
    }
    return { clientId: claims.client_id, login: claims.sub, tokenId: claims.jti, claims };
  }

  /** Records the attempt when its answer has left (or the connection was dropped). */
  function observeAttempt(req: IncomingMessage, res: ServerResponse): void {
    const at = new Date().toISOString();
    const header = req.headers['idempotency-key'];
    const chunks: Buffer[] = [];
    const end = res.end.bind(res) as (...args: unknown[]) => ServerResponse;
    res.end = ((chunk?: unknown, ...rest: unknown[]) => {
      if (Buffer.isBuffer(chunk)) chunks.push(chunk);
      else if (typeof chunk === 'string') chunks.push(Buffer.from(chunk));
      return end(chunk, ...rest);
    }) as typeof res.end;
    const record = (status: number | 'dropped') => {
      let body: Record<string, unknown> | undefined;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown>;
      } catch {
        body = undefined;
      }
      const token = verifiedTokenOf.get(req);
      ledger.recordAttempt({
        at,
        login: token?.login ?? null,
        clientId: token?.clientId ?? null,
        idempotencyKey: typeof header === 'string' ? header : null,
        status,
        error: typeof body?.error === 'string' ? body.error : null,
        paymentId: typeof body?.paymentId === 'string' ? body.paymentId : (createdBy.get(req) ?? null),
      });
    };
    res.once('finish', () => record(res.statusCode));
    res.once('close', () => {
      if (!res.writableFinished) record('dropped');
    });
  }

  async function createPayment(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const caller = await authenticate(req);
    const idempotencyKey = req.headers['idempotency-key'];
    if (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0 || idempotencyKey.length > 255) {
      throw new HttpError(
        400,
        'invalid_request',
        'the Idempotency-Key header (1-255 characters) is required',
      );
    }
    let order: PaymentOrder;
    try {
      order = parsePaymentOrder(await readJson(req), 'body');
    } catch (error) {
      if (error instanceof HttpError) throw error;
      throw new HttpError(400, 'invalid_request', (error as Error).message);
    }

    // Scripted misbehaviour of the payment system itself, before anything is committed.
    const delay = faults.delayMs(caller.login, 'payments');
    if (delay > 0) await sleep(delay);
    if (faults.takeDrop(caller.login, 'payments', false)) return dropConnection(req, res);
    const unavailable = faults.takeUnavailable(caller.login, 'payments');
    if (unavailable) {
      throw new HttpError(
        unavailable.status,
        unavailable.status === 503 ? 'temporarily_unavailable' : 'server_error',
        'the payment system is unavailable (scripted)',
        { 'retry-after': String(unavailable.retryAfter) },
      );
    }
    if (faults.takePaymentError(caller.login)) {
      throw new HttpError(500, 'server_error', 'the payment system failed (scripted)');
    }
    // Someone else answers (a proxy's page) before the payment system sees the request.
    const scripted = faults.takeAnswer(caller.login, 'payments', false);
    if (scripted) return sendScripted(res, scripted);

    // From here to the commit nothing awaits, so two concurrent requests with one key cannot
    // both create a payment.
    const previous = ledger.byKey(caller.clientId, idempotencyKey);
    if (previous) {
      if (!sameOrder(previous.order, order)) {
        throw new HttpError(
          422,
          'idempotency_key_reused',
          'this Idempotency-Key was used for another payment',
        );
      }
      return sendJson(res, 201, paymentView(previous), { 'idempotent-replayed': 'true' });
    }
    const approved = findPaymentInitiation(caller.claims.authorization_details);
    if (!approved) {
      throw new HttpError(
        403,
        'payment_not_authorized',
        'the access token carries no payment_initiation details',
      );
    }
    if (!sameOrder(toOrder(approved), order)) {
      throw new HttpError(403, 'payment_mismatch', 'the payment differs from what the customer approved');
    }
    // A payment_initiation approval pays once; a second key cannot reuse it.
    if (ledger.byTokenId(caller.tokenId)) {
      throw new HttpError(403, 'consent_already_used', 'this approval was already used for a payment');
    }
    const reason = faults.takePaymentRejection(caller.login);
    const payment: Payment = {
      paymentId: `pay_${randomUUID()}`,
      status: reason ? 'rejected' : 'accepted',
      ...(reason ? { reason } : {}),
      clientId: caller.clientId,
      login: caller.login,
      idempotencyKey,
      order,
      tokenId: caller.tokenId,
      createdAt: new Date().toISOString(),
    };
    await ledger.add(payment); // indexed before the first await: the check above stays atomic
    createdBy.set(req, payment.paymentId);
    // The payment exists, the answer is lost: what a crash between commit and reply looks like.
    if (faults.takeDrop(caller.login, 'payments', true)) return dropConnection(req, res);
    // The payment exists, the answer is slow: a client that dies meanwhile never hears it.
    const hold = faults.holdMs(caller.login, 'payments');
    if (hold > 0) await sleep(hold);
    if (res.destroyed) return;
    // The payment exists, the answer is garbled (a proxy rewrote it, a half-deployed bank).
    const garbled = faults.takeAnswer(caller.login, 'payments', true);
    if (garbled) return sendScripted(res, garbled);
    sendJson(res, 201, paymentView(payment), { location: `${apiPath}/payments/${payment.paymentId}` });
  }

  async function getPayment(req: IncomingMessage, res: ServerResponse, paymentId: string): Promise<void> {
    const caller = await authenticate(req);
    const payment = ledger.get(paymentId);
    if (!payment || payment.clientId !== caller.clientId) {
      throw new HttpError(404, 'not_found', 'no such payment');
    }
    sendJson(res, 200, paymentView(payment));
  }

  /** Handles `/api/...`; returns false when the path is not the API's. */
  return async function handlePaymentsRequest(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (path !== apiPath && !path.startsWith(`${apiPath}/`)) return false;
    const segments = pathSegments(path.slice(apiPath.length));
    try {
      if (segments.length === 1 && segments[0] === 'payments') {
        if (req.method !== 'POST') throw new HttpError(405, 'method_not_allowed', 'use POST');
        observeAttempt(req, res);
        await createPayment(req, res);
      } else if (segments.length === 2 && segments[0] === 'payments' && segments[1]) {
        if (req.method !== 'GET') throw new HttpError(405, 'method_not_allowed', 'use GET');
        await getPayment(req, res, segments[1]);
      } else {
        throw new HttpError(404, 'not_found', 'no such resource');
      }
    } catch (error) {
      sendError(res, error);
    }
    return true;
  };
}
