/**
 * Typed errors of the outbound bank layer: a stable `code` the jobs map to a checkout's
 * `failure.code` (DESIGN.md §2), and whether trying again later can succeed.
 *
 * Messages name what went wrong and never carry tokens, keys, request objects or client
 * assertions: they end up in logs and in `failure.message`.
 */

export const bankErrorCodes = {
  /**
   * Network error, timeout, reset, 5xx, 429, or an answer nobody can read (bank.answers.ts): try
   * again later (same Idempotency-Key).
   */
  bankUnavailable: 'bank_unavailable',
  /** A readable answer we cannot use, e.g. tokens that are not Bearer tokens (bank.answers.ts). */
  invalidBankResponse: 'invalid_bank_response',
  /** The ID Token failed validation (OIDC Core §3.1.3.7, CIBA Core §7.4 / FAPI-CIBA). */
  invalidIdToken: 'invalid_id_token',
  /** The bank's metadata or our configuration for it cannot work (missing endpoint, key, untrusted TLS). */
  configurationError: 'configuration_error',
  /** A 4xx from the bank's payment API (DESIGN.md §4): 401 invalid_token, 403 mismatch, 404 ... */
  paymentApiError: 'payment_api_error',
} as const;

/** One of ours, or the bank's own OAuth/CIBA error code (`unknown_user_id`, `invalid_request`, ...). */
export type BankErrorCode = (typeof bankErrorCodes)[keyof typeof bankErrorCodes] | (string & {});

export interface BankErrorOptions {
  retryable?: boolean;
  retryAfterSeconds?: number | undefined;
  status?: number | undefined;
  cause?: unknown;
}

export class BankError extends Error {
  override name = 'BankError';
  readonly code: BankErrorCode;
  readonly retryable: boolean;
  readonly retryAfterSeconds?: number;
  readonly status?: number;

  constructor(code: BankErrorCode, message: string, options: BankErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? code === bankErrorCodes.bankUnavailable;
    if (options.retryAfterSeconds !== undefined) this.retryAfterSeconds = options.retryAfterSeconds;
    if (options.status !== undefined) this.status = options.status;
  }
}

/** An OAuth error code as sent by the bank, kept only if it looks like one (RFC 6749 §5.2 charset). */
export function safeOAuthCode(value: unknown): string | undefined {
  // Every code RFC 6749 §5.2, CIBA Core §13 and their extensions define is lower-case snake case.
  // The code becomes `failure.code`, which browsers show: anything else from a bank (a phone
  // number, markup) is not a code, whatever RFC 6749's wider charset would let through.
  return typeof value === 'string' && /^[a-z][a-z0-9_]{0,63}$/.test(value) ? value : undefined;
}

/**
 * The longest wait a bank's Retry-After can impose, in seconds (one day). A checkout's own
 * deadline comes far sooner, and a larger value from a faulty or hostile bank must not park a
 * payment for years or overflow what the schedule stores.
 */
export const MAX_RETRY_AFTER_SECONDS = 86_400;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const MONTH = `(?<month>${MONTHS.join('|')})`;
const TIME = '(?<hour>\\d{2}):(?<minute>\\d{2}):(?<second>\\d{2})';
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
/** RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must accept. */
const HTTP_DATES = [
  new RegExp(`^${DAY}, (?<day>\\d{2}) ${MONTH} (?<year>\\d{4}) ${TIME} GMT$`),
  new RegExp(
    `^(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, (?<day>\\d{2})-${MONTH}-(?<yy>\\d{2}) ${TIME} GMT$`,
  ),
  new RegExp(`^${DAY} ${MONTH} (?<day>[ \\d]\\d) ${TIME} (?<year>\\d{4})$`),
];

/** An HTTP-date (RFC 9110 §5.6.7) as epoch ms, always GMT; undefined when it is not one. */
function parseHttpDate(text: string, now: number): number | undefined {
  const g = HTTP_DATES.map((form) => form.exec(text)?.groups).find((groups) => groups !== undefined);
  if (!g) return undefined;
  let year = Number(g.year);
  if (g.yy !== undefined) {
    // A two-digit year more than 50 years ahead is the most recent past year ending so (§5.6.7).
    const thisYear = new Date(now).getUTCFullYear();
    year = thisYear - (thisYear % 100) + Number(g.yy);
    if (year > thisYear + 50) year -= 100;
  }
  const [day, hour, minute, second] = [g.day, g.hour, g.minute, g.second].map(Number) as [
    number,
    number,
    number,
    number,
  ];
  if (day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) return undefined;
  // A leap second (60) is read as the second before it.
  return Date.UTC(year, MONTHS.indexOf(g.month ?? ''), day, hour, minute, Math.min(second, 59));
}

/**
 * RFC 9110 §10.2.3 Retry-After: delay-seconds (1*DIGIT) or an HTTP-date, as whole seconds from
 * `now` (epoch ms), never negative and at most MAX_RETRY_AFTER_SECONDS; undefined when absent or
 * neither form (a bank's header is untrusted input: nothing else is guessed at).
 */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (/^[0-9]+$/.test(text)) return Math.min(MAX_RETRY_AFTER_SECONDS, Number(text));
  const at = parseHttpDate(text, now);
  if (at === undefined) return undefined;
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(0, Math.ceil((at - now) / 1000)));
}

/**
 * The `code` of a request Bankpay refused to make: a URL outside the bank's origins, or a host
 * that is or resolves to a link-local or metadata address (bank-endpoints.policy.ts).
 */
export const ENDPOINT_REFUSED_CODE = 'ERR_BANK_ENDPOINT_REFUSED';

/** TLS verification failures: the bank's certificate is not the one we trust (never retried blindly). */
const TLS_VERIFICATION_CODES = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_REVOKED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function errorChain(error: unknown): Array<{ name?: string; code?: unknown; message?: string }> {
  const chain: Array<{ name?: string; code?: unknown; message?: string }> = [];
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === 'object' && current !== null; depth++) {
    chain.push(current as { name?: string; code?: unknown; message?: string });
    current = (current as { cause?: unknown }).cause;
  }
  return chain;
}

/**
 * A failed request that never got an HTTP answer: a timeout, refused/reset/dropped connection,
 * DNS failure → bank_unavailable (retryable); a TLS certificate we do not trust →
 * configuration_error (retrying cannot help until the CA in the bank's configuration is fixed); a
 * request Bankpay refused to make (a link-local or metadata address, a URL outside the bank's
 * origins) → configuration_error, nothing was sent. Rows noAnswer, untrustedTls and
 * refusedAddress of the table in bank.answers.ts.
 */
export function transportError(error: unknown, what: string): BankError {
  if (error instanceof BankError) return error;
  const chain = errorChain(error);
  const refused = chain.find((e) => e.code === ENDPOINT_REFUSED_CODE);
  if (refused) {
    return new BankError(bankErrorCodes.configurationError, `${what}: ${refused.message ?? 'refused'}`, {
      retryable: false,
      cause: error,
    });
  }
  const tls = chain.find((e) => typeof e.code === 'string' && TLS_VERIFICATION_CODES.has(e.code));
  if (tls) {
    return new BankError(
      bankErrorCodes.configurationError,
      `${what}: the bank's TLS certificate is not trusted (${String(tls.code)})`,
      { retryable: false, cause: error },
    );
  }
  const timeout = chain.some((e) => e.name === 'TimeoutError' || e.code === 'UND_ERR_CONNECT_TIMEOUT');
  const code = chain.map((e) => e.code).find((c): c is string => typeof c === 'string');
  return new BankError(
    bankErrorCodes.bankUnavailable,
    `${what}: ${timeout ? 'timed out' : `no answer from the bank${code ? ` (${code})` : ''}`}`,
    { retryable: true, cause: error },
  );
}

/** An HTTP status that means "not now" (RFC 9110 §15.6, RFC 6585 §4): 5xx, 429. */
export function isUnavailableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}
