/**
 * Merchant API keys: 256 random bits, shown once, stored only as SHA-256 (a fast hash is right
 * for high-entropy secrets: there is nothing to brute-force). Lookup by hash is an index hit; the
 * secret itself is never compared, so its timing tells nothing about it.
 *
 * A key is full access (every key made before scopes existed, and the default), or restricted to
 * a list of scopes, like Stripe's restricted keys: a key handed to a low-trust integration (a
 * storefront server, a reporting job) then cannot do what that integration never needs.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Database } from './database.ts';

export const API_KEY_PREFIX = 'bpk_';

/**
 * What a restricted key may be allowed, named `resource:action` as OAuth scopes usually are.
 * One scope per kind of harm rather than a coarse read/write pair: a storefront server creates
 * checkouts (and may follow them) but has no reason to cancel any, and "write" would let it
 * cancel every checkout of the installation; a reporting job only reads.
 * `webhooks:manage` registers, rotates and deletes webhook endpoints and resends events
 * (DESIGN.md §7.3); reading events, which carry checkouts, is `checkouts:read`.
 */
export const SCOPES = ['checkouts:create', 'checkouts:read', 'checkouts:cancel', 'webhooks:manage'] as const;
export type Scope = (typeof SCOPES)[number];

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** A scope list that cannot be granted: an unknown name (named, so the operator sees which), or none. */
export class InvalidScopesError extends Error {
  constructor(unknown?: string) {
    super(
      unknown === undefined
        ? `no scope given (known: ${SCOPES.join(', ')}); leave the scopes out for a full-access key`
        : `unknown scope "${unknown}" (known: ${SCOPES.join(', ')})`,
    );
    this.name = 'InvalidScopesError';
  }
}

/**
 * `checkouts:create,checkouts:read` → the scopes, deduplicated, in SCOPES order. Throws
 * InvalidScopesError naming the first unknown one; an empty list is refused too, because a key
 * that may do nothing is a mistake, not a restriction.
 */
export function parseScopes(list: string): Scope[] {
  const names = list
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (names.length === 0) throw new InvalidScopesError();
  for (const name of names) if (!isScope(name)) throw new InvalidScopesError(name);
  return SCOPES.filter((s) => names.includes(s));
}

/** What a verified key may do: null is full access. */
export type GrantedScopes = readonly Scope[] | null;

export function allows(granted: GrantedScopes, needed: Scope): boolean {
  return granted === null || granted.includes(needed);
}

/**
 * The stored list as granted scopes. Prisma reads a NULL list as [], and the database refuses a
 * stored [] (migration api_key_scopes), so [] can only be NULL: full access. A name this version
 * does not know (written by a newer one) grants nothing.
 */
function grantedFromRow(scopes: readonly string[]): GrantedScopes {
  if (scopes.length === 0) return null;
  return scopes.filter(isScope);
}

export function hashSecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

export interface CreatedApiKey {
  id: string;
  name: string;
  key: string;
  scopes: GrantedScopes;
}

/** A new key; `scopes` null (the default) is full access, else at least one scope. */
export async function createApiKey(
  db: Database,
  name: string,
  scopes: readonly Scope[] | null = null,
): Promise<CreatedApiKey> {
  if (scopes !== null) {
    if (scopes.length === 0) throw new InvalidScopesError();
    for (const scope of scopes) if (!isScope(scope)) throw new InvalidScopesError(scope);
  }
  const granted = scopes === null ? null : SCOPES.filter((s) => scopes.includes(s));
  const key = `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
  const id = randomUUID();
  await db.apiKey.create({
    data: {
      id,
      name,
      prefix: key.slice(0, 12),
      hash: hashSecret(key),
      // Left out, the column stays NULL: full access.
      ...(granted === null ? {} : { scopes: granted }),
    },
  });
  return { id, name, key, scopes: granted };
}

/** A key as the key list shows it: never its secret nor its hash. */
export interface ListedApiKey {
  id: string;
  name: string;
  prefix: string;
  scopes: GrantedScopes;
  createdAt: Date;
  revokedAt: Date | null;
}

export async function listApiKeys(db: Database): Promise<ListedApiKey[]> {
  const rows = await db.apiKey.findMany({
    select: { id: true, name: true, prefix: true, scopes: true, createdAt: true, revokedAt: true },
    orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
  });
  return rows.map((row) => ({ ...row, scopes: grantedFromRow(row.scopes) }));
}

/** A live merchant key: its id and what it may do. */
export interface VerifiedApiKey {
  id: string;
  scopes: GrantedScopes;
}

/**
 * Keys verified in the last few seconds (by hash, never the secret), so that a storefront's
 * requests do not each pay a database lookup: a key revoked in the database stops working within
 * this time, and a change of its scopes takes effect within it. Unknown keys are never remembered.
 * The scopes are remembered with the id: a remembered key is never taken for a full-access one.
 */
export const VERIFIED_KEY_TTL_MS = 5_000;
const MAX_VERIFIED_KEYS = 10_000;
const verified = new Map<string, VerifiedApiKey & { until: number }>();

/** The key's id and scopes when `presented` is a live merchant key, else null. */
export async function authenticateApiKey(db: Database, presented: string): Promise<VerifiedApiKey | null> {
  if (!presented.startsWith(API_KEY_PREFIX) || presented.length > 200) return null;
  const hash = hashSecret(presented);
  const now = Date.now();
  const known = verified.get(hash);
  if (known && known.until > now) return { id: known.id, scopes: known.scopes };
  const row = await db.apiKey.findUnique({
    where: { hash },
    select: { id: true, revokedAt: true, scopes: true },
  });
  if (!row || row.revokedAt) {
    verified.delete(hash);
    return null;
  }
  const key: VerifiedApiKey = { id: row.id, scopes: grantedFromRow(row.scopes) };
  if (verified.size >= MAX_VERIFIED_KEYS) verified.clear();
  verified.set(hash, { ...key, until: now + VERIFIED_KEY_TTL_MS });
  return key;
}
