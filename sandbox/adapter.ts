/**
 * A Map-based oidc-provider adapter with expiry.
 *
 * oidc-provider's built-in memory adapter is an LRU capped at 1,000 entries: with more pending
 * CIBA requests than that, the oldest auth_req_ids silently vanish and their polls answer
 * `invalid_grant`. Benchmarks hold tens of thousands of pending approvals, so this store keeps
 * every entry until it expires (checked on read, swept periodically).
 *
 * Expired CIBA requests are kept a while longer (a tombstone): oidc-provider looks the
 * auth_req_id up ignoring expiry and answers `expired_token` itself (CIBA Core §11) only if the
 * adapter still returns it; an adapter that forgets it on time makes the answer `invalid_grant`.
 *
 * With a journal (journal.ts), every change is also written there before the adapter call
 * returns, and restore() reads it back at start: a restarted bank still answers for the
 * auth_req_ids, grants and access tokens it handed out. Reads never leave memory.
 */
import type { Adapter, AdapterFactory, AdapterPayload } from 'oidc-provider';
import type { Journal, JournalRecord } from './journal.ts';

/** What the journal keeps of an entry (kind `oidc`, id = the store key `Model:id`). */
interface JournaledEntry {
  model: string;
  payload: AdapterPayload;
  /** Epoch ms, or null for no expiry. */
  expiresAt: number | null;
}

interface Entry {
  payload: AdapterPayload;
  expiresAt: number; // epoch ms; Infinity when the model gave no expiry
  keepUntil: number; // epoch ms; expiresAt, or later for tombstoned models
}

// Models whose expired entries stay readable (oidc-provider checks their `exp` itself), and how long.
const TOMBSTONED = new Set(['BackchannelAuthenticationRequest']);
export const TOMBSTONE_MS = 10 * 60 * 1000;

// Models that oidc-provider may revoke together through revokeByGrantId (e.g. redeeming an
// auth_req_id twice revokes the tokens already issued from it).
const GRANTABLE = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

export class MapStore {
  readonly entries = new Map<string, Entry>();
  readonly grants = new Map<string, Set<string>>();
  readonly uids = new Map<string, string>();
  readonly userCodes = new Map<string, string>();

  constructor(readonly journal?: Journal) {}

  /** Puts back the entries a journal kept (expired ones are skipped by the journal's load). */
  restore(records: ReadonlyArray<JournalRecord<JournaledEntry>>): void {
    for (const { id, data } of records) this.put(data.model, id, data.payload, data.expiresAt ?? Infinity);
  }

  /** Writes an entry's current state to the journal, when there is one. */
  async persist(key: string): Promise<void> {
    const entry = this.entries.get(key);
    if (!this.journal || !entry) return;
    const model = key.slice(0, key.indexOf(':'));
    const data: JournaledEntry = {
      model,
      payload: entry.payload,
      expiresAt: Number.isFinite(entry.expiresAt) ? entry.expiresAt : null,
    };
    await this.journal.put('oidc', key, data, entry.keepUntil);
  }

  /** Removes entries from memory and from the journal. */
  async remove(keys: readonly string[]): Promise<void> {
    for (const key of keys) this.delete(key);
    await this.journal?.delete('oidc', keys);
  }

  get(key: string): AdapterPayload | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.keepUntil <= Date.now()) {
      this.delete(key);
      return undefined;
    }
    return entry.payload;
  }

  set(model: string, key: string, payload: AdapterPayload, expiresIn: number | undefined): void {
    this.put(model, key, payload, typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity);
  }

  private put(model: string, key: string, payload: AdapterPayload, expiresAt: number): void {
    this.delete(key);
    const keepUntil = TOMBSTONED.has(model) ? expiresAt + TOMBSTONE_MS : expiresAt;
    this.entries.set(key, { payload, expiresAt, keepUntil });
    if (GRANTABLE.has(model) && typeof payload.grantId === 'string') {
      let members = this.grants.get(payload.grantId);
      if (!members) {
        members = new Set();
        this.grants.set(payload.grantId, members);
      }
      members.add(key);
    }
    if (model === 'Session' && typeof payload.uid === 'string') this.uids.set(payload.uid, key);
    if (typeof payload.userCode === 'string') this.userCodes.set(payload.userCode, key);
  }

  delete(key: string): void {
    const entry = this.entries.get(key);
    if (!entry) return;
    this.entries.delete(key);
    const { grantId, uid, userCode } = entry.payload;
    if (typeof grantId === 'string') {
      const members = this.grants.get(grantId);
      members?.delete(key);
      if (members?.size === 0) this.grants.delete(grantId);
    }
    if (typeof uid === 'string' && this.uids.get(uid) === key) this.uids.delete(uid);
    if (typeof userCode === 'string' && this.userCodes.get(userCode) === key) this.userCodes.delete(userCode);
  }

  /** Removes every entry of a grant (memory and journal). */
  async revokeGrant(grantId: string): Promise<void> {
    await this.remove([...(this.grants.get(grantId) ?? [])]);
    this.grants.delete(grantId);
  }

  /** Drops expired entries; returns how many were removed. */
  sweep(now = Date.now()): number {
    let removed = 0;
    for (const [key, entry] of this.entries) {
      if (entry.keepUntil <= now) {
        this.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** Live (unexpired) entries, of one model or all; tombstones are not counted. */
  count(model?: string, now = Date.now()): number {
    let n = 0;
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt > now && (!model || key.startsWith(`${model}:`))) n++;
    }
    return n;
  }
}

class MapAdapter implements Adapter {
  constructor(
    private readonly model: string,
    private readonly store: MapStore,
  ) {}

  private key(id: string): string {
    return `${this.model}:${id}`;
  }

  async upsert(id: string, payload: AdapterPayload, expiresIn?: number): Promise<void> {
    this.store.set(this.model, this.key(id), payload, expiresIn);
    await this.store.persist(this.key(id));
  }

  async find(id: string): Promise<AdapterPayload | undefined> {
    return this.store.get(this.key(id));
  }

  async findByUid(uid: string): Promise<AdapterPayload | undefined> {
    const key = this.store.uids.get(uid);
    return key === undefined ? undefined : this.store.get(key);
  }

  async findByUserCode(userCode: string): Promise<AdapterPayload | undefined> {
    const key = this.store.userCodes.get(userCode);
    return key === undefined ? undefined : this.store.get(key);
  }

  async consume(id: string): Promise<void> {
    const payload = this.store.get(this.key(id));
    if (!payload) return;
    payload.consumed = Math.floor(Date.now() / 1000);
    await this.store.persist(this.key(id));
  }

  async destroy(id: string): Promise<void> {
    await this.store.remove([this.key(id)]);
  }

  async revokeByGrantId(grantId: string): Promise<void> {
    await this.store.revokeGrant(grantId);
  }
}

/** One store per sandbox bank, so several banks in one process (tests) never share state. */
export function createMapAdapter(store: MapStore): AdapterFactory {
  return (model: string) => new MapAdapter(model, store);
}
