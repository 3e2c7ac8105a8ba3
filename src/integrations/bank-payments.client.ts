/**
 * The bank's payment API (DESIGN.md §4, the generic adapter): over the bank's mTLS Agent, with the
 * certificate-bound access token (RFC 8705 §3) as a Bearer token (RFC 6750 §2.1). Request
 * functions return the raw Response; process functions validate it.
 */
import { answerError, isNonEmptyString, readBankAnswer } from './bank.answers.ts';
import { bankErrorCodes, safeOAuthCode, transportError } from './bank.errors.ts';
import { type PaymentInitiation, type PaymentResult, paymentStatuses } from './bank.types.ts';
import type { BankFetch } from './mtls.agent.ts';

function paymentsUrl(paymentsApiUrl: string, ...segments: string[]): string {
  const base = paymentsApiUrl.replace(/\/+$/, '');
  return [base, 'payments', ...segments.map(encodeURIComponent)].join('/');
}

/**
 * DESIGN.md §4: POST {paymentsApiUrl}/payments with the Bearer token and Idempotency-Key (the
 * same key again returns the first answer, so a retry after a lost answer cannot pay twice).
 */
export function initiatePaymentRequest(
  fetch: BankFetch,
  paymentsApiUrl: string,
  accessToken: string,
  idempotencyKey: string,
  body: PaymentInitiation,
): Promise<Response> {
  return fetch(paymentsUrl(paymentsApiUrl), {
    method: 'POST',
    headers: {
      accept: 'application/json',
      authorization: `Bearer ${accessToken}`,
      'content-type': 'application/json',
      'idempotency-key': idempotencyKey,
    },
    body: JSON.stringify({
      instructedAmount: body.instructedAmount,
      creditorName: body.creditorName,
      creditorAccount: body.creditorAccount,
      remittanceInformationUnstructured: body.remittanceInformationUnstructured,
    }),
    redirect: 'manual',
  });
}

/**
 * The bank's payment id as Bankpay keeps and shows it (`payment.bankPaymentId`, which browsers
 * see): at most 128 visible ASCII characters, anything else replaced by `_`. An accepted payment
 * is never refused for its id: it is the merchant's reference at the bank, not our key.
 */
export function shownPaymentId(paymentId: string): string {
  return paymentId.slice(0, 128).replace(/[^\x21-\x7e]/g, '_');
}

/** DESIGN.md §4: GET {paymentsApiUrl}/payments/{paymentId}. */
export function getPaymentRequest(
  fetch: BankFetch,
  paymentsApiUrl: string,
  accessToken: string,
  paymentId: string,
): Promise<Response> {
  return fetch(paymentsUrl(paymentsApiUrl, paymentId), {
    method: 'GET',
    headers: { accept: 'application/json', authorization: `Bearer ${accessToken}` },
    redirect: 'manual',
  });
}

/**
 * 408 Request Timeout (RFC 9110 §15.5.9), 409 a request with this Idempotency-Key still in
 * progress (draft-ietf-httpapi-idempotency-key-header §2.7), 425 Too Early (RFC 8470 §5.2): ask
 * again later, as for a 503 (row paymentLater).
 */
const PAYMENT_LATER_STATUSES = [408, 409, 425];

/** RFC 6750 §3: a Bearer challenge, and its error code when it names one. */
function bearerChallenge(headers: Headers): { code: string | undefined } | undefined {
  const header = headers.get('www-authenticate');
  if (!header || !/^\s*bearer(?:\s|,|$)/i.test(header)) return undefined;
  return { code: safeOAuthCode(/\berror="?([^",\s]+)/i.exec(header)?.[1]) };
}

/**
 * DESIGN.md §4: `{ paymentId, status: 'accepted' | 'rejected', reason? }` with an expected status
 * (row paymentResult); a 4xx the bank can be read to have refused with → payment_api_error with
 * the status and its code (row paymentRefused: RFC 6750 §3.1 invalid_token, 403 a body unlike the
 * approved one, ...). Anything else is transient (rows later, paymentLater, paymentUnreadable,
 * paymentUnreadableRefusal in bank.answers.ts): the bank may have paid, and only a re-send with
 * the same Idempotency-Key can tell, so an answer nobody can read never becomes a rejection.
 */
export async function processPaymentResponse(
  response: Response,
  expectedStatuses: readonly number[],
  what: string,
  now: number,
): Promise<PaymentResult> {
  if (PAYMENT_LATER_STATUSES.includes(response.status)) {
    await response.body?.cancel().catch(() => undefined);
    throw answerError('paymentLater', what, `the bank answered ${response.status}`, response, now);
  }
  const answer = await readBankAnswer(
    response,
    what,
    now,
    (s) => s >= 200 && s < 500 && !(s >= 300 && s < 400),
  );
  const body = answer.json;
  if (answer.status >= 400) {
    const code = safeOAuthCode(body?.error);
    const challenge = bearerChallenge(answer.headers);
    if (!code && !challenge) {
      throw answerError(
        'paymentUnreadableRefusal',
        what,
        `the payment API answered ${answer.status} without a readable error`,
        answer,
        now,
      );
    }
    const named = code ?? challenge?.code;
    throw answerError(
      'paymentRefused',
      what,
      `the payment API answered ${answer.status}${named ? ` (${named})` : ''}`,
      answer,
      now,
      bankErrorCodes.paymentApiError,
    );
  }
  const paymentId = body?.paymentId;
  const status = body?.status;
  if (
    !expectedStatuses.includes(answer.status) ||
    !isNonEmptyString(paymentId) ||
    !(paymentStatuses as readonly unknown[]).includes(status)
  ) {
    throw answerError(
      'paymentUnreadable',
      what,
      `the answer (${answer.status}) is not { paymentId, status: accepted|rejected }`,
      answer,
      now,
    );
  }
  // An optional member that cannot be read is ignored (row paymentResult).
  const reason = typeof body?.reason === 'string' ? body.reason : undefined;
  return {
    paymentId: shownPaymentId(paymentId),
    status: status as PaymentResult['status'],
    ...(reason ? { reason } : {}),
  };
}

/** DESIGN.md §4 POST /payments, request and processing, with transport failures typed. */
export async function initiatePayment(
  fetch: BankFetch,
  paymentsApiUrl: string,
  accessToken: string,
  idempotencyKey: string,
  body: PaymentInitiation,
  now: () => number,
): Promise<PaymentResult> {
  let response: Response;
  try {
    response = await initiatePaymentRequest(fetch, paymentsApiUrl, accessToken, idempotencyKey, body);
  } catch (error) {
    throw transportError(error, 'payments');
  }
  // 201 per the contract; a replayed key may come back 200 from some banks.
  return processPaymentResponse(response, [201, 200], 'payments', now());
}

/** DESIGN.md §4 GET /payments/{id}. */
export async function getPayment(
  fetch: BankFetch,
  paymentsApiUrl: string,
  accessToken: string,
  paymentId: string,
  now: () => number,
): Promise<PaymentResult> {
  let response: Response;
  try {
    response = await getPaymentRequest(fetch, paymentsApiUrl, accessToken, paymentId);
  } catch (error) {
    throw transportError(error, 'payments/{id}');
  }
  return processPaymentResponse(response, [200], 'payments/{id}', now());
}
