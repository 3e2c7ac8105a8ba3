/**
 * The development terminal's form of Bankpay's JSON log lines (pino): one short line each, with
 * the fields a developer follows a checkout by. Production keeps the JSON lines unchanged.
 */

/**
 * Fields shown after the message, in this order, when a line has them and the message does not
 * say them already (the status counts as said in `checkout chk_… failed: …`, and only a line
 * about a checkout shows one).
 */
const SHOWN_FIELDS = [
  ['checkoutId', 'checkout'],
  ['status', 'status'],
  ['code', 'code'],
  ['retryInMs', 'retry_in_ms'],
  ['job', 'job'],
  ['clientRequestId', 'client_request_id'],
] as const;

interface LogEntry {
  level?: number;
  msg?: string;
  err?: string | { message?: string };
  [field: string]: unknown;
}

/**
 * `msg key=value …` for one pino JSON line: `WARN ` / `ERROR ` before warnings and errors, the
 * checkout id, status, failure code, retry delay and job name after the message (each only when
 * present and not already said by the message), and the error's message last. A line that is not a
 * JSON object is returned as it is.
 */
export function devLogLine(line: string): string {
  let entry: LogEntry;
  try {
    const parsed: unknown = JSON.parse(line);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return line;
    entry = parsed as LogEntry;
  } catch {
    return line;
  }
  const level = (entry.level ?? 30) >= 50 ? 'ERROR ' : (entry.level ?? 30) >= 40 ? 'WARN ' : '';
  const msg = typeof entry.msg === 'string' ? entry.msg : '';
  const fields: string[] = [];
  for (const [key, label] of SHOWN_FIELDS) {
    const value = entry[key];
    if (typeof value !== 'string' && typeof value !== 'number') continue;
    // A status is a checkout's (worker lines); an access line's HTTP status is in its message.
    const shown =
      key === 'status'
        ? typeof entry.checkoutId === 'string' && !msg.includes(`${entry.checkoutId} ${value}`)
        : !msg.includes(String(value));
    if (shown) fields.push(`${label}=${value}`);
  }
  const err = typeof entry.err === 'string' ? entry.err : entry.err?.message;
  return `${level}${msg}${fields.length ? ` ${fields.join(' ')}` : ''}${err ? `: ${err}` : ''}`;
}
