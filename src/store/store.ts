import type { Secret } from '../secret.js';

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

export interface WithLockOptions {
  timeoutMs?: number;
}

/**
 * Where grants and session secrets live. Every backend implements the same contract:
 * reads never lock; `withLock` serialises refreshes of one source across threads, processes
 * and machines; `write` is compare-and-set on the version that was read, and is durable
 * (fsync'd / committed) when it resolves.
 */
export interface Store {
  /** Human-readable location, used in messages ("/home/me/.config/latchkey/store.json"). */
  readonly location: string;
  read(source: string): Promise<SourceRecord | undefined>;
  list(): Promise<Map<string, SourceRecord>>;
  /** `expectedVersion` is the version read (0 when the source had no record). */
  write(source: string, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord>;
  remove(source: string, expectedVersion?: number): Promise<void>;
  withLock<T>(source: string, fn: () => Promise<T>, options?: WithLockOptions): Promise<T>;
  close(): Promise<void>;
}
