import type { Clock } from '../clock.js';
import { ExitCode, LatchkeyError } from '../errors.js';
import { DEFAULT_TOKEN_TIMEOUT_MS, RefreshError } from '../oauth/refresh-error.js';
import type { ClientAuthMethod } from '../oauth/client-auth.js';
import type { RefreshAnswer } from '../oauth/refresh.js';
import type { FetchLike } from '../oauth/endpoint.js';
import { MAX_RETRY_AFTER_MS } from '../oauth/token-answer.js';
import type { Secret } from '../secret.js';
import type { FailureRecord, SourceRecord, Store, StoredGrant } from '../store/store.js';
import { expiresAtOf, refreshDueAt, usableGrant } from './expiry.js';

export { DEFAULT_SKEW_MS, effectiveSkewMs, expiresAtFrom, refreshDueAt, usableGrant } from './expiry.js';

/** The OAuth client settings needed to refresh one source (from config, falling back to the grant). */
export interface OAuthClientSettings {
  tokenEndpoint?: string;
  issuer?: string;
  clientId?: string;
  clientSecret?: Secret;
  /**
   * Resolves the client secret when a refresh needs it. A fresh token never does: a locked
   * keyring or an unset variable must not stop a job from reading a token the keeper keeps fresh.
   */
  resolveClientSecret?: () => Promise<Secret>;
  clientAuth?: ClientAuthMethod;
  /** Refresh this long before expiry; capped at a third of the token's lifetime. */
  skewMs?: number;
}

/**
 * What a refresh attempt came to. `unsaved`: the IdP answered with a new grant but the store
 * could not be written (disk full, a broken store): this process holds the new grant in memory,
 * uses it, and keeps trying to save it; `saved`: such a held grant was finally written.
 */
export type RefreshOutcome = 'refreshed' | 'adopted' | 'fail_open' | 'invalid_grant' | 'revoked' | 'rejected' | 'unsaved' | 'saved';

export interface EngineEvent {
  source: string;
  outcome: RefreshOutcome;
  durationMs: number;
  message?: string;
  /**
   * For a rotation the IdP answered (`refreshed`, `unsaved`): `performance.now()` when its
   * answer arrived and when the store write resolved (renamed and fsync'd / committed). A crash
   * between the two loses the rotated refresh token: the window the bench measures.
   */
  answerAt?: number;
  persistedAt?: number;
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
  /** Pauses between attempts to save a refreshed grant, under the lock (default 100, 500, 1500 ms). */
  persistRetryDelaysMs?: readonly number[];
  /** While a refreshed grant is held unsaved, try to save it again this often (default 5 s). */
  unsavedRetryMs?: number;
  /**
   * After a first refusal of the refresh token (invalid_grant, an empty 400), wait this long
   * under the lock, re-read, and confirm once before marking the grant revoked (default 1 s).
   */
  confirmRefusalDelayMs?: number;
}

const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_PERSIST_RETRY_DELAYS_MS = [100, 500, 1500] as const;
const DEFAULT_UNSAVED_RETRY_MS = 5_000;
const DEFAULT_CONFIRM_REFUSAL_DELAY_MS = 1_000;

/**
 * Which attempt of one locked refresh this is: the first; the confirmation of a refusal (same
 * refresh token, sent again because the IdP said it did not accept it); or the refresh with
 * the new refresh token of an unusable rotation (never sent before).
 */
type Attempt = 'first' | 'confirming' | 'after_unusable_rotation';

/** A refreshed grant the store could not take (yet): the only copy of a rotated refresh token. */
interface Unsaved {
  /** The refresh token the store holds, the one this grant was rotated from: saved only over it. */
  storedRefreshToken: Secret | undefined;
  grant: StoredGrant;
  refreshedAt: number;
  /** Why the last attempt to save it failed. */
  reason: string;
}

/** What {@link TokenEngine.unsaved} reports about a held grant (never its tokens). */
export interface UnsavedInfo {
  refreshedAt: number;
  expiresAt: number | undefined;
  /** Why the store did not take it (an errno name such as ENOSPC, or the store's message). */
  reason: string;
  message: string;
}

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
  readonly #persistRetryDelaysMs: readonly number[];
  readonly #unsavedRetryMs: number;
  readonly #confirmRefusalDelayMs: number;
  readonly #memo = new Map<string, MemoEntry>();
  readonly #flights = new Map<string, Promise<string>>();
  readonly #cooldownUntil = new Map<string, number>();
  readonly #unsaved = new Map<string, Unsaved>();

  constructor(options: TokenEngineOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#fetch = options.fetch;
    this.#settings = options.settings;
    this.#onEvent = options.onEvent;
    this.#cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.#tokenTimeoutMs = options.tokenTimeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
    this.#unknownExpiryMemoMs = options.unknownExpiryMemoMs ?? 300_000;
    this.#persistRetryDelaysMs = options.persistRetryDelaysMs ?? DEFAULT_PERSIST_RETRY_DELAYS_MS;
    this.#unsavedRetryMs = options.unsavedRetryMs ?? DEFAULT_UNSAVED_RETRY_MS;
    this.#confirmRefusalDelayMs = options.confirmRefusalDelayMs ?? DEFAULT_CONFIRM_REFUSAL_DELAY_MS;
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
    // A flight in progress is awaited for its answer, never joined blindly: a plain token()
    // flight may answer the very token the API just rejected (it read the same stored grant).
    for (let i = 0; i < 3; i++) {
      const inFlight = this.#flights.get(source);
      if (inFlight === undefined) return this.#join(source, () => this.#refreshUnderLock(source, { rejected }));
      const t = await inFlight.catch(() => undefined);
      if (t !== undefined && t !== rejected) return t;
    }
    // Flights keep coming and none helps: go under the lock ourselves (it serialises us with them).
    return this.#refreshUnderLock(source, { rejected });
  }

  /** Refresh now regardless of expiry (the keeper's refresh-ahead and daily touch). */
  refreshNow(source: string): Promise<string> {
    return this.#join(source, () => this.#refreshUnderLock(source, { force: true }));
  }

  /** Forget the memo (after login/logout/import in this process: the store's grant wins over a held one). */
  invalidate(source?: string): void {
    if (source === undefined) {
      this.#memo.clear();
      this.#cooldownUntil.clear();
      this.#unsaved.clear();
    } else {
      this.#memo.delete(source);
      this.#cooldownUntil.delete(source);
      this.#unsaved.delete(source);
    }
  }

  /** A refreshed grant this process holds because the store could not be written, if any. */
  unsaved(source: string): UnsavedInfo | undefined {
    const u = this.#unsaved.get(source);
    return u && { refreshedAt: u.refreshedAt, expiresAt: u.grant.expiresAt, reason: u.reason, message: this.#unsavedMessage(u) };
  }

  /** Tries once more to save every held grant (e.g. before the process exits). */
  async flush(): Promise<void> {
    for (const source of [...this.#unsaved.keys()]) {
      const started = this.#clock.now();
      await this.#store
        .withLock(source, async () => {
          if (this.#unsaved.has(source)) await this.#saveUnsaved(source, await this.#store.read(source), started);
        })
        .catch(() => undefined);
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
    // A held (unsaved) grant is newer than the store's: save it first, under the lock.
    if (this.#unsaved.has(source)) return this.#refreshUnderLock(source, {});
    const rec = await this.#store.read(source);
    const grant = usableGrant(source, rec);
    const now = this.#clock.now();
    if (now < refreshDueAt(grant, settings.skewMs)) return this.#remember(source, grant, settings);
    const cooling = this.#coolingUntil(source, rec, now);
    if (cooling !== undefined) {
      // Fail open: the stale token is still the best we have; the API will say if it is dead.
      return this.#remember(source, grant, settings, cooling);
    }
    return this.#refreshUnderLock(source, {});
  }

  /**
   * Until when `source` cools down after a transient or rejected refresh: this instance's own
   * failure, or one any process recorded in the store (so a `latchkey token` per job, each a new
   * process, does not call a failing IdP and wait out its timeout every time).
   */
  #coolingUntil(source: string, rec: SourceRecord | undefined, now: number): number | undefined {
    let until = this.#cooldownUntil.get(source);
    const f = rec?.lastFailure;
    if (f && f.kind !== 'invalid_grant' && f.at > (rec?.lastRefreshAt ?? 0)) {
      // A failure stamped in the future (another clock) cools down from now, not longer; a
      // Retry-After (`until`) at most MAX_RETRY_AFTER_MS from now.
      const persisted = Math.max(Math.min(f.at, now) + this.#cooldownMs, Math.min(f.until ?? 0, now + MAX_RETRY_AFTER_MS));
      if (until === undefined || persisted > until) until = persisted;
    }
    return until !== undefined && now < until ? until : undefined;
  }

  async #refreshUnderLock(source: string, opts: { rejected?: string; force?: boolean }): Promise<string> {
    const started = this.#clock.now();
    const settings = await this.#settings(source);
    try {
      return await this.#store.withLock(source, async () => {
        let rec = await this.#store.read(source);
        if (this.#unsaved.has(source)) rec = await this.#saveUnsaved(source, rec, started);
        // Still held: the store cannot be written; the held grant is the newest, work from it.
        const held = this.#unsaved.get(source);
        const grant = held?.grant ?? usableGrant(source, rec);
        const record = rec as SourceRecord;
        const now = this.#clock.now();
        const current = grant.accessToken.reveal();
        // Double-check under the lock: another thread, process or machine may have rotated.
        if (opts.rejected !== undefined ? current !== opts.rejected : !opts.force && now < refreshDueAt(grant, settings.skewMs)) {
          if (!held) this.#emit(source, 'adopted', started);
          return this.#remember(source, grant, settings);
        }
        // A refresh failed moments ago (transiently, or the client was refused), here or in a
        // sibling we queued behind on the lock: calling the IdP again would only wait out the
        // same failure. Fail open until the cool-down ends (the keeper's refreshNow still tries,
        // except after a failure that may have consumed the refresh token: that one is sent
        // again only once the cool-down has passed, by anyone).
        if (!opts.force || rec?.lastFailure?.maybeConsumed) {
          const cooling = this.#coolingUntil(source, rec, now);
          if (cooling !== undefined) return this.#remember(source, grant, settings, cooling);
        }
        // After a failure that may have consumed the refresh token, sending it again risks the
        // IdP's reuse detection revoking the grant, and with it the access token still in use:
        // a refresh-ahead (forced, not due) waits until the access token is due anyway.
        const f = rec?.lastFailure;
        if (opts.force && f?.maybeConsumed && f.at > (rec?.lastRefreshAt ?? 0) && now < refreshDueAt(grant, settings.skewMs)) {
          return this.#remember(source, grant, settings);
        }
        if (!grant.refreshToken) {
          if (opts.rejected !== undefined || (grant.expiresAt !== undefined && now >= grant.expiresAt)) {
            throw new LatchkeyError('LK_GRANT_INVALID', `the grant for "${source}" has no refresh token and its access token is no longer accepted`, {
              source,
              operatorAction: 'relogin',
              exitCode: ExitCode.actionRequired,
            });
          }
          return this.#remember(source, grant, settings);
        }
        return this.#callTokenEndpoint(source, record, grant, settings, started);
      });
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'LK_LOCK_TIMEOUT') {
        // Someone holds the lock far too long: fail open rather than replay their refresh token.
        const grant = this.#unsaved.get(source)?.grant ?? usableGrant(source, await this.#store.read(source));
        this.#emit(source, 'fail_open', started, err.message);
        const now = this.#clock.now();
        // The holder may have finished just now: a fresh grant is served as usual.
        return this.#remember(source, grant, settings, now < refreshDueAt(grant, settings.skewMs) ? undefined : now + this.#cooldownMs);
      }
      throw err;
    }
  }

  async #callTokenEndpoint(source: string, rec: SourceRecord, grant: StoredGrant, settings: OAuthClientSettings, started: number, attempt: Attempt = 'first'): Promise<string> {
    const tokenEndpoint = settings.tokenEndpoint ?? grant.tokenEndpoint;
    const clientId = settings.clientId ?? grant.clientId;
    if (!tokenEndpoint || !clientId) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `source "${source}" has no token endpoint or client id to refresh with`, { source, operatorAction: 'fix_config' });
    }
    const refreshToken = grant.refreshToken as Secret;
    const clientSecret = settings.clientSecret ?? (settings.resolveClientSecret ? await settings.resolveClientSecret() : undefined);
    // The token's lifetime runs from when the IdP issued it: no later than this moment.
    const requestedAt = this.#clock.now();
    let result: RefreshAnswer;
    try {
      // Loaded on first refresh: the hot path and `latchkey token` on a fresh grant never need it.
      const { refreshTokenGrant } = await import('../oauth/refresh.js');
      result = await refreshTokenGrant(
        {
          tokenEndpoint,
          issuer: settings.issuer ?? grant.issuer,
          clientId,
          clientSecret,
          clientAuth: settings.clientAuth,
          fetch: this.#fetch,
          timeoutMs: this.#tokenTimeoutMs,
          now: () => this.#clock.now(),
        },
        refreshToken,
      );
    } catch (err) {
      if (!(err instanceof RefreshError)) throw err;
      return this.#handleFailure(source, rec, grant, settings, err, started, attempt);
    }
    // From here to the store's rename is the crash window (a crash loses the rotated token):
    // nothing in it reads, sleeps or retries before the first write.
    const now = this.#clock.now();
    const warnings = result.warnings.length ? result.warnings.join('; ') : undefined;
    if (result.answer === 'rotation_unusable') {
      // The IdP rotated (the new refresh token is in the answer) but the rest is unusable: the
      // new refresh token is the only live one; persist it first, with the access token marked
      // expired, then refresh once with it (it has never been sent: sending it is safe).
      const next: StoredGrant = { ...grant, refreshToken: result.refreshToken, expiresAt: Math.min(grant.expiresAt ?? requestedAt, requestedAt), tokenEndpoint, clientId };
      delete next.revoked;
      const message = `the IdP rotated the refresh token but the rest of its answer is unusable (${result.problem}); the new refresh token was saved`;
      const failure: FailureRecord | undefined = attempt === 'after_unusable_rotation' ? { at: now, kind: 'transient', message } : undefined;
      const saved = await this.#persistRotation(source, rec, next, now, settings, started, { answerAt: result.receivedAt, message, failure });
      if (saved.written === undefined || failure !== undefined) {
        if (failure !== undefined) this.#cooldownUntil.set(source, now + this.#cooldownMs);
        return failure !== undefined ? this.#remember(source, next, settings, now + this.#cooldownMs) : saved.token;
      }
      return this.#callTokenEndpoint(source, saved.written, next, settings, started, 'after_unusable_rotation');
    }
    const set = result.set;
    const next: StoredGrant = {
      ...grant,
      accessToken: set.accessToken,
      // RFC 6749 §6: no new refresh token in the response means the old one stays valid.
      refreshToken: set.refreshToken ?? grant.refreshToken,
      tokenType: set.tokenType,
      scope: set.scope ?? grant.scope,
      expiresAt: expiresAtOf(requestedAt, set.expiresIn, set.jwt),
      obtainedAt: requestedAt,
      tokenEndpoint,
      clientId,
    };
    delete next.revoked;
    return (await this.#persistRotation(source, rec, next, now, settings, started, { answerAt: result.receivedAt, message: warnings })).token;
  }

  /**
   * Persists a refreshed grant before anyone sees it. The IdP has already rotated the refresh
   * token: from here the new grant is the only live copy, and it must never be dropped silently.
   *
   * The first write is attempted at once (the crash window ends with its rename). A failed write
   * is retried under the lock (with the record re-read: a conflict means the
   * record changed, possible only if the lock was lost or the file was edited by hand; it is
   * merged when the store still holds the refresh token we rotated from, and otherwise the store
   * has moved on to another grant and wins). When the store still cannot be written (disk full),
   * this process holds the new grant in memory: it serves its access token, refreshes from its
   * refresh token (never replaying the consumed one in the store), retries the save every few
   * seconds, and reports `unsaved` (event, `status`, the CLI's stderr) until it is saved.
   * `written` is the record written, when it was.
   */
  async #persistRotation(
    source: string,
    rec: SourceRecord,
    next: StoredGrant,
    refreshedAt: number,
    settings: OAuthClientSettings,
    started: number,
    extra: { answerAt?: number; message?: string; failure?: FailureRecord } = {},
  ): Promise<{ token: string; written?: SourceRecord }> {
    const storedRefreshToken = rec.grant?.refreshToken;
    let current = rec;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        const written = await this.#store.write(source, rotatedRecord(current, next, refreshedAt, extra.failure), current.version);
        const persistedAt = extra.answerAt !== undefined ? performance.now() : undefined;
        this.#unsaved.delete(source);
        if (extra.failure === undefined) this.#cooldownUntil.delete(source);
        const notes = [extra.message, attempt > 0 ? `saved at attempt ${attempt + 1} (${describeError(lastError)})` : undefined].filter((m) => m !== undefined).join('; ');
        this.#emit(source, 'refreshed', started, notes || undefined, { answerAt: extra.answerAt, persistedAt });
        return { token: this.#remember(source, next, settings), written };
      } catch (err) {
        lastError = err;
      }
      const delay = this.#persistRetryDelaysMs[attempt];
      if (delay === undefined) break;
      await sleep(delay);
      let latest: SourceRecord | undefined;
      try {
        latest = await this.#store.read(source);
      } catch {
        continue; // unreadable right now: retry on the version we have (the write is CAS)
      }
      if (!sameSecret(latest?.grant?.refreshToken, storedRefreshToken)) {
        // A login, an import, a logout, or a holder that broke in: the store's grant wins.
        this.#unsaved.delete(source);
        this.#emit(source, 'adopted', started, `the stored grant changed during the refresh; using the stored one (${describeError(lastError)})`);
        return { token: this.#remember(source, usableGrant(source, latest), settings) };
      }
      current = latest as SourceRecord;
    }
    const held: Unsaved = { storedRefreshToken, grant: next, refreshedAt, reason: describeError(lastError) };
    this.#unsaved.set(source, held);
    this.#emit(source, 'unsaved', started, this.#unsavedMessage(held), { answerAt: extra.answerAt });
    return { token: this.#remember(source, next, settings) };
  }

  #unsavedMessage(u: Unsaved): string {
    return `refreshed at the IdP, but the new grant could not be saved to ${this.#store.location} (${u.reason}); process ${process.pid} holds it in memory and keeps trying to save it`;
  }

  /**
   * Under the lock: writes the held grant over the store's record if that still holds the refresh
   * token it was rotated from (otherwise the store moved on and wins). Returns the record to work from.
   */
  async #saveUnsaved(source: string, rec: SourceRecord | undefined, started: number): Promise<SourceRecord | undefined> {
    const held = this.#unsaved.get(source);
    if (held === undefined) return rec;
    if (!rec?.grant || !sameSecret(rec.grant.refreshToken, held.storedRefreshToken)) {
      this.#unsaved.delete(source);
      this.#emit(source, 'adopted', started, 'the stored grant changed while a refreshed one waited to be saved; using the stored one');
      return rec;
    }
    try {
      const written = await this.#store.write(source, rotatedRecord(rec, held.grant, held.refreshedAt), rec.version);
      this.#unsaved.delete(source);
      this.#emit(source, 'saved', started);
      return written;
    } catch (err) {
      held.reason = describeError(err);
      return rec;
    }
  }

  /**
   * A refresh that did not produce a grant, per the table in src/oauth/token-answer.ts.
   *
   * A refusal of the refresh token (invalid_grant, an empty 400) is confirmed once before the
   * grant is marked revoked (issue 7 item 4): still under the lock, after a short pause, the
   * record is re-read; a newer refresh token there (a login or import that did not take the
   * lock) is adopted; the same one is sent once more. That cannot replay a token a sibling
   * rotated: every Latchkey refresh of this grant runs under this lock, so no sibling can have
   * rotated it since the re-read, and the IdP's refusal proves it did not consume the token.
   * A second refusal marks the grant revoked.
   *
   * Anything else fails open with the current token and cools down (longer when the IdP sent
   * Retry-After); when the token may have been consumed the record says so, and it is sent
   * again only after the cool-down, even by a forced refresh.
   */
  async #handleFailure(source: string, rec: SourceRecord, grant: StoredGrant, settings: OAuthClientSettings, err: RefreshError, started: number, attempt: Attempt): Promise<string> {
    if (err.kind === 'invalid_grant') {
      if (attempt !== 'confirming') {
        await sleep(this.#confirmRefusalDelayMs);
        const again = await this.#store.read(source).catch(() => rec);
        const latest = again?.grant;
        if (latest && latest.refreshToken && !latest.refreshToken.equals(rec.grant?.refreshToken)) {
          this.#unsaved.delete(source);
          this.#emit(source, 'adopted', started);
          return this.#remember(source, usableGrant(source, again), settings);
        }
        if (latest?.revoked) usableGrant(source, again); // someone marked it meanwhile: say so
        return this.#callTokenEndpoint(source, again ?? rec, grant, settings, started, 'confirming');
      }
      return this.#markRevoked(source, rec, grant, settings, err, started);
    }
    const now = this.#clock.now();
    // Transient or rejected: fail open with the current token and cool down (at least as long
    // as a Retry-After asks, within MAX_RETRY_AFTER_MS).
    const until = now + Math.max(this.#cooldownMs, Math.min(MAX_RETRY_AFTER_MS, err.retryAfterMs ?? 0));
    this.#cooldownUntil.set(source, until);
    const failure: FailureRecord = { at: now, kind: err.kind === 'rejected' ? 'rejected' : 'transient', message: err.message };
    if (err.consumed === 'maybe') failure.maybeConsumed = true;
    if (until > now + this.#cooldownMs) failure.until = until;
    await this.#store.write(source, { ...stripVersion(rec), lastFailure: failure }, rec.version).catch(() => undefined);
    this.#emit(source, err.kind === 'rejected' ? 'rejected' : 'fail_open', started, err.message);
    return this.#remember(source, grant, settings, until);
  }

  /** A confirmed refusal: the grant is marked revoked (nothing blanked) and the IdP not called again for it. */
  async #markRevoked(source: string, rec: SourceRecord, grant: StoredGrant, settings: OAuthClientSettings, err: RefreshError, started: number): Promise<string> {
    const now = this.#clock.now();
    // Re-read: if the stored refresh token changed, someone rotated it outside our lock
    // (e.g. a login): adopt theirs. Otherwise the grant is dead: say so, stop calling the IdP.
    // (Compared with what the store held under our lock: `grant` may be a held, unsaved one.)
    const again = await this.#store.read(source);
    const latest = again?.grant;
    if (latest && latest.refreshToken && !latest.refreshToken.equals(rec.grant?.refreshToken)) {
      this.#unsaved.delete(source);
      this.#emit(source, 'adopted', started);
      return this.#remember(source, usableGrant(source, again), settings);
    }
    this.#unsaved.delete(source);
    this.#memo.delete(source);
    this.#emit(source, 'invalid_grant', started, err.message);
    const revokedGrant: StoredGrant = { ...grant, revoked: { at: now, reason: 'invalid_grant' } };
    let unrecorded = '';
    try {
      await this.#store.write(source, { ...stripVersion(rec), grant: revokedGrant, lastFailure: { at: now, kind: 'invalid_grant', message: err.message } }, rec.version);
    } catch (writeErr) {
      unrecorded = `; recording that in the store failed too (${describeError(writeErr)})`;
    }
    throw new LatchkeyError('LK_GRANT_REVOKED', `the grant for "${source}" was revoked or expired at the IdP (${err.message})${unrecorded}`, {
      source,
      operatorAction: 'reauthorize',
    });
  }

  #remember(source: string, grant: StoredGrant, settings: OAuthClientSettings, until?: number): string {
    const token = grant.accessToken.reveal();
    const now = this.#clock.now();
    const due = refreshDueAt(grant, settings.skewMs);
    let refreshAt = until ?? (Number.isFinite(due) ? due : now + this.#unknownExpiryMemoMs);
    // A held, unsaved grant: come back soon to save it.
    if (this.#unsaved.has(source)) refreshAt = Math.min(refreshAt, now + this.#unsavedRetryMs);
    this.#memo.set(source, { refreshAt, token, promise: Promise.resolve(token) });
    return token;
  }

  #emit(source: string, outcome: RefreshOutcome, started: number, message?: string, timing?: { answerAt?: number; persistedAt?: number }): void {
    if (this.#onEvent === undefined) return;
    const event: EngineEvent = { source, outcome, durationMs: this.#clock.now() - started, ...(message ? { message } : {}) };
    if (timing?.answerAt !== undefined) event.answerAt = timing.answerAt;
    if (timing?.persistedAt !== undefined) event.persistedAt = timing.persistedAt;
    this.#onEvent(event);
  }
}

function stripVersion(rec: SourceRecord): Omit<SourceRecord, 'version'> {
  const { version: _version, ...rest } = rec;
  return rest;
}

/** `rec` with a refreshed grant in place, counted as a refresh, its failure cleared (or set to `failure`). */
function rotatedRecord(rec: SourceRecord, grant: StoredGrant, refreshedAt: number, failure?: FailureRecord): Omit<SourceRecord, 'version'> {
  // A failure recorded with the rotation is stamped after it, so that status reads it as current.
  return { ...stripVersion(rec), grant, lastRefreshAt: refreshedAt, refreshCount: (rec.refreshCount ?? 0) + 1, lastFailure: failure && { ...failure, at: Math.max(failure.at, refreshedAt + 1) } };
}

function sameSecret(a: Secret | undefined, b: Secret | undefined): boolean {
  return a === undefined ? b === undefined : a.equals(b);
}

/** A few words about why a store call failed (an errno name where there is one; never a token). */
function describeError(err: unknown): string {
  if (err instanceof LatchkeyError) {
    if (err.code === 'LK_STORE_CONFLICT') return 'the record changed underneath';
    const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
    return typeof code === 'string' ? code : err.message;
  }
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code ?? e?.message ?? String(err);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
