/**
 * Conditional and held reads: entity tags (RFC 9110 §8.8.3), `If-None-Match` (RFC 9110 §13.1.2)
 * and the `wait` preference (RFC 7240 §4.3). Pure functions over header values: whatever a client
 * sends, they answer something (a malformed header is one that matches nothing), never throw.
 */

/** Longest `Prefer: wait` honoured, in seconds (DESIGN.md §7.2); a larger value is clamped to it. */
export const MAX_WAIT_SECONDS = 30;

/**
 * A weak entity tag for `version` (RFC 9110 §8.8.3: `W/"…"`): weak, as it stands for the state a
 * reader sees rather than the exact bytes (a merchant's answer carries the timeline, a browser's
 * does not; both have the same tag). `version` must hold only etagc characters (no `"`, no
 * spaces, no controls): ours are base64url.
 */
export function weakETag(version: string): string {
  return `W/"${version}"`;
}

/**
 * Whether an `If-None-Match` header value matches the current representation, whose weak tag is
 * `weakETag(version)`, by the weak comparison RFC 9110 §13.1.2 prescribes for it: `*`, or any
 * listed tag whose opaque part equals `version`, with or without `W/`. A tag sent without its
 * quotes is read leniently as its opaque part. Undefined or empty: no condition, false.
 */
export function ifNoneMatchMatches(header: string | undefined, version: string): boolean {
  if (!header) return false;
  for (const item of header.split(',')) {
    let tag = item.trim();
    if (tag === '*') return true;
    if (tag.startsWith('W/')) tag = tag.slice(2);
    if (tag.length >= 2 && tag.startsWith('"') && tag.endsWith('"')) tag = tag.slice(1, -1);
    if (tag === version) return true;
  }
  return false;
}

/** True when `If-None-Match` is `*` alone: it matches any state, so there is no change to wait for. */
export function isIfNoneMatchAny(header: string | undefined): boolean {
  return header?.trim() === '*';
}

/**
 * The `wait` preference of `Prefer` headers (RFC 7240 §2 syntax, §4.3 `wait=delta-seconds`), in
 * seconds, at most MAX_WAIT_SECONDS; undefined when there is none or it is not a number (RFC 7240
 * §2: a preference the server does not understand is ignored). The first `wait` wins. Node joins
 * repeated `Prefer` headers with ", ", which is the same list.
 */
export function preferredWaitSeconds(header: string | string[] | undefined): number | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(',') : header;
  for (const preference of text.split(',')) {
    // `token [BWS "=" BWS word] *(OWS ";" [OWS parameter])`: the parameters do not matter here.
    const [head = ''] = preference.split(';');
    const at = head.indexOf('=');
    const name = (at < 0 ? head : head.slice(0, at)).trim().toLowerCase();
    if (name !== 'wait') continue;
    let value = at < 0 ? '' : head.slice(at + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (!/^\d+$/.test(value)) return undefined;
    // Digits beyond any useful length would not parse to a finite number: clamp by length first.
    return value.length > 4 ? MAX_WAIT_SECONDS : Math.min(MAX_WAIT_SECONDS, Number(value));
  }
  return undefined;
}
