import { randomBytes } from 'node:crypto';
import type { Clock } from '../core/clock.js';
import { LatchkeyError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import type { GrantSlot, OAuthClientSettings } from '../engine/rotation-core.js';
import type { FailureRecord, SourceRecord, SourceRecordInput, Store, StoredGrant, StoreTx } from '../store/store.js';
import type { SealKey } from './seal.js';

/**
 * Sessions held server-side, in the store's `sessions` keyspace: one entry per session, its
 * whole content (tokens included) sealed with the gateway key (AES-256-GCM, bound to
 * `session:<id>`), so the store holds no readable token. The browser holds only sealed
 * (session id, generation) pairs.
 *
 * The generation counts rotations: each refresh that changes the tokens writes generation + 1
 * and a successor entry `<id>.<old generation>` (60 s) in the `successors` keyspace, in the same
 * locked unit (successor first, so whoever sees the new generation also finds the successor).
 */

/** Who is signed in (from the ID token). */
export interface SessionIdentity {
  sub: string;
  email?: string;
  name?: string;
}

/** A session as stored (decrypted). Times are ms since the epoch. */
export interface SessionData {
  gen: number;
  version: number;
  identity: SessionIdentity;
  accessToken: string;
  refreshToken?: string;
  idToken?: string;
  tokenType?: string;
  scope?: string;
  /** Access-token expiry; undefined = unknown. */
  expiresAt?: number;
  obtainedAt: number;
  createdAt: number;
  /** When the session ends (the refresh token's lifetime, or the access token's without one). */
  endsAt: number;
  lastRefreshAt?: number;
  refreshCount?: number;
  lastFailure?: FailureRecord;
  revoked?: { at: number; reason: string };
}

/** How long a successor entry answers for a previous generation. */
export const SUCCESSOR_TTL_MS = 60_000;

/** A session id: 32 random bytes, base64url (43 characters). */
export const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

export function newSessionId(): string {
  return randomBytes(32).toString('base64url');
}

export interface SessionStoreOptions {
  store: Store;
  key: SealKey;
  clock: Clock;
  /** The refresh token's lifetime when the IdP does not say (`refresh_expires_in`). */
  refreshTtlMs: number;
  successorTtlMs?: number;
}

export class SessionStore {
  readonly #o: SessionStoreOptions;
  readonly successorTtlMs: number;

  constructor(options: SessionStoreOptions) {
    this.#o = options;
    this.successorTtlMs = options.successorTtlMs ?? SUCCESSOR_TTL_MS;
  }

  get refreshTtlMs(): number {
    return this.#o.refreshTtlMs;
  }

  /** The lock key of a session's rotation. */
  static lockKey(sid: string): string {
    return `session:${sid}`;
  }

  #seal(sid: string, data: SessionData): Secret {
    return new Secret(this.#o.key.seal(JSON.stringify(data), `session:${sid}`));
  }

  #open(sid: string, value: Secret | undefined): SessionData | undefined {
    if (value === undefined) return undefined;
    const raw = this.#o.key.openJson(value.reveal(), `session:${sid}`);
    if (!raw || typeof raw.gen !== 'number' || typeof raw.accessToken !== 'string' || typeof raw.identity !== 'object' || raw.identity === null) return undefined;
    return raw as unknown as SessionData;
  }

  #ttl(data: SessionData): number {
    return Math.max(1, data.endsAt - this.#o.clock.now());
  }

  /** The live session `sid`, if any (an entry that does not open with our key is no session). */
  async load(sid: string): Promise<SessionData | undefined> {
    if (!SESSION_ID.test(sid)) return undefined;
    const data = this.#open(sid, await this.#o.store.get('sessions', sid));
    return data && !data.revoked && data.endsAt > this.#o.clock.now() ? data : undefined;
  }

  /** Stores a new session (a login). */
  async create(sid: string, data: SessionData): Promise<void> {
    await this.#o.store.put('sessions', sid, this.#seal(sid, data), this.#ttl(data));
  }

  /**
   * Ends a session (logout). Under the session's lock: a refresh in flight in another process
   * must not write the entry back after it was deleted.
   */
  async delete(sid: string): Promise<void> {
    if (!SESSION_ID.test(sid)) return;
    await this.#o.store.withLock(SessionStore.lockKey(sid), async (tx) => {
      await tx.deleteEntry('sessions', sid);
    }, { timeoutMs: 20_000 });
  }

  /** Whether generation `gen` of `sid` was rotated less than the successor TTL ago (and to which generation). */
  async successorOf(sid: string, gen: number): Promise<number | undefined> {
    const v = await this.#o.store.get('successors', `${sid}.${gen}`);
    if (v === undefined) return undefined;
    const raw = this.#o.key.openJson(v.reveal(), `successor:${sid}.${gen}`);
    return typeof raw?.gen === 'number' ? raw.gen : undefined;
  }

  /**
   * The grant slot of a session for the rotation core: its lock is `session:<id>`, and the
   * entry is read and written through that lock's transaction (store contract v2).
   */
  slot(sid: string, settings: OAuthClientSettings): GrantSlot {
    return {
      key: SessionStore.lockKey(sid),
      // Never the id: it is a credential. Messages say "the session".
      name: 'session',
      settings,
      read: async (tx) => {
        const data = this.#open(sid, await tx.getEntry('sessions', sid));
        return data && toRecord(data);
      },
      write: async (tx, record, expectedVersion) => this.#writeUnderLock(tx, sid, record, expectedVersion),
      readUnlocked: async () => {
        const data = this.#open(sid, await this.#o.store.get('sessions', sid));
        return data && toRecord(data);
      },
    };
  }

  async #writeUnderLock(tx: StoreTx, sid: string, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord> {
    const current = this.#open(sid, await tx.getEntry('sessions', sid));
    if (!current) throw new LatchkeyError('LK_STORE_CONFLICT', 'the session ended while it was being refreshed');
    if (current.version !== expectedVersion) throw new LatchkeyError('LK_STORE_CONFLICT', `the session changed underneath (expected version ${expectedVersion}, found ${current.version})`);
    const now = this.#o.clock.now();
    const g = record.grant;
    const next: SessionData = { ...current, version: current.version + 1 };
    delete next.lastFailure;
    if (record.lastFailure) next.lastFailure = record.lastFailure;
    if (record.lastRefreshAt !== undefined) next.lastRefreshAt = record.lastRefreshAt;
    if (record.refreshCount !== undefined) next.refreshCount = record.refreshCount;
    if (g) {
      const rotated = g.accessToken.reveal() !== current.accessToken || g.refreshToken?.reveal() !== current.refreshToken;
      next.accessToken = g.accessToken.reveal();
      if (g.refreshToken) next.refreshToken = g.refreshToken.reveal();
      else delete next.refreshToken;
      next.tokenType = g.tokenType;
      next.scope = g.scope;
      next.expiresAt = g.expiresAt;
      next.obtainedAt = g.obtainedAt;
      if (g.revoked) next.revoked = g.revoked;
      if (rotated) {
        next.gen = current.gen + 1;
        // A new refresh token starts a new lifetime (rolling), bounded by nothing else we know.
        if (g.refreshToken && g.refreshToken.reveal() !== current.refreshToken) next.endsAt = Math.max(current.endsAt, now + this.#o.refreshTtlMs);
        const successor = new Secret(this.#o.key.seal(JSON.stringify({ gen: next.gen, at: now }), `successor:${sid}.${current.gen}`));
        await tx.putEntry('successors', `${sid}.${current.gen}`, successor, this.successorTtlMs);
      }
    }
    await tx.putEntry('sessions', sid, this.#seal(sid, next), this.#ttl(next));
    return toRecord(next);
  }
}

/** A session as the rotation core's record (tokens as Secrets). */
export function toRecord(data: SessionData): SourceRecord {
  const grant: StoredGrant = { accessToken: new Secret(data.accessToken), obtainedAt: data.obtainedAt };
  if (data.refreshToken) grant.refreshToken = new Secret(data.refreshToken);
  if (data.tokenType) grant.tokenType = data.tokenType;
  if (data.scope) grant.scope = data.scope;
  if (data.expiresAt !== undefined) grant.expiresAt = data.expiresAt;
  if (data.revoked) grant.revoked = data.revoked;
  const rec: SourceRecord = { version: data.version, grant };
  if (data.lastRefreshAt !== undefined) rec.lastRefreshAt = data.lastRefreshAt;
  if (data.refreshCount !== undefined) rec.refreshCount = data.refreshCount;
  if (data.lastFailure) rec.lastFailure = data.lastFailure;
  return rec;
}
