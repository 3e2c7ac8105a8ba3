/**
 * parseJsonBody, the application/json parser of every route: JSON.parse's value, except for a body
 * that repeats a member name at any depth (RFC 7493 §2.3) or carries a prototype key, which is
 * refused as malformed_json naming the member. The routes' side is in test/e2e (checkout-api, fuzz).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJsonBody } from '../../src/http/json-body.ts';
import { ProblemError } from '../../src/http/problem.ts';

function refusal(text: string): ProblemError {
  try {
    parseJsonBody(text);
  } catch (error) {
    if (error instanceof ProblemError) return error;
    throw error;
  }
  throw new Error(`accepted: ${text.slice(0, 200)}`);
}

describe('parseJsonBody', () => {
  it.each([
    ['{"a":1,"a":2}', '"a" appears more than once in the top-level object'],
    ['{"a":1,"a":1}', '"a" appears more than once in the top-level object'],
    ['{"a":1,"\\u0061":1}', '"a" appears more than once in the top-level object'],
    ['{"a":{"b":[1,{"c":1,"d":{},"c":2}]}}', '"c" appears more than once in the object at /a/b/1'],
    ['[{"x":1},{"x":1},{"y":1,"y":1}]', '"y" appears more than once in the object at /2'],
    ['{"a/b~c":{"k":1,"k":2}}', '"k" appears more than once in the object at /a~1b~0c'],
    ['{"":{"":1,"":2}}', '"" appears more than once in the object at /'],
    ['{"__proto__":{}}', 'A member named "__proto__" is not accepted (in the top-level object)'],
    ['{"a":[{"__pro\\u0074o__":1}]}', 'A member named "__proto__" is not accepted (in the object at /a/0)'],
    ['{"constructor":{"prototype":1}}', 'A member named "prototype" inside a member named "constructor"'],
  ])('%s → malformed_json: %s', (text, detail) => {
    const problem = refusal(text);
    expect(problem.code).toBe('malformed_json');
    expect(problem.status).toBe(400);
    expect(problem.message).toContain(detail);
  });

  it.each([
    ['the same name in sibling objects', '{"a":{"x":1},"b":{"x":1},"x":1}'],
    ['names and braces inside string values', '{"a":"\\"a\\":1,{\\"a\\":2}","b":"[{\\"a\\""}'],
    ['case differs', '{"a":1,"A":1}'],
    ['"constructor" without a "prototype" inside', '{"constructor":{"x":1},"prototype":1}'],
    ['"prototype" under an array under "constructor"', '{"constructor":[{"prototype":1}]}'],
    ['a leading byte order mark', '\uFEFF{"a":1}'],
  ])('accepts %s', (_label, text) => {
    expect(parseJsonBody(text)).toEqual(JSON.parse(text.replace(/^\uFEFF/, '')));
  });

  it('keeps Fastify’s errors for an empty body and for text that is not JSON', () => {
    expect(() => parseJsonBody('')).toThrow(expect.objectContaining({ code: 'FST_ERR_CTP_EMPTY_JSON_BODY' }));
    for (const text of ['{"a":1', '{"a":1,"a":2', '\uFEFF', 'NaN', "{'a':1}"]) {
      expect(() => parseJsonBody(text)).toThrow(
        expect.objectContaining({ code: 'FST_ERR_CTP_INVALID_JSON_BODY' }),
      );
    }
  });

  it('takes any JSON text JSON.stringify writes (which never repeats a name) as JSON.parse does', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = JSON.stringify(value);
        // A prototype key is refused on purpose; the generator makes one now and then.
        if (/"(?:__proto__|prototype)"/.test(text)) return;
        expect(parseJsonBody(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 2_000 },
    );
  });

  it('no recursion to exhaust: a repeat under 100,000 levels is found, and the detail stays short', () => {
    const depth = 100_000;
    const problem = refusal(`${'{"a":['.repeat(depth)}{"z":1,"z":2}${']}'.repeat(depth)}`);
    expect(problem.message).toContain('"z" appears more than once in the object at /…/a/0/a/0/a/0/a/0');
    expect(problem.message.length).toBeLessThan(200);
  });

  it('shows a name escaped to ASCII and cut short, never the input as sent', () => {
    const name = `\u202e"\\\u0000x${'😀'.repeat(100)}`;
    const problem = refusal(`{${JSON.stringify(name)}:1,${JSON.stringify(name)}:2}`);
    expect(problem.message).toContain('"\\u202e\\"\\\\\\u0000x\\ud83d\\ude00');
    expect(problem.message).toMatch(/^[ -~…§]*$/);
    // 64 UTF-16 units at most, never half a surrogate pair: 5 characters, then 29 emoji of two units.
    expect(problem.message).toContain(`x${'\\ud83d\\ude00'.repeat(29)}…"`);
    expect(problem.message).not.toContain('\\ud83d…');
  });
});
