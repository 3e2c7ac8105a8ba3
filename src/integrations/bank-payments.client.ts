/**
 * The bank's payment API (DESIGN.md §4, the generic adapter): over the bank's mTLS Agent, with the
 * certificate-bound access token (RFC 8705 §3) as a Bearer token (RFC 6750 §2.1). Request
 * functions return the raw Response; process functions validate it.
 */
import {
  BankError,
  bankErrorCodes,
  isUnavailableStatus,
  safeOAuthCode,
  transportError,
  unavailableStatus,
} from './bank.errors.ts';
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

function isAbort(error: unknown): boolean {
  const name = (error as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

async function readJson(response: Response, what: string): Promise<unknown> {
  try {
    return await response.json();
  } catch (error) {
    // A deadline or reset while the body streams is the network's fault, not the bank's format.
    if (isAbort(error) || (error instanceof TypeError && (error as { cause?: unknown }).cause)) {
      throw transportError(error, what);
    }
    throw new BankError(bankErrorCodes.invalidBankResponse, `${what}: the answer is not JSON`, {
      status: response.status,
    });
  }
}

/**
 * DESIGN.md §4: `{ paymentId, status: 'accepted' | 'rejected', reason? }` with an expected status;
 * 5xx/429/409 → bank_unavailable (retryable); other 4xx → payment_api_error with the status and the
 * bank's error code (RFC 6750 §3.1 invalid_token, 403 a body unlike the approved one, ...).
 */
export async function processPaymentResponse(
  response: Response,
  expectedStatuses: readonly number[],
  what: string,
  now: number,
): Promise<PaymentResult> {
  // 409: a request with this Idempotency-Key is still being processed (IETF
  // draft-ietf-httpapi-idempotency-key-header §2.7): ask again later, as for a 503.
  if (isUnavailableStatus(response.status) || response.status === 409) {
    await response.body?.cancel().catch(() => undefined);
    throw unavailableStatus(response, what, now);
  }
  if (response.status >= 400) {
    const body = await readJson(response, what).catch(() => undefined);
    const code = safeOAuthCode((body as { error?: unknown } | undefined)?.error);
    throw new BankError(
      bankErrorCodes.paymentApiError,
      `${what}: the payment API answered ${response.status}${code ? ` (${code})` : ''}`,
      { retryable: false, status: response.status },
    );
  }
  if (!expectedStatuses.includes(response.status)) {
    await response.body?.cancel().catch(() => undefined);
    throw new BankError(
      bankErrorCodes.invalidBankResponse,
      `${what}: unexpected status ${response.status} (expected ${expectedStatuses.join(' or ')})`,
      { status: response.status },
    );
  }
  const body = (await readJson(response, what)) as Record<string, unknown> | null;
  const paymentId = body?.paymentId;
  const status = body?.status;
  const reason = body?.reason;
  if (
    typeof paymentId !== 'string' ||
    paymentId.length === 0 ||
    !(paymentStatuses as readonly unknown[]).includes(status) ||
    (reason !== undefined && typeof reason !== 'string')
  ) {
    throw new BankError(
      bankErrorCodes.invalidBankResponse,
      `${what}: the answer is not { paymentId, status: accepted|rejected, reason? }`,
      { status: response.status },
    );
  }
  return {
    paymentId,
    status: status as PaymentResult['status'],
    ...(typeof reason === 'string' ? { reason } : {}),
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
