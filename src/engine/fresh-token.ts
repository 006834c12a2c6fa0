import type { Clock } from '../clock.js';
import { LatchkeyError } from '../errors.js';
import { DEFAULT_TOKEN_TIMEOUT_MS, RefreshError } from '../oauth/refresh-error.js';
import type { ClientAuthMethod, TokenSet } from '../oauth/refresh.js';
import type { FetchLike } from '../oauth/endpoint.js';
import type { Secret } from '../secret.js';
import type { SourceRecord, Store, StoredGrant } from '../store/store.js';
import { expiresAtFrom, refreshDueAt, usableGrant } from './expiry.js';

export { DEFAULT_SKEW_MS, effectiveSkewMs, expiresAtFrom, refreshDueAt, usableGrant } from './expiry.js';

/** The OAuth client settings needed to refresh one source (from config, falling back to the grant). */
export interface OAuthClientSettings {
  tokenEndpoint?: string;
  issuer?: string;
  clientId?: string;
  clientSecret?: Secret;
  clientAuth?: ClientAuthMethod;
  /** Refresh this long before expiry; capped at a third of the token's lifetime. */
  skewMs?: number;
}

export type RefreshOutcome = 'refreshed' | 'adopted' | 'fail_open' | 'invalid_grant' | 'revoked' | 'rejected';

export interface EngineEvent {
  source: string;
  outcome: RefreshOutcome;
  durationMs: number;
  message?: string;
}

export interface TokenEngineOptions {
  store: Store;
  clock: Clock;
  fetch: FetchLike;
  settings(source: string): Promise<OAuthClientSettings>;
  onEvent?: (event: EngineEvent) => void;
  /** After a transient failure, serve the current token without calling the IdP for this long. */
  cooldownMs?: number;
  tokenTimeoutMs?: number;
  /** Upper bound on how long a memo entry of unknown expiry is trusted before the store is re-read. */
  unknownExpiryMemoMs?: number;
}

const DEFAULT_COOLDOWN_MS = 30_000;

interface MemoEntry {
  /** The hot path compares against this and returns `promise` as is: no allocation, no I/O. */
  refreshAt: number;
  promise: Promise<string>;
  token: string;
}

/**
 * Fresh OAuth access tokens for many sources, per the refresh protocol in DESIGN.md:
 * memo → unlocked store read → one in-process flight per source → store lock, re-read,
 * adopt a sibling's rotation or call the token endpoint → persist (CAS) before anyone sees the
 * new token. Transient failures fail open with a cool-down; `invalid_grant` re-reads and
 * either adopts or marks the grant revoked, after which the IdP is not called again for it.
 */
export class TokenEngine {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #fetch: FetchLike;
  readonly #settings: (source: string) => Promise<OAuthClientSettings>;
  readonly #onEvent: ((event: EngineEvent) => void) | undefined;
  readonly #cooldownMs: number;
  readonly #tokenTimeoutMs: number;
  readonly #unknownExpiryMemoMs: number;
  readonly #memo = new Map<string, MemoEntry>();
  readonly #flights = new Map<string, Promise<string>>();
  readonly #cooldownUntil = new Map<string, number>();

  constructor(options: TokenEngineOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#fetch = options.fetch;
    this.#settings = options.settings;
    this.#onEvent = options.onEvent;
    this.#cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.#tokenTimeoutMs = options.tokenTimeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
    this.#unknownExpiryMemoMs = options.unknownExpiryMemoMs ?? 300_000;
  }

  /** A fresh access token. Hot path: one map lookup and one clock read. */
  token(source: string): Promise<string> {
    const m = this.#memo.get(source);
    if (m !== undefined && this.#clock.now() < m.refreshAt) return m.promise;
    return this.#join(source, () => this.#slowToken(source));
  }

  /**
   * The API rejected `rejected` (a 401): get a different token, refreshing under the lock
   * unless a sibling already rotated. Used once per request by the 401 recovery.
   */
  async forceRefresh(source: string, rejected: string): Promise<string> {
    const m = this.#memo.get(source);
    if (m && m.token === rejected) this.#memo.delete(source);
    const inFlight = this.#flights.get(source);
    if (inFlight) {
      const t = await inFlight.catch(() => undefined);
      if (t !== undefined && t !== rejected) return t;
    }
    return this.#join(source, () => this.#refreshUnderLock(source, { rejected }));
  }

  /** Refresh now regardless of expiry (the keeper's refresh-ahead and daily touch). */
  refreshNow(source: string): Promise<string> {
    return this.#join(source, () => this.#refreshUnderLock(source, { force: true }));
  }

  /** Forget the memo (after login/logout/import in this process). */
  invalidate(source?: string): void {
    if (source === undefined) {
      this.#memo.clear();
      this.#cooldownUntil.clear();
    } else {
      this.#memo.delete(source);
      this.#cooldownUntil.delete(source);
    }
  }

  #join(source: string, run: () => Promise<string>): Promise<string> {
    const existing = this.#flights.get(source);
    if (existing) return existing;
    const p = run().finally(() => {
      if (this.#flights.get(source) === p) this.#flights.delete(source);
    });
    this.#flights.set(source, p);
    return p;
  }

  async #slowToken(source: string): Promise<string> {
    const settings = await this.#settings(source);
    const rec = await this.#store.read(source);
    const grant = usableGrant(source, rec);
    const now = this.#clock.now();
    if (now < refreshDueAt(grant, settings.skewMs)) return this.#remember(source, grant, settings);
    const cooling = this.#cooldownUntil.get(source);
    if (cooling !== undefined && now < cooling) {
      // Fail open: the stale token is still the best we have; the API will say if it is dead.
      return this.#remember(source, grant, settings, cooling);
    }
    return this.#refreshUnderLock(source, {});
  }

  async #refreshUnderLock(source: string, opts: { rejected?: string; force?: boolean }): Promise<string> {
    const started = this.#clock.now();
    const settings = await this.#settings(source);
    try {
      return await this.#store.withLock(source, async () => {
        const rec = await this.#store.read(source);
        const grant = usableGrant(source, rec);
        const record = rec as SourceRecord;
        const now = this.#clock.now();
        const current = grant.accessToken.reveal();
        // Double-check under the lock: another thread, process or machine may have rotated.
        if (opts.rejected !== undefined ? current !== opts.rejected : !opts.force && now < refreshDueAt(grant, settings.skewMs)) {
          this.#emit(source, 'adopted', started);
          return this.#remember(source, grant, settings);
        }
        if (!grant.refreshToken) {
          if (opts.rejected !== undefined || (grant.expiresAt !== undefined && now >= grant.expiresAt)) {
            throw new LatchkeyError('LK_GRANT_INVALID', `the grant for "${source}" has no refresh token and its access token is no longer accepted`, {
              source,
              operatorAction: 'relogin',
            });
          }
          return this.#remember(source, grant, settings);
        }
        return this.#callTokenEndpoint(source, record, grant, settings, started);
      });
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'LK_LOCK_TIMEOUT') {
        // Someone holds the lock far too long: fail open rather than replay their refresh token.
        const rec = await this.#store.read(source);
        const grant = usableGrant(source, rec);
        this.#emit(source, 'fail_open', started, err.message);
        return this.#remember(source, grant, settings, this.#clock.now() + this.#cooldownMs);
      }
      throw err;
    }
  }

  async #callTokenEndpoint(source: string, rec: SourceRecord, grant: StoredGrant, settings: OAuthClientSettings, started: number): Promise<string> {
    const tokenEndpoint = settings.tokenEndpoint ?? grant.tokenEndpoint;
    const clientId = settings.clientId ?? grant.clientId;
    if (!tokenEndpoint || !clientId) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `source "${source}" has no token endpoint or client id to refresh with`, { source, operatorAction: 'fix_config' });
    }
    const refreshToken = grant.refreshToken as Secret;
    // The token's lifetime runs from when the IdP issued it: no later than this moment.
    const requestedAt = this.#clock.now();
    let set: TokenSet;
    try {
      // Loaded on first refresh: the hot path and `latchkey token` on a fresh grant never need it.
      const { refreshTokenGrant } = await import('../oauth/refresh.js');
      set = await refreshTokenGrant(
        {
          tokenEndpoint,
          issuer: settings.issuer ?? grant.issuer,
          clientId,
          clientSecret: settings.clientSecret,
          clientAuth: settings.clientAuth,
          fetch: this.#fetch,
          timeoutMs: this.#tokenTimeoutMs,
        },
        refreshToken,
      );
    } catch (err) {
      if (!(err instanceof RefreshError)) throw err;
      return this.#handleFailure(source, rec, grant, settings, err, started);
    }
    const now = this.#clock.now();
    const next: StoredGrant = {
      ...grant,
      accessToken: set.accessToken,
      // RFC 6749 §6: no new refresh token in the response means the old one stays valid.
      refreshToken: set.refreshToken ?? grant.refreshToken,
      tokenType: set.tokenType,
      scope: set.scope ?? grant.scope,
      expiresAt: set.expiresIn !== undefined ? expiresAtFrom(requestedAt, set.expiresIn) : undefined,
      obtainedAt: requestedAt,
      tokenEndpoint,
      clientId,
    };
    delete next.revoked;
    // Persist before anyone sees the new token: if this write fails, the caller gets an error,
    // never a token whose refresh token only lives in memory.
    await this.#store.write(source, { ...stripVersion(rec), grant: next, lastRefreshAt: now, refreshCount: (rec.refreshCount ?? 0) + 1, lastFailure: undefined }, rec.version);
    this.#cooldownUntil.delete(source);
    this.#emit(source, 'refreshed', started);
    return this.#remember(source, next, settings);
  }

  async #handleFailure(source: string, rec: SourceRecord, grant: StoredGrant, settings: OAuthClientSettings, err: RefreshError, started: number): Promise<string> {
    const now = this.#clock.now();
    if (err.kind === 'invalid_grant') {
      // Re-read: if the stored refresh token changed, someone rotated it outside our lock
      // (e.g. a login): adopt theirs. Otherwise the grant is dead: say so, stop calling the IdP.
      const again = await this.#store.read(source);
      const latest = again?.grant;
      if (latest && latest.refreshToken && !latest.refreshToken.equals(grant.refreshToken)) {
        this.#emit(source, 'adopted', started);
        return this.#remember(source, latest, settings);
      }
      const revokedGrant: StoredGrant = { ...grant, revoked: { at: now, reason: 'invalid_grant' } };
      await this.#store.write(
        source,
        { ...stripVersion(rec), grant: revokedGrant, lastFailure: { at: now, kind: 'invalid_grant', message: err.message } },
        rec.version,
      );
      this.#memo.delete(source);
      this.#emit(source, 'invalid_grant', started, err.message);
      throw new LatchkeyError('LK_GRANT_REVOKED', `the grant for "${source}" was revoked or expired at the IdP (invalid_grant)`, {
        source,
        operatorAction: 'reauthorize',
      });
    }
    // Transient or rejected: fail open with the current token and cool down.
    const until = now + this.#cooldownMs;
    this.#cooldownUntil.set(source, until);
    await this.#store
      .write(source, { ...stripVersion(rec), lastFailure: { at: now, kind: err.kind === 'rejected' ? 'rejected' : 'transient', message: err.message } }, rec.version)
      .catch(() => undefined);
    this.#emit(source, err.kind === 'rejected' ? 'rejected' : 'fail_open', started, err.message);
    return this.#remember(source, grant, settings, until);
  }

  #remember(source: string, grant: StoredGrant, settings: OAuthClientSettings, until?: number): string {
    const token = grant.accessToken.reveal();
    const now = this.#clock.now();
    const due = refreshDueAt(grant, settings.skewMs);
    const refreshAt = until ?? (Number.isFinite(due) ? due : now + this.#unknownExpiryMemoMs);
    this.#memo.set(source, { refreshAt, token, promise: Promise.resolve(token) });
    return token;
  }

  #emit(source: string, outcome: RefreshOutcome, started: number, message?: string): void {
    this.#onEvent?.({ source, outcome, durationMs: this.#clock.now() - started, ...(message ? { message } : {}) });
  }
}

function stripVersion(rec: SourceRecord): Omit<SourceRecord, 'version'> {
  const { version: _version, ...rest } = rec;
  return rest;
}
