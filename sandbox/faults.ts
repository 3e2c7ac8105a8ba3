/**
 * Scripted misbehaviour, per customer (login hint), so one test's bank outage never leaks into
 * another's checkout. oidc-provider never sends `interval` or `slow_down` and never fails on
 * purpose: the sandbox adds all of this in front of it (see op-front.ts and payments.ts).
 *
 * Fault script (JSON body of PUT /control/customers/{login}/faults; every member optional):
 *   {
 *     "interval": 2,                                   // seconds, in the bc-authorize ack (wins over
 *                                                      // the bank's defaultInterval)
 *     "slowDown": 3,                                   // next 3 token polls answer slow_down
 *     "unavailable": { "token": { "times": 2, "retryAfter": 1 } },   // 503 + Retry-After
 *                                                      // ("status": 500 for another 5xx or 429)
 *     "delayMs": { "bc-authorize": 300 },              // answer late (every request while set)
 *     "holdMs": { "payments": 3000 },                  // do the work, then hold the answer: the
 *                                                      // window where a client crash loses it
 *     "drop": { "payments": { "times": 1, "afterCommit": true } },  // destroy the socket, no answer
 *     "paymentError": { "times": 1 },                  // payment API answers 500
 *     "rejectPayment": { "reason": "insufficient_funds", "times": 1 }, // 201 status 'rejected'
 *     "idToken": {                                     // rewrite the ID Token of token responses
 *       "claims": { "iss": "https://evil.test", "azp": null },  // set claims; null deletes one
 *       "shift": { "iat": -3600 },                     // seconds added to a numeric claim as issued
 *       "sign": "op",                                  // "op" | "foreign-key" | "none" | "hs256"
 *       "alg": "RS256",                                // with "op"/"foreign-key": RS256 | PS256 | ES256
 *       "times": 1                                     // omitted: every token response while set
 *     },
 *     "ping": { "drop": 1, "twice": 1, "delayMs": 2000 },   // ping mode (CIBA Core §10.2): the next
 *                                                      // ping not sent / sent twice; every ping
 *                                                      // sent that late while set
 *     "ack": { "members": { "interval": "5", "auth_req_id": null }, "times": 1 },
 *                                                      // rewrite the bc-authorize acknowledgement:
 *                                                      // set members, null deletes one (omitted
 *                                                      // times: every acknowledgement while set)
 *     "answer": { "token": {                           // answer this instead of the bank (a proxy's
 *       "status": 200,                                 // page, a garbled answer); every member
 *       "contentType": "application/json",             // optional: these are the defaults, and
 *       "body": "<!DOCTYPE html>…",                    // the body an HTML error page (a JSON value
 *       "retryAfter": "3",                             // other than a string is sent as JSON)
 *       "afterCommit": false,                          // true: the bank does the work first (the
 *       "times": 1                                     // request is created, tokens issued, the
 *     } }                                              // payment made), then answers this
 *   }
 * Endpoints: "bc-authorize", "token", "payments". Counters (`times`) go down as faults fire;
 * `rejectPayment`, `idToken` and `ack` without `times` apply to every payment / token response /
 * acknowledgement while set.
 *
 * Discovery and the JWKS belong to no customer: their faults are the bank's own (PUT
 * /control/faults, cleared by POST /control/reset), `{ "answer": { "discovery": {…}, "jwks": {…} } }`
 * with the same members as above except `afterCommit`. They meet every client of the bank, so a
 * test that scripts them runs its own sandbox bank.
 *
 * `idToken` (see id-token.ts) only touches the `id_token` member of a successful CIBA token
 * response; the access token stays a valid certificate-bound token, so a client that ignored the
 * ID Token could still pay. Signing: "op" signs with the OP's own key for `alg` (default: the
 * client's registered PS256), so e.g. RS256 gives a genuine OP signature with an unexpected alg;
 * "foreign-key" signs with a key outside the JWKS under the OP key's `kid`; "none" is an unsigned
 * JWT (`alg: none`, empty signature); "hs256" is HMAC-SHA256 keyed with the OP RSA public key's
 * PEM (the RS/HS key-confusion attack), under that key's `kid`. Order: the OP's claims, plus
 * `at_hash` and the auth_req_id claim, then `shift`, then `claims` (so every claim, these two
 * included, can be overridden or deleted), then the signature.
 */

export const faultEndpoints = ['bc-authorize', 'token', 'payments'] as const;
export type FaultEndpoint = (typeof faultEndpoints)[number];
/** The bank's public documents, whose faults are bank-wide (no customer is known). */
export const bankFaultEndpoints = ['discovery', 'jwks'] as const;
export type BankFaultEndpoint = (typeof bankFaultEndpoints)[number];

/** A raw answer given instead of (or, afterCommit, after) the bank's own. */
export interface ScriptedAnswer {
  times: number;
  status: number;
  contentType: string;
  body: string;
  retryAfter?: string;
  afterCommit: boolean;
}

/** What a proxy in front of a bank answers when the bank behind it is gone. */
export const PROXY_ERROR_PAGE =
  '<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title></head><body><h1>Bad Gateway</h1><p>The upstream server sent an invalid response.</p></body></html>\n';

export interface BankFaultScript {
  answer?: Partial<Record<BankFaultEndpoint, ScriptedAnswer>>;
}

export interface FaultScript {
  interval?: number;
  slowDown?: number;
  unavailable?: Partial<Record<FaultEndpoint, { times: number; retryAfter: number; status: number }>>;
  delayMs?: Partial<Record<FaultEndpoint, number>>;
  holdMs?: Partial<Record<FaultEndpoint, number>>;
  drop?: Partial<Record<FaultEndpoint, { times: number; afterCommit: boolean }>>;
  paymentError?: { times: number };
  rejectPayment?: { reason: string; times?: number };
  idToken?: IdTokenFault;
  ack?: { members: Record<string, unknown>; times?: number };
  answer?: Partial<Record<FaultEndpoint, ScriptedAnswer>>;
  ping?: { drop: number; twice: number; delayMs: number };
}

export const idTokenSigners = ['op', 'foreign-key', 'none', 'hs256'] as const;
export type IdTokenSigner = (typeof idTokenSigners)[number];
export const idTokenAlgs = ['RS256', 'PS256', 'ES256'] as const;
export type IdTokenAlg = (typeof idTokenAlgs)[number];

export interface IdTokenFault {
  /** Claims to set; `null` deletes the claim. */
  claims?: Record<string, unknown>;
  /** Seconds added to numeric claims (iat, exp, auth_time, ...) as the OP issued them. */
  shift?: Record<string, number>;
  sign: IdTokenSigner;
  /** For "op" and "foreign-key"; default: the alg the OP used (the client's registered one). */
  alg?: IdTokenAlg;
  times?: number;
}

export class FaultScriptError extends Error {}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function onlyKeys(value: Record<string, unknown>, allowed: readonly string[], label: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) throw new FaultScriptError(`unknown member ${label}${key}`);
  }
}

function count(
  value: unknown,
  label: string,
  { min = 0, fallback }: { min?: number; fallback?: number } = {},
): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > 86_400_000) {
    throw new FaultScriptError(`${label} must be an integer ≥ ${min}`);
  }
  return value;
}

function perEndpoint<T, E extends string = FaultEndpoint>(
  value: unknown,
  label: string,
  parse: (v: unknown, label: string) => T,
  endpoints: readonly E[] = faultEndpoints as unknown as readonly E[],
): Partial<Record<E, T>> | undefined {
  if (value === undefined) return undefined;
  if (!isRecord(value)) throw new FaultScriptError(`${label} must be an object keyed by endpoint`);
  onlyKeys(value, endpoints, `${label}.`);
  const out: Partial<Record<E, T>> = {};
  for (const endpoint of endpoints) {
    if (value[endpoint] !== undefined) out[endpoint] = parse(value[endpoint], `${label}.${endpoint}`);
  }
  return out;
}

function parseScriptedAnswer(value: unknown, label: string, allowAfterCommit: boolean): ScriptedAnswer {
  if (!isRecord(value)) {
    throw new FaultScriptError(`${label} must be { status?, contentType?, body?, retryAfter?, times? }`);
  }
  onlyKeys(
    value,
    ['times', 'status', 'contentType', 'body', 'retryAfter', ...(allowAfterCommit ? ['afterCommit'] : [])],
    `${label}.`,
  );
  const status = count(value.status, `${label}.status`, { min: 200, fallback: 200 });
  if (status > 599) throw new FaultScriptError(`${label}.status must be 200-599`);
  const contentType = value.contentType ?? 'application/json';
  if (typeof contentType !== 'string' || contentType.length === 0 || contentType.length > 200) {
    throw new FaultScriptError(`${label}.contentType must be a string`);
  }
  const body =
    value.body === undefined
      ? PROXY_ERROR_PAGE
      : typeof value.body === 'string'
        ? value.body
        : JSON.stringify(value.body);
  if (body.length > 65_536) throw new FaultScriptError(`${label}.body is too long`);
  const retryAfter = value.retryAfter;
  if (retryAfter !== undefined && typeof retryAfter !== 'string' && typeof retryAfter !== 'number') {
    throw new FaultScriptError(`${label}.retryAfter must be a string or a number (sent as is)`);
  }
  if (value.afterCommit !== undefined && typeof value.afterCommit !== 'boolean') {
    throw new FaultScriptError(`${label}.afterCommit must be a boolean`);
  }
  return {
    times: count(value.times, `${label}.times`, { fallback: 1 }),
    status,
    contentType,
    body,
    ...(retryAfter === undefined ? {} : { retryAfter: String(retryAfter) }),
    afterCommit: value.afterCommit === true,
  };
}

/** Validates the bank-wide fault script (PUT /control/faults). */
export function parseBankFaultScript(body: unknown): BankFaultScript {
  if (body === undefined) return {};
  if (!isRecord(body)) throw new FaultScriptError('fault script must be a JSON object');
  onlyKeys(body, ['answer'], '');
  const answer = perEndpoint(
    body.answer,
    'answer',
    (v, label) => parseScriptedAnswer(v, label, false),
    bankFaultEndpoints,
  );
  return answer ? { answer } : {};
}

/** Validates a fault script body; unknown members are refused so typos do not pass silently. */
export function parseFaultScript(body: unknown): FaultScript {
  if (body === undefined) return {};
  if (!isRecord(body)) throw new FaultScriptError('fault script must be a JSON object');
  onlyKeys(
    body,
    [
      'interval',
      'slowDown',
      'unavailable',
      'delayMs',
      'holdMs',
      'drop',
      'paymentError',
      'rejectPayment',
      'idToken',
      'ack',
      'answer',
      'ping',
    ],
    '',
  );
  const script: FaultScript = {};
  if (body.interval !== undefined) script.interval = count(body.interval, 'interval', { min: 1 });
  if (body.slowDown !== undefined) script.slowDown = count(body.slowDown, 'slowDown');
  const unavailable = perEndpoint(body.unavailable, 'unavailable', (v, label) => {
    if (!isRecord(v)) throw new FaultScriptError(`${label} must be { times, retryAfter? }`);
    onlyKeys(v, ['times', 'retryAfter', 'status'], `${label}.`);
    const status = count(v.status, `${label}.status`, { min: 429, fallback: 503 });
    if (status !== 429 && (status < 500 || status > 599)) {
      throw new FaultScriptError(`${label}.status must be 429 or 500-599`);
    }
    return {
      times: count(v.times, `${label}.times`, { fallback: 1 }),
      retryAfter: count(v.retryAfter, `${label}.retryAfter`, { fallback: 1 }),
      status,
    };
  });
  if (unavailable) script.unavailable = unavailable;
  const delayMs = perEndpoint(body.delayMs, 'delayMs', (v, label) => count(v, label));
  if (delayMs) script.delayMs = delayMs;
  const holdMs = perEndpoint(body.holdMs, 'holdMs', (v, label) => count(v, label));
  if (holdMs) script.holdMs = holdMs;
  const drop = perEndpoint(body.drop, 'drop', (v, label) => {
    if (!isRecord(v)) throw new FaultScriptError(`${label} must be { times, afterCommit? }`);
    onlyKeys(v, ['times', 'afterCommit'], `${label}.`);
    if (v.afterCommit !== undefined && typeof v.afterCommit !== 'boolean') {
      throw new FaultScriptError(`${label}.afterCommit must be a boolean`);
    }
    return { times: count(v.times, `${label}.times`, { fallback: 1 }), afterCommit: v.afterCommit === true };
  });
  if (drop) script.drop = drop;
  if (body.ping !== undefined) {
    if (!isRecord(body.ping)) throw new FaultScriptError('ping must be { drop?, twice?, delayMs? }');
    onlyKeys(body.ping, ['drop', 'twice', 'delayMs'], 'ping.');
    script.ping = {
      drop: count(body.ping.drop, 'ping.drop', { fallback: 0 }),
      twice: count(body.ping.twice, 'ping.twice', { fallback: 0 }),
      delayMs: count(body.ping.delayMs, 'ping.delayMs', { fallback: 0 }),
    };
  }
  if (body.paymentError !== undefined) {
    if (!isRecord(body.paymentError)) throw new FaultScriptError('paymentError must be { times }');
    onlyKeys(body.paymentError, ['times'], 'paymentError.');
    script.paymentError = { times: count(body.paymentError.times, 'paymentError.times', { fallback: 1 }) };
  }
  if (body.rejectPayment !== undefined) {
    const r = body.rejectPayment;
    if (!isRecord(r) || typeof r.reason !== 'string' || r.reason.length === 0) {
      throw new FaultScriptError('rejectPayment must be { reason, times? }');
    }
    onlyKeys(r, ['reason', 'times'], 'rejectPayment.');
    script.rejectPayment = { reason: r.reason };
    if (r.times !== undefined) script.rejectPayment.times = count(r.times, 'rejectPayment.times', { min: 1 });
  }
  if (body.idToken !== undefined) script.idToken = parseIdTokenFault(body.idToken);
  if (body.ack !== undefined) {
    const a = body.ack;
    if (!isRecord(a) || !isRecord(a.members)) throw new FaultScriptError('ack must be { members, times? }');
    onlyKeys(a, ['members', 'times'], 'ack.');
    script.ack = { members: a.members };
    if (a.times !== undefined) script.ack.times = count(a.times, 'ack.times', { min: 1 });
  }
  const answer = perEndpoint(body.answer, 'answer', (v, label) => parseScriptedAnswer(v, label, true));
  if (answer) script.answer = answer;
  return script;
}

// Claim values are not checked: a wrong type (`aud: 42`) is as much a fault to script as a wrong value.
function parseIdTokenFault(value: unknown): IdTokenFault {
  if (!isRecord(value))
    throw new FaultScriptError('idToken must be { claims?, shift?, sign?, alg?, times? }');
  onlyKeys(value, ['claims', 'shift', 'sign', 'alg', 'times'], 'idToken.');
  const fault: IdTokenFault = { sign: 'op' };
  if (value.sign !== undefined) {
    if (!idTokenSigners.includes(value.sign as IdTokenSigner)) {
      throw new FaultScriptError(`idToken.sign must be one of ${idTokenSigners.join(', ')}`);
    }
    fault.sign = value.sign as IdTokenSigner;
  }
  if (value.alg !== undefined) {
    if (!idTokenAlgs.includes(value.alg as IdTokenAlg)) {
      throw new FaultScriptError(`idToken.alg must be one of ${idTokenAlgs.join(', ')}`);
    }
    if (fault.sign !== 'op' && fault.sign !== 'foreign-key') {
      throw new FaultScriptError('idToken.alg only applies to sign "op" or "foreign-key"');
    }
    fault.alg = value.alg as IdTokenAlg;
  }
  if (value.claims !== undefined) {
    if (!isRecord(value.claims)) throw new FaultScriptError('idToken.claims must be an object');
    fault.claims = value.claims;
  }
  if (value.shift !== undefined) {
    if (!isRecord(value.shift)) throw new FaultScriptError('idToken.shift must be an object');
    const shift: Record<string, number> = {};
    for (const [claim, seconds] of Object.entries(value.shift)) {
      if (
        typeof seconds !== 'number' ||
        !Number.isInteger(seconds) ||
        Math.abs(seconds) > 10 * 365 * 86_400
      ) {
        throw new FaultScriptError(`idToken.shift.${claim} must be an integer number of seconds`);
      }
      shift[claim] = seconds;
    }
    fault.shift = shift;
  }
  if (value.times !== undefined) fault.times = count(value.times, 'idToken.times', { min: 1 });
  return fault;
}

/** The per-customer fault scripts; `take*` methods consume one occurrence of a counted fault. */
export class FaultBook {
  private readonly scripts = new Map<string, FaultScript>();
  private bankScript: BankFaultScript = {};

  setBank(script: BankFaultScript): void {
    this.bankScript = structuredClone(script);
  }

  getBank(): BankFaultScript {
    return structuredClone(this.bankScript);
  }

  /** The scripted answer for this request of the bank's public documents, if one is left. */
  takeBankAnswer(endpoint: BankFaultEndpoint): ScriptedAnswer | undefined {
    return takeCounted(this.bankScript.answer?.[endpoint]);
  }

  /** The scripted answer for this request, before the bank works on it or after (afterCommit). */
  takeAnswer(
    login: string | undefined,
    endpoint: FaultEndpoint,
    afterCommit: boolean,
  ): ScriptedAnswer | undefined {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.answer?.[endpoint];
    return fault?.afterCommit === afterCommit ? takeCounted(fault) : undefined;
  }

  /** Members to set (null: delete) in this bc-authorize acknowledgement, if scripted. */
  takeAckMembers(login: string | undefined): Record<string, unknown> | undefined {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.ack;
    if (!fault) return undefined;
    if (fault.times !== undefined) {
      if (fault.times <= 0) return undefined;
      fault.times--;
    }
    return structuredClone(fault.members);
  }

  set(login: string, script: FaultScript): void {
    this.scripts.set(login, structuredClone(script));
  }

  get(login: string): FaultScript {
    return structuredClone(this.scripts.get(login) ?? {});
  }

  /** Without a login: every customer's script and the bank's own. */
  clear(login?: string): void {
    if (login === undefined) {
      this.scripts.clear();
      this.bankScript = {};
    } else this.scripts.delete(login);
  }

  interval(login: string | undefined): number | undefined {
    return login === undefined ? undefined : this.scripts.get(login)?.interval;
  }

  delayMs(login: string | undefined, endpoint: FaultEndpoint): number {
    return login === undefined ? 0 : (this.scripts.get(login)?.delayMs?.[endpoint] ?? 0);
  }

  /** Milliseconds to hold an answer after the work is done (the request was processed). */
  holdMs(login: string | undefined, endpoint: FaultEndpoint): number {
    return login === undefined ? 0 : (this.scripts.get(login)?.holdMs?.[endpoint] ?? 0);
  }

  /** How the next ping of this customer's request goes: dropped, sent twice, or sent after delayMs. */
  takePing(login: string | undefined): { drop: boolean; twice: boolean; delayMs: number } {
    const ping = login === undefined ? undefined : this.scripts.get(login)?.ping;
    if (!ping) return { drop: false, twice: false, delayMs: 0 };
    const drop = ping.drop > 0;
    if (drop) ping.drop--;
    const twice = !drop && ping.twice > 0;
    if (twice) ping.twice--;
    return { drop, twice, delayMs: ping.delayMs };
  }

  takeSlowDown(login: string | undefined): boolean {
    const script = login === undefined ? undefined : this.scripts.get(login);
    if (!script?.slowDown) return false;
    script.slowDown--;
    return true;
  }

  /** The status (503 unless scripted) and Retry-After seconds when this request must fail so. */
  takeUnavailable(
    login: string | undefined,
    endpoint: FaultEndpoint,
  ): { status: number; retryAfter: number } | undefined {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.unavailable?.[endpoint];
    if (!fault || fault.times <= 0) return undefined;
    fault.times--;
    return { status: fault.status, retryAfter: fault.retryAfter };
  }

  /** Whether this request's connection must be dropped at the given moment (before or after commit). */
  takeDrop(login: string | undefined, endpoint: FaultEndpoint, afterCommit: boolean): boolean {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.drop?.[endpoint];
    if (!fault || fault.times <= 0 || fault.afterCommit !== afterCommit) return false;
    fault.times--;
    return true;
  }

  takePaymentError(login: string | undefined): boolean {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.paymentError;
    if (!fault || fault.times <= 0) return false;
    fault.times--;
    return true;
  }

  /** The ID Token rewrite for this token response, if the customer's script has one left. */
  takeIdTokenFault(login: string | undefined): Omit<IdTokenFault, 'times'> | undefined {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.idToken;
    if (!fault) return undefined;
    if (fault.times !== undefined) {
      if (fault.times <= 0) return undefined;
      fault.times--;
    }
    const { times: _times, ...rest } = structuredClone(fault);
    return rest;
  }

  /** The rejection reason for this payment, if the customer's script rejects it. */
  takePaymentRejection(login: string | undefined): string | undefined {
    const fault = login === undefined ? undefined : this.scripts.get(login)?.rejectPayment;
    if (!fault) return undefined;
    if (fault.times === undefined) return fault.reason;
    if (fault.times <= 0) return undefined;
    fault.times--;
    return fault.reason;
  }
}

function takeCounted(fault: ScriptedAnswer | undefined): ScriptedAnswer | undefined {
  if (!fault || fault.times <= 0) return undefined;
  fault.times--;
  return { ...fault };
}
