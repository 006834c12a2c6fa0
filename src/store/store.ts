import type { Secret } from '../core/secret.js';

/** An OAuth grant as stored. Times are milliseconds since the epoch. */
export interface StoredGrant {
  accessToken: Secret;
  refreshToken?: Secret;
  tokenType?: string;
  scope?: string;
  /** Absent = the IdP gave no `expires_in`: unknown expiry (refresh on 401 and on schedule). */
  expiresAt?: number;
  /** When this access token was obtained (lifetime = expiresAt - obtainedAt). */
  obtainedAt: number;
  tokenEndpoint?: string;
  issuer?: string;
  clientId?: string;
  /** Set when the IdP rejected the refresh token and no sibling had rotated it: stop calling it. */
  revoked?: { at: number; reason: string };
}

/** Browser-session credentials captured for a source (cookie name → value). */
export interface StoredSession {
  cookies: Record<string, Secret>;
  updatedAt: number;
}

export interface FailureRecord {
  at: number;
  kind: 'transient' | 'invalid_grant' | 'rejected';
  message: string;
  /**
   * The refresh token sent may have been consumed by the IdP (timeout or reset after sending,
   * 5xx, an unusable 200): it is sent again only after the cool-down, never sooner, even by a
   * forced refresh (see "Token-endpoint answers" in docs/DESIGN.md).
   */
  maybeConsumed?: boolean;
  /** No refresh before this time (a Retry-After longer than the cool-down). */
  until?: number;
}

/** Everything stored for one source, versioned for compare-and-set. */
export interface SourceRecord {
  version: number;
  grant?: StoredGrant;
  session?: StoredSession;
  lastRefreshAt?: number;
  refreshCount?: number;
  lastFailure?: FailureRecord;
}

export type SourceRecordInput = Omit<SourceRecord, 'version'>;

/**
 * What {@link Store.listMeta} tells about one source: everything the keeper, `status` and the
 * dashboard decide on, and nothing secret. A backend fills it without revealing, decrypting or
 * even constructing a {@link Secret}.
 */
export interface SourceMeta {
  version: number;
  hasGrant: boolean;
  hasRefreshToken: boolean;
  expiresAt?: number;
  obtainedAt?: number;
  revoked?: { at: number; reason: string };
  lastRefreshAt?: number;
  refreshCount?: number;
  lastFailure?: FailureRecord;
  hasSession: boolean;
  /** When the session cookies were last written. */
  sessionUpdatedAt?: number;
}

export interface WithLockOptions {
  timeoutMs?: number;
  /**
   * Called while the lock is held by another and this call waits, before each new attempt (after
   * a poll interval, or at once when the holder's release is heard). Resolving true stops the
   * wait: `withLock` rejects with LK_LOCK_TIMEOUT and `fn` never runs. The engine reads the store
   * here and serves the holder's result (what the store lets read is durable) instead of taking
   * the lock only to adopt it. A backend may never call it (the file store does not).
   */
  whileWaiting?: () => Promise<boolean>;
  /**
   * Stop waiting when this aborts before the lock is had (already aborted: no attempt at all):
   * `withLock` rejects with LK_LOCK_TIMEOUT and `fn` never runs. Once the lock is held, the work
   * runs to its end. Every backend honours it (the contract suite checks it).
   */
  signal?: AbortSignal;
}

/**
 * The writes a lock protects, bound to it (store contract v2): a file lock plus fsync'd renames
 * in the file store, one transaction in PostgreSQL. Only the key the lock was taken for may be
 * read or written through it (another key would need its own lock).
 */
export interface StoreTx {
  /** The record as it is now (under the lock no other Latchkey writer can change it). */
  read(key: string): Promise<SourceRecord | undefined>;
  /**
   * Compare-and-set: `expectedVersion` is the version read (0 when there was no record); a
   * different stored version throws LK_STORE_CONFLICT and nothing is written. Durable at the
   * latest when {@link Store.withLock} resolves; other callers are handed what it wrote only then.
   */
  write(key: string, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord>;
  /** Removes the record (CAS when `expectedVersion` is given). */
  remove(key: string, expectedVersion?: number): Promise<void>;
  /**
   * Keyspace entries under this lock (the gateway's sessions: lock `session:<id>`, then read and
   * write the entry through the lock, so PostgreSQL binds them to the same claim or transaction).
   * Durable when `withLock` resolves, like {@link write}.
   */
  getEntry(keyspace: Keyspace, id: string): Promise<Secret | undefined>;
  putEntry(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void>;
  deleteEntry(keyspace: Keyspace, id: string): Promise<boolean>;
}

/**
 * The keyspaces beyond sources, for the session gateway: `sessions` (one per user session),
 * `successors` (an old refresh-token generation → its rotated tokens, kept ~60 s so that a
 * replica that lost the race answers with the winner's tokens), `tickets` (single-use).
 */
export type Keyspace = 'sessions' | 'successors' | 'tickets';
export const KEYSPACES: readonly Keyspace[] = ['sessions', 'successors', 'tickets'];

/** The keeper's single-instance lock: one leader per store (see {@link Store.leaderLock}). */
export interface LeaderLock {
  /** Where it lives, for messages (a lock file's path; a PostgreSQL advisory lock's name). */
  readonly path: string;
  /** A shared store's leadership epoch (PostgreSQL): stamped on what the leader publishes. */
  readonly epoch?: number;
  release(): Promise<void>;
}

/**
 * What the leading keeper of a shared store publishes for the keepers standing by (fleet mode):
 * its report, source by source, stamped with its leadership's epoch. JSON documents the store
 * does not interpret (the keeper's `health.json` pieces).
 */
export interface SharedKeeperState {
  /**
   * Writes the report (the sources whose JSON changed since the last publish, all of them on the
   * first) under `epoch`. Refused with LK_KEEPER when the store's leader is at another epoch: a
   * deposed leader never overwrites its successor's state.
   */
  publish(epoch: number, report: Record<string, unknown>, sources: ReadonlyMap<string, { health: unknown; dueAt: number | undefined }>): Promise<void>;
  /** The last published report (undefined before any), with the leader it came from. */
  read(): Promise<SharedKeeperSnapshot | undefined>;
}

/**
 * Which grants are due for refresh-ahead, as the store knows it (PostgreSQL: an indexed due
 * time, picked `FOR UPDATE SKIP LOCKED` with a pick lease), so a keeper's tick costs the due
 * sources, not all of them.
 */
export interface DueWorkPicker {
  /** Up to `limit` due sources, earliest due first, none of `exclude`. */
  pick(limit: number, now: number, exclude: readonly string[]): Promise<string[]>;
  /** Ends the picks of `names` (refreshed, adopted, failed or not this keeper's). */
  done(names: string[]): Promise<void>;
  close(): Promise<void>;
}

/** A published keeper report as a standby reads it. */
export interface SharedKeeperSnapshot {
  /** The report without its sources. */
  report: Record<string, unknown>;
  sources: Record<string, unknown>;
  /** The epoch it was published under. */
  epoch: number;
  /** The store's current leader (its epoch may be newer than the report's). */
  leader: (LeaderInfo & { epoch: number }) | undefined;
}

export interface LeaderLockOptions {
  /** Wait for the lock instead of refusing (stand by until the other leader stops). */
  standby?: boolean;
  /** Called once when standing by (to say so), with who holds it. */
  onStandby?: (holder: LeaderInfo | undefined) => void;
  /** Standing by stops (and this rejects with LK_KEEPER) when the signal aborts. */
  signal?: AbortSignal;
  /** Called when a heartbeat finds the lock taken by someone else. */
  onLost?: (holder: LeaderInfo | undefined) => void;
  /** Called when a heartbeat cannot write (disk full…); the lock is still held. */
  onHeartbeatError?: (err: unknown) => void;
  staleMs?: number;
  heartbeatMs?: number;
}

/** Who holds a leader lock (never a secret). */
export interface LeaderInfo {
  pid: number;
  host: string;
  /** When the holder took or last re-stamped the lock (ms epoch). */
  at: number;
}

/**
 * Where grants, session secrets and the gateway's short-lived entries live. Every backend
 * implements the same contract, proven by one suite (test/store/contract.ts):
 *
 * - reads never lock; {@link withLock} serialises the work on one key across threads,
 *   processes and machines, and its writes go through the {@link StoreTx} it hands out;
 * - what the locked work wrote is durable (renamed and fsync'd / committed) when `withLock`
 *   resolves, and callers hand its results to others only after that;
 * - {@link read} of one source does not build every other source's record; {@link listMeta}
 *   never reads a secret;
 * - keyspace entries expire; {@link consume} is atomic across processes;
 * - one {@link leaderLock} holder per store.
 *
 * There is no unlocked `write`: a write outside the lock could not be compared with what a
 * refresh under the lock is about to save, and a second connection writing while the lock's
 * transaction holds the row would wait for it (in PostgreSQL: a deadlock until a timeout).
 */
export interface Store {
  /** Human-readable location, used in messages ("/home/me/.config/latchkey/store.json"). */
  readonly location: string;
  /** One source's record, without building any other's. */
  read(source: string): Promise<SourceRecord | undefined>;
  /** Every source's record, secrets included (`status` with details, exports). Prefer {@link listMeta}. */
  list(): Promise<Map<string, SourceRecord>>;
  /** Every source's metadata, never touching a secret. */
  listMeta(): Promise<Map<string, SourceMeta>>;
  /**
   * Runs `fn` holding the lock of `key`, with the reads and writes it protects. Resolves once
   * what `fn` wrote is durable; rejects with LK_LOCK_TIMEOUT when the lock cannot be had in time.
   */
  withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>, options?: WithLockOptions): Promise<T>;
  /** Stores `value` under `id` for `ttlMs` (replacing what was there). Durable when it resolves. */
  put(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void>;
  /** The live (unexpired) value under `id`, if any. */
  get(keyspace: Keyspace, id: string): Promise<Secret | undefined>;
  /** Removes `id`; true when there was something (even expired) to remove. */
  delete(keyspace: Keyspace, id: string): Promise<boolean>;
  /** Takes `id` out, atomically: of N concurrent consumers across processes exactly one gets it. */
  consume(keyspace: Keyspace, id: string): Promise<Secret | undefined>;
  /** Removes every expired entry of every keyspace; returns how many. */
  sweep(): Promise<number>;
  /** Takes the store's leader lock (one keeper per store). */
  leaderLock(options?: LeaderLockOptions): Promise<LeaderLock>;
  /** Where a leading keeper publishes its report for standbys (shared stores only). */
  sharedKeeperState?(): SharedKeeperState;
  /** The due-work picker of a shared store (PostgreSQL): see {@link DueWorkPicker}. */
  dueWork?(): DueWorkPicker;
  close(): Promise<void>;
}

/** What a grant's metadata says, from a full record (for backends and tests that hold one). */
export function metaOf(rec: SourceRecord): SourceMeta {
  const g = rec.grant;
  const meta: SourceMeta = { version: rec.version, hasGrant: g !== undefined, hasRefreshToken: g?.refreshToken !== undefined, hasSession: rec.session !== undefined };
  if (g?.expiresAt !== undefined) meta.expiresAt = g.expiresAt;
  if (g !== undefined) meta.obtainedAt = g.obtainedAt;
  if (g?.revoked) meta.revoked = g.revoked;
  if (rec.lastRefreshAt !== undefined) meta.lastRefreshAt = rec.lastRefreshAt;
  if (rec.refreshCount !== undefined) meta.refreshCount = rec.refreshCount;
  if (rec.lastFailure) meta.lastFailure = rec.lastFailure;
  if (rec.session) meta.sessionUpdatedAt = rec.session.updatedAt;
  return meta;
}
