/**
 * The application/json body parser of every route: a body must mean one thing.
 *
 * RFC 8259 §4 leaves the meaning of an object with repeated member names to each parser, and
 * parsers disagree: JSON.parse keeps the last value, others the first. A proxy or WAF in front of
 * the API that reads `{"amount":100,"amount":200}` would see 100 while we stored 200. I-JSON
 * (RFC 7493 §2.3) therefore forbids duplicate names, and so do we, at any depth. The check reads
 * the text, not the parsed value (where the duplicate is already gone): after JSON.parse, one more
 * pass with an explicit stack, linear in the body, with no recursion for hostile nesting to exhaust.
 * Written here because none of the JSON libraries considered fits: lossless-json lets a name repeat
 * with the same value; json-bigint's strict mode recurses per nesting level, as do the AST parsers
 * (jsonc-parser, momoa), which leave the duplicate check to their caller anyway.
 *
 * It also keeps what Fastify's own parser (secure-json-parse) refused, members that would reach an
 * object's prototype when copied (`__proto__`, `constructor.prototype`), and says so in `detail`.
 */
import { errorCodes, type FastifyInstance } from 'fastify';
import { ProblemError } from './problem.ts';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const BYTE_ORDER_MARK = 0xfeff;

/** How much of a name, and how many levels of a pointer, a problem's `detail` repeats: never all. */
const NAME_SHOWN = 64;
const TOKEN_SHOWN = 32;
const LEVELS_SHOWN = 8;

/** An object or array that is open at the current position of the scan. */
interface Container {
  /** The member names seen so far; undefined for an array. */
  names: Set<string> | undefined;
  /** Its reference token within its parent (member name or array index); '' for the root. */
  token: string;
  /** Objects: whether the next string is a member name (after `{` or `,`), not a value. */
  expectName: boolean;
  /** Objects: the name of the member whose value is being read. */
  member: string;
  /** Arrays: the index of the element being read. */
  index: number;
  /** Whether this is the object value of a member named `constructor`. */
  inConstructor: boolean;
}

/**
 * Client text shown back as ASCII: JSON escapes for quotes, backslashes, controls, bidi marks, lone
 * surrogates and everything else beyond printable ASCII, cut after `max` UTF-16 units with "…".
 */
function shown(text: string, max: number): string {
  let head = text;
  if (text.length > max) {
    // Never end on the first half of a surrogate pair.
    const code = text.charCodeAt(max - 1);
    head = text.slice(0, code >= 0xd800 && code <= 0xdbff ? max - 1 : max);
  }
  const escaped = head.replace(/[^\x20-\x21\x23-\x5b\x5d-\x7e]/g, (c) =>
    c === '"' ? '\\"' : c === '\\' ? '\\\\' : `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  return head === text ? escaped : `${escaped}…`;
}

/** Where the innermost open object is: its RFC 6901 pointer, of which the last levels say most. */
function whereOf(stack: readonly Container[]): string {
  if (stack.length <= 1) return 'the top-level object';
  const tokens = stack
    .slice(Math.max(1, stack.length - LEVELS_SHOWN))
    .map((c) => shown(c.token.replace(/~/g, '~0').replace(/\//g, '~1'), TOKEN_SHOWN));
  return `the object at /${stack.length - 1 > LEVELS_SHOWN ? '…/' : ''}${tokens.join('/')}`;
}

/** Why the member `name` of the innermost open object makes the body unacceptable, if it does. */
function refusal(stack: readonly Container[], object: Container, name: string): ProblemError | undefined {
  if (object.names?.has(name)) {
    return new ProblemError(
      'malformed_json',
      `The member name "${shown(name, NAME_SHOWN)}" appears more than once in ${whereOf(stack)}; ` +
        'a body must not repeat a member name (RFC 7493 §2.3)',
    );
  }
  if (name === '__proto__') {
    return new ProblemError(
      'malformed_json',
      `A member named "__proto__" is not accepted (in ${whereOf(stack)})`,
    );
  }
  if (name === 'prototype' && object.inConstructor) {
    return new ProblemError(
      'malformed_json',
      `A member named "prototype" inside a member named "constructor" is not accepted (in ${whereOf(stack)})`,
    );
  }
  return undefined;
}

/**
 * Walks JSON text that JSON.parse already accepted (so every string is closed and every bracket
 * matched) and answers the first member that makes it ambiguous or unsafe. Member names are compared
 * after unescaping, as RFC 8259 §8.3 says: `"a"` and `"\u0061"` are the same name.
 */
function findRefusedMember(text: string): ProblemError | undefined {
  const stack: Container[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let end = i + 1;
      let escaped = false;
      // JSON.parse accepted the text, so the string is closed; the bound only guards misuse.
      for (let d = text.charCodeAt(end); d !== QUOTE && end < text.length; d = text.charCodeAt(++end)) {
        if (d === BACKSLASH) {
          escaped = true;
          end++;
        }
      }
      const top = stack.at(-1);
      if (top?.names && top.expectName) {
        const name = escaped ? (JSON.parse(text.slice(i, end + 1)) as string) : text.slice(i + 1, end);
        const refused = refusal(stack, top, name);
        if (refused) return refused;
        top.names.add(name);
        top.member = name;
        top.expectName = false;
      }
      i = end;
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
      const parent = stack.at(-1);
      const inObject = parent?.names !== undefined;
      stack.push({
        names: c === OPEN_BRACE ? new Set() : undefined,
        token: parent === undefined ? '' : inObject ? parent.member : String(parent.index),
        expectName: true,
        member: '',
        index: 0,
        inConstructor: c === OPEN_BRACE && inObject && parent?.member === 'constructor',
      });
    } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      stack.pop();
    } else if (c === COMMA) {
      const top = stack.at(-1);
      if (top?.names) top.expectName = true;
      else if (top) top.index++;
    }
  }
  return undefined;
}

/**
 * Parses an application/json body: Fastify's errors (and so the problem codes) for an empty body
 * and for text that is not JSON, malformed_json naming the member for a duplicate or a prototype
 * key. A leading byte order mark is ignored, as Fastify's parser did.
 */
export function parseJsonBody(body: string): unknown {
  if (body.length === 0) throw new errorCodes.FST_ERR_CTP_EMPTY_JSON_BODY();
  const text = body.charCodeAt(0) === BYTE_ORDER_MARK ? body.slice(1) : body;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new errorCodes.FST_ERR_CTP_INVALID_JSON_BODY();
  }
  // Only an object can repeat a name or carry a prototype key.
  if (value !== null && typeof value === 'object') {
    const refused = findRefusedMember(text);
    if (refused) throw refused;
  }
  return value;
}

/**
 * Replaces Fastify's application/json parser for the whole app; register it before the routes,
 * which inherit it, so that every route taking JSON, today's and later ones, gets the same rules.
 * The body limit stays the app's (`bodyLimit`), or a route's own.
 */
export function registerJsonBodyParser(app: FastifyInstance): void {
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(error as Error, undefined);
    }
  });
}
