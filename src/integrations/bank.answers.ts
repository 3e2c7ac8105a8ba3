/**
 * How Bankpay reads a bank's answers: one rule, and the table of what it means for every answer
 * of every endpoint Bankpay reads (discovery, JWKS, bc-authorize, token, payment API). The
 * process functions of ciba.client.ts, jwks.cache.ts and bank-payments.client.ts name the row
 * they apply; README.md ("How Bankpay reads a bank's answers") shows the same table, and a test
 * keeps the two equal.
 *
 * The rule. An answer is one of three things:
 *   1. the endpoint's success, in the shape its spec gives it → used; an optional member that
 *      cannot be read is ignored and its default applies;
 *   2. an error the endpoint's spec defines, readable: RFC 6749 §5.2 (a 400, or 401, whose body
 *      is a JSON object with an `error` code, or a 401 challenge; CIBA Core §13 adds 403
 *      access_denied at bc-authorize), or for the payment API a 4xx with a JSON `error` or a
 *      Bearer challenge (RFC 6750 §3) → final, with the bank's code, unless the code itself says
 *      "later" (authorization_pending, slow_down, temporarily_unavailable);
 *   3. anything else → unreadable. An answer nobody can read says nothing, so it is treated like
 *      no answer at all: transient (BankError bank_unavailable, retryable), asked again until the
 *      deadline. Every such repeat is already safe (a token poll; the same Idempotency-Key; a
 *      second CIBA request expires unpolled), so the worst a misread costs is time.
 * A readable success that fails our checks (metadata, token type, ID Token) is final.
 * Whenever Bankpay comes back, it honours every hint the bank gave about when: `interval`,
 * `slow_down`, and `Retry-After` on any status (RFC 9110 §10.2.3).
 *
 * The body decides whether an answer is readable, not its Content-Type: a proxy's HTML page
 * labelled application/json is unreadable, and a JSON body labelled otherwise is read.
 */
import {
  BankError,
  bankErrorCodes,
  isUnavailableStatus,
  MAX_RETRY_AFTER_SECONDS,
  parseRetryAfter,
  transportError,
} from './bank.errors.ts';
import { DEFAULT_POLL_INTERVAL_S } from './bank.types.ts';

export type AnswerDecision = 'transient' | 'final' | 'default' | 'wait' | 'used';

export interface AnswerRule {
  endpoint: 'every' | 'discovery' | 'jwks' | 'bc-authorize' | 'token' | 'payments';
  /** The answer, as the bank gives it. */
  answer: string;
  decision: AnswerDecision;
  /** What Bankpay then does (for a final decision: the checkout's failure code). */
  action: string;
  /** Why, with the spec section. */
  why: string;
}

/** The decisions, one row per kind of answer (README.md shows them as a table, in this order). */
export const bankAnswerRules = {
  noAnswer: {
    endpoint: 'every',
    answer:
      'no answer: a timeout (`BANK_TIMEOUT_MS`), a refused, reset or dropped connection, a body cut off',
    decision: 'transient',
    action:
      '`bank_unavailable`; asked again after the backoff (1 s, 2 s, … 60 s), never sooner than the interval',
    why: 'nothing was said; every repeat is safe (a token poll; the same Idempotency-Key, DESIGN.md §4; a second CIBA request expires unpolled)',
  },
  untrustedTls: {
    endpoint: 'every',
    answer: "the bank's TLS certificate does not verify against `caFile`",
    decision: 'final',
    action: '`configuration_error`',
    why: 'RFC 8705 §2: retrying cannot help until the trusted CA is fixed',
  },
  refusedAddress: {
    endpoint: 'every',
    answer:
      "no request made: the bank's host is, or resolves to, a link-local or cloud metadata address (169.254.0.0/16, fe80::/10, 169.254.169.254, fd00:ec2::254, 100.100.100.200, `metadata.google.internal`, …), or a URL is outside the bank's origins",
    decision: 'final',
    action: '`configuration_error`; nothing is sent there',
    why: "RFC 8705 §2: our certificate, request objects and client assertions go to the bank only; these addresses serve the host's cloud credentials, never a bank",
  },
  later: {
    endpoint: 'every',
    answer: '5xx, 429',
    decision: 'transient',
    action:
      '`bank_unavailable`, with its Retry-After (token endpoint, 503 and 429: the `unavailable` outcome, the same wait)',
    why: 'RFC 9110 §15.6, RFC 6585 §4: the bank says "not now"',
  },
  retryAfter: {
    endpoint: 'every',
    answer:
      '`Retry-After` on any answer Bankpay comes back after (5xx, 429, an unreadable answer, `authorization_pending`, `slow_down`, `temporarily_unavailable`)',
    decision: 'wait',
    action:
      'the next request waits at least that long (delay-seconds or an HTTP-date, at most one day), and never less than the interval or the backoff; the deadline still ends the wait',
    why: 'RFC 9110 §10.2.3; a hint is honoured whatever the status it comes with',
  },
  notJson: {
    endpoint: 'every',
    answer:
      "a body that is not a JSON object: a proxy's HTML page (even labelled `application/json`), empty, cut, an array, an `error` that is not an error code",
    decision: 'transient',
    action: '`bank_unavailable`, as for no answer',
    why: 'RFC 6749 §5.2: only a JSON error body is an OAuth error; the body decides, not the Content-Type',
  },
  otherStatus: {
    endpoint: 'every',
    answer:
      "a status the endpoint's spec does not give: 1xx, 3xx, another 2xx, a 4xx outside its error statuses (404, 405, 407, 408, 413, …)",
    decision: 'transient',
    action: '`bank_unavailable`, as for no answer',
    why: "RFC 6749 §5.1/§5.2, CIBA Core §13: a gateway's answer, not the bank's",
  },
  discoveryIncomplete: {
    endpoint: 'discovery',
    answer: '200, a JSON object without a string `issuer`',
    decision: 'transient',
    action: '`bank_unavailable`',
    why: "OIDC Discovery §3: not the bank's metadata (it would be a wrong issuer otherwise)",
  },
  discoveryUnusable: {
    endpoint: 'discovery',
    answer:
      'metadata with another `issuer`, without a usable https backchannel or token endpoint (or its mTLS alias) or `jwks_uri`, or without poll mode',
    decision: 'final',
    action: '`configuration_error`',
    why: 'OIDC Discovery §4.3, CIBA Core §4, RFC 8705 §5: readable metadata that cannot work with this bank entry',
  },
  discoveryForeignEndpoint: {
    endpoint: 'discovery',
    answer:
      "metadata whose backchannel or token endpoint, their mTLS alias or `jwks_uri` is not on the issuer's origin nor one of the bank's `allowedEndpointOrigins`, or is a link-local or cloud metadata address (even when allowed)",
    decision: 'final',
    action: '`configuration_error`; nothing is sent there',
    why: 'OIDC Discovery §4.3, RFC 8414 §3.3: the issuer check vouches for the document, not for the hosts it names; RFC 8705 §5 aliases included',
  },
  jwksWithoutKeys: {
    endpoint: 'jwks',
    answer: '200, a JSON object without a `keys` array of objects',
    decision: 'transient',
    action: '`bank_unavailable`; keys already fetched stay in use',
    why: 'RFC 7517 §5: not a key set',
  },
  ackError: {
    endpoint: 'bc-authorize',
    answer: '400, 401, 403 with a JSON `error` code, or a 401 challenge',
    decision: 'final',
    action:
      "the bank's code (`unknown_user_id`, `invalid_client`, `access_denied`, …); `temporarily_unavailable` is transient",
    why: 'CIBA Core §13, RFC 6749 §5.2',
  },
  ackWithoutAuthReqId: {
    endpoint: 'bc-authorize',
    answer: '200 JSON without a non-empty string `auth_req_id`',
    decision: 'final',
    action: '`invalid_bank_response`; not sent again',
    why: 'CIBA Core §7.3: a readable 200 means the bank took the request (the customer may have a prompt) but gave nothing to poll; sending again would only add prompts Bankpay could never poll',
  },
  ackExpiresIn: {
    endpoint: 'bc-authorize',
    answer: '200 with an `expires_in` that is not a positive number (missing, `"soon"`, 0, −1)',
    decision: 'default',
    action:
      'the `requested_expiry` we sent; a positive value (also `"60"`, as oauth4webapi reads it) is taken in whole seconds, at least 1, at most one day',
    why: 'CIBA Core §7.3 requires it, but the customer has the notification now: failing would strand them, and our request asked for that long',
  },
  ackInterval: {
    endpoint: 'bc-authorize',
    answer: '200 with an `interval` that is not a positive number (`"5"`, 0, −1, `null`)',
    decision: 'default',
    action:
      '5 s; a number in a string only when it asks for more (`"10"` → 10 s); a positive fraction is rounded up (0.2 → 1 s); at most one day',
    why: 'CIBA Core §7.3: without a value the client MUST use 5, and MUST wait at least `interval` seconds: an odd value never makes Bankpay poll faster than 5 s',
  },
  tokenError: {
    endpoint: 'token',
    answer: '400, 401 with a JSON `error` code, or a 401 challenge',
    decision: 'used',
    action:
      '`authorization_pending`: again after the interval; `slow_down`: the interval + 5 s from now on; `temporarily_unavailable`: again; `access_denied`: declined; `expired_token`: expired; any other code: failed with it',
    why: 'CIBA Core §11, RFC 6749 §5.2 (src/jobs/token-poll.policy.ts)',
  },
  tokenIncomplete: {
    endpoint: 'token',
    answer: '200 without a string `access_token` and `token_type`',
    decision: 'transient',
    action: '`bank_unavailable`; polled again at the interval',
    why: 'RFC 6749 §5.1 requires both; as a lost token answer: the next poll gets the tokens, or `invalid_grant` (failed, nothing paid); never a payment without validated tokens',
  },
  tokenType: {
    endpoint: 'token',
    answer: '200 with a `token_type` other than Bearer (in any case)',
    decision: 'final',
    action: '`invalid_bank_response`; the tokens are not used',
    why: 'RFC 6750, RFC 8705 §3: only a certificate-bound Bearer token can pay; the auth_req_id is spent, asking again gets `invalid_grant`',
  },
  idToken: {
    endpoint: 'token',
    answer: '200 without an `id_token`, or with one that fails validation',
    decision: 'final',
    action: '`invalid_id_token`; the tokens are not used',
    why: 'CIBA Core §10.1.1, OIDC Core §3.1.3.7: proof of who approved; never retried into acceptance',
  },
  tokenOptional: {
    endpoint: 'token',
    answer: '200 with an unreadable `expires_in`, `refresh_token` or `scope`',
    decision: 'default',
    action: 'the member is ignored (the access token then has no known lifetime)',
    why: 'RFC 6749 §5.1: optional members; the approval stands',
  },
  paymentResult: {
    endpoint: 'payments',
    answer:
      '201 (200 for a replay or a read) `{ paymentId, status, reason? }`, `status` `"accepted"` or `"rejected"`',
    decision: 'used',
    action: '`succeeded`, or failed `payment_rejected`; a `reason` that is not a string is ignored',
    why: 'DESIGN.md §4',
  },
  paymentUnreadable: {
    endpoint: 'payments',
    answer: 'any other 2xx: an HTML page, no `paymentId`, a `status` such as `"pending"`, a 202 or 204',
    decision: 'transient',
    action:
      '`bank_unavailable`; re-sent with the same Idempotency-Key, never `payment_rejected` (`payment_outcome_unknown` if the access token expires first)',
    why: 'DESIGN.md §4: the bank may have paid, and the same key returns its first answer, so asking again cannot pay twice',
  },
  paymentRefused: {
    endpoint: 'payments',
    answer:
      '4xx with a JSON `error` code or a Bearer challenge (401 `invalid_token`, 403 `payment_mismatch`, 404, 422)',
    decision: 'final',
    action: '`payment_rejected` (`payment_outcome_unknown` when an earlier attempt went unanswered)',
    why: "DESIGN.md §4, RFC 6750 §3.1: the bank's readable refusal",
  },
  paymentLater: {
    endpoint: 'payments',
    answer: '408, 409, 425',
    decision: 'transient',
    action: '`bank_unavailable`; re-sent with the same Idempotency-Key',
    why: 'RFC 9110 §15.5.9 (408), draft-ietf-httpapi-idempotency-key-header §2.7 (409: the same key in flight), RFC 8470 §5.2 (425)',
  },
  paymentUnreadableRefusal: {
    endpoint: 'payments',
    answer: "4xx without a readable error (a proxy's page, an empty body)",
    decision: 'transient',
    action: '`bank_unavailable`; re-sent with the same Idempotency-Key',
    why: 'DESIGN.md §4: an answer nobody can read is no refusal, and reporting `payment_rejected` could hide a payment',
  },
} as const satisfies Record<string, AnswerRule>;

export type AnswerRuleId = keyof typeof bankAnswerRules;

/** The table as README.md shows it (Markdown, columns padded like the rest of the README). */
export function renderBankAnswerTable(): string {
  const header = ['Endpoint', 'Answer', 'Decision', 'Then', 'Why'];
  const rows = Object.values(bankAnswerRules).map((r: AnswerRule) => [
    r.endpoint,
    r.answer,
    r.decision,
    r.action,
    r.why,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => [...(row[i] ?? '')].length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => c + ' '.repeat((widths[i] ?? 0) - [...c].length)).join(' | ')} |`;
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------------
// Reading an answer

/** One answer read in full. */
export interface BankAnswer {
  status: number;
  headers: Headers;
  /** The body parsed as a JSON object; undefined when it is not one (HTML, empty, cut, array). */
  json: Record<string, unknown> | undefined;
}

function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function isNonEmptyString(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/** RFC 9110 §10.2.3: the answer's Retry-After in seconds, when it has a valid one. */
export function retryAfterOf(headers: Headers, now: number): number | undefined {
  return parseRetryAfter(headers.get('retry-after'), now);
}

/** A BankError for an answer the table decides by `rule` (transient → bank_unavailable, retryable). */
export function answerError(
  rule: AnswerRuleId,
  what: string,
  message: string,
  answer: { status: number; headers: Headers } | undefined,
  now: number,
  code?: string,
): BankError {
  const { decision } = bankAnswerRules[rule];
  const transient = decision === 'transient';
  return new BankError(
    transient ? bankErrorCodes.bankUnavailable : (code ?? bankErrorCodes.invalidBankResponse),
    `${what}: ${message}`,
    {
      retryable: transient,
      // Only a request we make again has a use for the bank's hint.
      retryAfterSeconds: transient && answer ? retryAfterOf(answer.headers, now) : undefined,
      status: answer?.status,
    },
  );
}

/** The `notJson` row: an answer whose body is not a JSON object. */
export function unreadableBody(what: string, answer: BankAnswer, now: number): BankError {
  return answerError('notJson', what, `the answer (${answer.status}) is not a JSON object`, answer, now);
}

async function discard(response: Response): Promise<void> {
  await response.body?.cancel().catch(() => undefined);
}

/**
 * Reads an answer in full, after the rows every endpoint shares: 5xx/429 (`later`) and a status
 * the endpoint does not give (`otherStatus`) throw without reading the body; a body that cannot
 * be read to its end (deadline, reset) is no answer (`noAnswer`).
 */
export async function readBankAnswer(
  response: Response,
  what: string,
  now: number,
  readable: (status: number) => boolean,
): Promise<BankAnswer> {
  let body = '';
  // A status the table decides without the body: not read, only discarded.
  if (isUnavailableStatus(response.status) || !readable(response.status)) await discard(response);
  else {
    try {
      body = await response.text();
    } catch (error) {
      throw transportError(error, what);
    }
  }
  return bankAnswerOf({ status: response.status, headers: response.headers, body }, what, now, readable);
}

/**
 * The same rows for an answer already read whole (one kept before a crash, say): 5xx/429
 * (`later`) and a status the endpoint does not give (`otherStatus`) throw; the body is parsed once.
 */
export function bankAnswerOf(
  read: { status: number; headers: Headers; body: string },
  what: string,
  now: number,
  readable: (status: number) => boolean,
): BankAnswer {
  if (isUnavailableStatus(read.status)) {
    throw answerError('later', what, `the bank answered ${read.status}`, read, now);
  }
  if (!readable(read.status)) {
    throw answerError('otherStatus', what, `unexpected status ${read.status}`, read, now);
  }
  let json: Record<string, unknown> | undefined;
  try {
    const parsed: unknown = JSON.parse(read.body);
    json = isJsonObject(parsed) ? parsed : undefined;
  } catch {
    json = undefined;
  }
  return { status: read.status, headers: read.headers, json };
}

/**
 * The answer as read, for oauth4webapi's process functions (which insist on the Content-Type):
 * labelled application/json when its body is a JSON object (`json`, when given, replaces it);
 * else an empty body, so that only the headers (a WWW-Authenticate challenge) can still speak.
 */
export function replayAnswer(
  answer: BankAnswer,
  json: Record<string, unknown> | undefined = answer.json,
): Response {
  const headers = new Headers(answer.headers);
  for (const name of ['content-length', 'content-encoding', 'transfer-encoding']) headers.delete(name);
  headers.set('content-type', json ? 'application/json' : 'text/plain');
  return new Response(json ? JSON.stringify(json) : '', { status: answer.status, headers });
}

// ---------------------------------------------------------------------------------------------
// Hints in a readable answer (pure)

/** A JSON number, or a decimal number written as a string (`"60"`); NaN for anything else. */
function numberIn(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string' && /^\s*\d+(?:\.\d+)?\s*$/.test(value)) return Number(value);
  return Number.NaN;
}

/**
 * CIBA Core §7.3 `interval` (row ackInterval), in whole seconds, or undefined so that the CIBA
 * default (5 s) applies. A positive number is rounded up (waiting longer than asked is allowed,
 * shorter never: 0.2 → 1 s). Anything else is odd, and an odd value never makes Bankpay poll
 * faster than the default: a number in a string counts only when it asks for more (`"10"` → 10
 * s, `"1"` → 5 s); 0, a negative number, null or text → the default. At most one day.
 */
export function ackInterval(value: unknown): number | undefined {
  const seconds = numberIn(value);
  if (!Number.isFinite(seconds) || seconds <= 0) return undefined;
  const floor = typeof value === 'number' ? 1 : DEFAULT_POLL_INTERVAL_S;
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(floor, Math.ceil(seconds)));
}

/**
 * CIBA Core §7.3 `expires_in` (row ackExpiresIn), in whole seconds (at least 1, at most one
 * day); a number in a string is read, as oauth4webapi reads it; the `requested_expiry` we sent
 * for anything else (missing, 0, negative, text).
 */
export function ackExpiresIn(value: unknown, requestedExpiry: number): number {
  const seconds = numberIn(value);
  if (!Number.isFinite(seconds) || seconds <= 0) return requestedExpiry;
  return Math.min(MAX_RETRY_AFTER_SECONDS, Math.max(1, Math.floor(seconds)));
}

/**
 * RFC 6749 §5.1 (row tokenOptional): the token response without the optional members it could
 * not be read with: `expires_in` that is not a non-negative number (a number in a string is
 * read, as oauth4webapi reads it), `refresh_token` or `scope` that is not a string.
 */
export function withoutUnreadableOptionals(json: Record<string, unknown>): Record<string, unknown> {
  const out = { ...json };
  if (out.expires_in !== undefined) {
    const seconds = numberIn(out.expires_in);
    if (!Number.isFinite(seconds) || seconds < 0) delete out.expires_in;
  }
  if (out.refresh_token !== undefined && !isNonEmptyString(out.refresh_token)) delete out.refresh_token;
  if (out.scope !== undefined && typeof out.scope !== 'string') delete out.scope;
  return out;
}
