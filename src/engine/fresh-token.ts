import { setMaxListeners } from 'node:events';
import type { Clock } from '../core/clock.js';
import { LatchkeyError } from '../core/errors.js';
import { DEFAULT_TOKEN_TIMEOUT_MS } from '../oauth/refresh-error.js';
import type { FetchLike } from '../oauth/endpoint.js';
import type { SourceRecord, Store, StoredGrant, WithLockOptions } from '../store/store.js';
import { BoundedMap, DEFAULT_MAP_BOUND } from './bounded-map.js';
import { addLeadSample, leadOf, NO_LEAD_SAMPLES, refreshAheadAt, refreshDueAt, usableGrant, type LeadSamples } from './expiry.js';
import { coolingUntil, rotateGrant, SOURCE_POLICY, sourceSlot, unsavedMessage, type EngineEvent, type OAuthClientSettings, type RotationRequest, type SlotMemory, type Unsaved } from './rotation-core.js';

export { DEFAULT_SKEW_MS, effectiveSkewMs, expiresAtFrom, refreshAheadAt, refreshDueAt, usableGrant } from './expiry.js';
export type { EngineEvent, OAuthClientSettings, RefreshOutcome } from './rotation-core.js';

export interface TokenEngineOptions {
  store: Store;
  clock: Clock;
  fetch: FetchLike;
  /**
   * Opens the connection a token-endpoint request will use (src/net/lean-fetch.ts), called as a
   * refresh starts, before its lock: the connection (and TLS handshake) is made while the lock is
   * claimed and the record read, not after.
   */
  preconnect?: (tokenEndpoint: string) => void;
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
   * (outside the lock), re-read under it, and confirm once before marking the grant revoked
   * (default 1 s).
   */
  confirmRefusalDelayMs?: number;
  /**
   * How many sources' memo, flight and cool-down entries are kept (default 10,000): beyond it
   * the oldest are dropped (a dropped memo costs one store read; a held, unsaved grant is never
   * dropped).
   */
  maxEntries?: number;
}

const DEFAULT_COOLDOWN_MS = 30_000;
const DEFAULT_PERSIST_RETRY_DELAYS_MS = [100, 500, 1500] as const;
const DEFAULT_UNSAVED_RETRY_MS = 5_000;
const DEFAULT_CONFIRM_REFUSAL_DELAY_MS = 1_000;

/** What {@link TokenEngine.unsaved} reports about a held grant (never its tokens). */
export interface UnsavedInfo {
  refreshedAt: number;
  expiresAt: number | undefined;
  /** Why the store did not take it (an errno name such as ENOSPC, or the store's message). */
  reason: string;
  message: string;
}

/**
 * How far another machine's clock may be behind ours when {@link answeredWhileWaiting} compares
 * its refresh time with when our wait began (a clock further behind only costs a second refresh).
 */
const ANSWER_CLOCK_SLACK_MS = 1_000;

/**
 * Whether the record's grant came from a refresh answered after `waitStarted` (by the
 * refreshing process's clock, within {@link ANSWER_CLOCK_SLACK_MS}): the answer a waiter was
 * waiting for, as fresh as the IdP makes them, whatever its estimated expiry says.
 */
function answeredWhileWaiting(rec: SourceRecord | undefined, waitStarted: number): boolean {
  return rec?.lastRefreshAt !== undefined && rec.lastRefreshAt >= waitStarted - ANSWER_CLOCK_SLACK_MS;
}

/** A signal that aborts when either does, and how to let go of it (its listeners) once done. */
function eitherAborts(a: AbortSignal | undefined, b: AbortSignal): { signal: AbortSignal; dispose(): void } {
  if (a === undefined) return { signal: b, dispose: () => undefined };
  const both = new AbortController();
  const abort = (): void => both.abort();
  if (a.aborted || b.aborted) abort();
  a.addEventListener('abort', abort, { once: true });
  b.addEventListener('abort', abort, { once: true });
  return {
    signal: both.signal,
    dispose: () => {
      a.removeEventListener('abort', abort);
      b.removeEventListener('abort', abort);
    },
  };
}

/** When a plain refresh started, and when its locked unit was ready to send (its lead sample, {@link TokenEngine} #remember). */
interface RefreshTiming {
  started: number;
  readyAt?: number;
}

interface MemoEntry {
  /** The hot path compares against this and returns `promise` as is: no allocation, no I/O. */
  refreshAt: number;
  /**
   * Refresh ahead without waiting: from `refreshAt` until this moment (the grant's due time) the
   * token is still handed out at once while one flight refreshes it in the background (equal to
   * `refreshAt` when there is nothing to do ahead: unknown expiry, fail-open, a held grant).
   */
  serveUntil: number;
  promise: Promise<string>;
  token: string;
  /** The access token's expiry (undefined: unknown), for {@link TokenEngine.knownUnexpired}. */
  expiresAt: number | undefined;
  /** How long this source's recent refreshes took here (refreshAheadAt's lead), carried from entry to entry. */
  leads: LeadSamples;
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
  readonly #preconnect: ((tokenEndpoint: string) => void) | undefined;
  readonly #settings: (source: string) => Promise<OAuthClientSettings>;
  readonly #onEvent: ((event: EngineEvent) => void) | undefined;
  readonly #cooldownMs: number;
  readonly #tokenTimeoutMs: number;
  readonly #unknownExpiryMemoMs: number;
  readonly #persistRetryDelaysMs: readonly number[];
  readonly #unsavedRetryMs: number;
  readonly #confirmRefusalDelayMs: number;
  // Bounded (issue 9): a process that sees ever new sources (or, in the gateway, sessions) must
  // not grow without end. `get` is the plain Map's: the hot path pays nothing for the bound.
  readonly #memo: BoundedMap<string, MemoEntry>;
  readonly #flights: BoundedMap<string, Promise<string>>;
  /** What the rotation core reads and keeps: held grants (never evicted) and cool-downs (bounded). */
  readonly #memory: SlotMemory;
  /** Aborted by {@link flush}: flights still waiting for a lock stop waiting (they sent nothing). */
  readonly #closing = new AbortController();

  constructor(options: TokenEngineOptions) {
    this.#store = options.store;
    this.#clock = options.clock;
    this.#fetch = options.fetch;
    this.#preconnect = options.preconnect;
    this.#settings = options.settings;
    this.#onEvent = options.onEvent;
    this.#cooldownMs = options.cooldownMs ?? DEFAULT_COOLDOWN_MS;
    this.#tokenTimeoutMs = options.tokenTimeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
    this.#unknownExpiryMemoMs = options.unknownExpiryMemoMs ?? 300_000;
    this.#persistRetryDelaysMs = options.persistRetryDelaysMs ?? DEFAULT_PERSIST_RETRY_DELAYS_MS;
    this.#unsavedRetryMs = options.unsavedRetryMs ?? DEFAULT_UNSAVED_RETRY_MS;
    this.#confirmRefusalDelayMs = options.confirmRefusalDelayMs ?? DEFAULT_CONFIRM_REFUSAL_DELAY_MS;
    const bound = options.maxEntries ?? DEFAULT_MAP_BOUND;
    this.#memo = new BoundedMap(bound);
    this.#flights = new BoundedMap(bound);
    this.#memory = { held: new Map<string, Unsaved>(), cooldownUntil: new BoundedMap<string, number>(bound) };
    // Every flight waiting for a lock listens to it (a keeper waits for many at once): no leak warning.
    setMaxListeners(0, this.#closing.signal);
  }

  /**
   * A fresh access token. Hot path: one map lookup and one clock read. Half a skew before the
   * token is due (refreshAheadAt) this process starts its one refresh flight in the background
   * and goes on serving the token; only once it is due (skew before expiry) do callers wait for
   * that flight, as they always did.
   */
  token(source: string): Promise<string> {
    const m = this.#memo.get(source);
    if (m !== undefined && this.#clock.now() < m.refreshAt) return m.promise;
    return this.#dueToken(source, m);
  }

  /** token() once the memo is due or missing (kept out of the hot path's function body). */
  #dueToken(source: string, m: MemoEntry | undefined): Promise<string> {
    if (m !== undefined && this.#clock.now() < m.serveUntil) {
      this.#refreshAhead(source, m.token);
      return m.promise;
    }
    return this.#join(source, () => this.#slowToken(source));
  }

  /**
   * Starts this process's flight for `source` unless one is running. Its outcome reaches
   * callers through the memo (#remember) or, on failure, through the next call that waits for
   * it; nothing is left unhandled here.
   */
  #refreshAhead(source: string, served: string): void {
    if (this.#flights.get(source) !== undefined) return;
    this.#join(source, () => this.#aheadFlight(source, served)).catch(() => undefined);
  }

  /**
   * The flight of a refresh-ahead: straight to the lock, without #slowToken's unlocked read
   * (the memo already says the grant is in its ahead window; the locked unit re-reads, adopts a sibling's
   * rotation, and it decides cool-downs and revocation). The read would cost a round trip while
   * the process is busiest, serving callers, and delay the refresh that keeps them from waiting.
   */
  async #aheadFlight(source: string, served: string): Promise<string> {
    const settings = await this.#settings(source);
    if (this.#memory.held.has(source)) return this.#refreshUnderLock(source, {});
    return this.#refreshOrAdopt(source, settings, served);
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
      this.#memory.cooldownUntil.clear();
      this.#memory.held.clear();
    } else {
      this.#memo.delete(source);
      this.#memory.cooldownUntil.delete(source);
      this.#memory.held.delete(source);
    }
  }

  /**
   * Whether `token` is the one this engine last handed out for `source` and is known not to have
   * expired (no I/O): callers that warn about an expired token need not read the store then.
   */
  knownUnexpired(source: string, token: string): boolean {
    const m = this.#memo.get(source);
    return m !== undefined && m.token === token && (m.expiresAt === undefined || this.#clock.now() < m.expiresAt);
  }

  /** A refreshed grant this process holds because the store could not be written, if any. */
  unsaved(source: string): UnsavedInfo | undefined {
    const u = this.#memory.held.get(source);
    return u && { refreshedAt: u.refreshedAt, expiresAt: u.grant.expiresAt, reason: u.reason, message: unsavedMessage(this.#store, u) };
  }

  /**
   * Before the store closes (e.g. the process exits): lets every flight past its lock finish (a
   * refresh ahead that nobody awaits may already have rotated at the IdP, and must save what it
   * got), stops those still waiting for a lock (they sent nothing; their callers get
   * LK_LOCK_TIMEOUT), then tries once more to save every held grant.
   */
  async flush(): Promise<void> {
    this.#closing.abort();
    while (this.#flights.size > 0) await Promise.allSettled([...this.#flights.values()]);
    for (const source of [...this.#memory.held.keys()]) {
      await this.#refreshUnderLock(source, { saveOnly: true }).catch(() => undefined);
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
    if (this.#memory.held.has(source)) return this.#refreshUnderLock(source, {});
    const rec = await this.#store.read(source);
    const grant = usableGrant(source, rec);
    const now = this.#clock.now();
    if (now < refreshDueAt(grant, settings.skewMs)) return this.#remember(source, grant, settings);
    const cooling = this.#coolingUntil(source, rec, now);
    if (cooling !== undefined) {
      // Fail open: the stale token is still the best we have; the API will say if it is dead.
      return this.#remember(source, grant, settings, cooling);
    }
    // The read above is not repeated for the decision: the locked unit re-reads (it must).
    return this.#refreshOrAdopt(source, settings, grant.accessToken.reveal());
  }

  /**
   * A plain (not forced) refresh: under the lock; but while another holder has the lock (a
   * process of another machine refreshing the same grant), each time the store is about to try
   * again (a poll, or at once when it hears the holder's release) the record is read, unlocked,
   * and if it holds another, unexpired grant than the one read before (the holder's result: what
   * a store lets read is durable, committed or renamed), that grant is served and the wait stops.
   * Unexpired, not necessarily "fresh": with a short lifetime and a slow IdP a new token can be
   * due for refresh-ahead by the time it is committed, and it is still the one to serve (the next
   * call refreshes it, once). Even one whose estimated expiry has passed is served when its
   * refresh was answered while this call waited ({@link answeredWhileWaiting}): an IdP slower than
   * the token's lifetime makes the estimate (counted from when the request was sent) pass before
   * the answer arrives, and the holder serves that answer to its own callers; its siblings
   * waited for the same answer and get it too, instead of a second refresh. Without this, every
   * process of a fleet would take the lock in turn after the holder only to adopt its rotation.
   * Nothing is sent to the IdP from here; a forced refresh (401, keeper) never uses it.
   */
  async #refreshOrAdopt(source: string, settings: OAuthClientSettings, seen: string): Promise<string> {
    const stop = new AbortController();
    const started = this.#clock.now();
    let adopted: string | undefined;
    const whileWaiting = async (): Promise<boolean> => {
      const rec = await this.#store.read(source).catch(() => undefined);
      const g = rec?.grant;
      if (g === undefined || g.revoked !== undefined || g.accessToken.reveal() === seen) return false;
      if (g.expiresAt !== undefined && this.#clock.now() >= g.expiresAt && !answeredWhileWaiting(rec, started)) return false;
      adopted = this.#remember(source, g, settings);
      this.#onEvent?.({ source, outcome: 'adopted', durationMs: this.#clock.now() - started, message: 'served the rotation another process committed while it held the lock' });
      stop.abort();
      return true;
    };
    try {
      const leadMs = leadOf(this.#memo.get(source)?.leads ?? NO_LEAD_SAMPLES);
      const timing: RefreshTiming = { started };
      const onReady = (at: number): void => {
        timing.readyAt = at;
      };
      return await this.#refreshUnderLock(source, { replacing: seen, leadMs, onReady }, { whileWaiting, signal: stop.signal }, timing);
    } catch (err) {
      if (adopted !== undefined) return adopted;
      throw err;
    }
  }

  #coolingUntil(source: string, rec: SourceRecord | undefined, now: number): number | undefined {
    return coolingUntil(this.#memory, this.#cooldownMs, source, rec, now);
  }

  /**
   * The locked protocol (src/engine/rotation-core.ts) for this source, with the operator's
   * policy (fail open). The memo is filled only once the rotation resolved, that is, once what
   * it wrote is durable: never from inside the lock.
   */
  async #refreshUnderLock(source: string, request: RotationRequest, lockOptions: WithLockOptions = {}, refreshing?: RefreshTiming): Promise<string> {
    const settings = await this.#settings(source);
    // Closing: a flight that has not got the lock yet stops waiting for it (nothing was sent);
    // the save of a held grant, the last thing close does, is never stopped.
    const closing = request.saveOnly ? undefined : eitherAborts(lockOptions.signal, this.#closing.signal);
    if (closing !== undefined) lockOptions = { ...lockOptions, signal: closing.signal };
    if (!request.saveOnly && settings.tokenEndpoint !== undefined) this.#preconnect?.(settings.tokenEndpoint);
    let served;
    try {
      served = await rotateGrant(
        {
          store: this.#store,
          clock: this.#clock,
          fetch: this.#fetch,
          tokenTimeoutMs: this.#tokenTimeoutMs,
          cooldownMs: this.#cooldownMs,
          persistRetryDelaysMs: this.#persistRetryDelaysMs,
          confirmRefusalDelayMs: this.#confirmRefusalDelayMs,
          memory: this.#memory,
          policy: SOURCE_POLICY,
          emit: (e) => this.#onEvent?.(e),
          lockOptions,
        },
        sourceSlot(source, settings),
        request,
      );
    } catch (err) {
      if (err instanceof LatchkeyError && err.code === 'LK_GRANT_REVOKED') this.#memo.delete(source);
      throw err;
    } finally {
      closing?.dispose();
    }
    return this.#remember(source, served.grant, settings, served.until, refreshing);
  }

  /**
   * Memoises `grant` for the hot path. `refreshing`: this came from a plain refresh; when its unit
   * got ready to send the refresh token (and no fail-open came of it), the time that took is a
   * lead sample for the next refresh ahead.
   */
  #remember(source: string, grant: StoredGrant, settings: OAuthClientSettings, until?: number, refreshing?: RefreshTiming): string {
    const token = grant.accessToken.reveal();
    const now = this.#clock.now();
    let leads = this.#memo.get(source)?.leads ?? NO_LEAD_SAMPLES;
    if (refreshing?.readyAt !== undefined && until === undefined) leads = addLeadSample(leads, refreshing.readyAt - refreshing.started);
    const due = refreshDueAt(grant, settings.skewMs);
    let refreshAt = until ?? (Number.isFinite(due) ? due : now + this.#unknownExpiryMemoMs);
    // A held, unsaved grant: come back soon to save it.
    const held = this.#memory.held.has(source);
    if (held) refreshAt = Math.min(refreshAt, now + this.#unsavedRetryMs);
    // Refreshing ahead is for a plain grant only: a fail-open (until) or held grant already says
    // when to come back.
    const serveUntil = refreshAt;
    if (until === undefined && !held && Number.isFinite(due)) refreshAt = Math.min(refreshAt, refreshAheadAt(grant, settings.skewMs, leadOf(leads)));
    this.#memo.set(source, { refreshAt, serveUntil, token, promise: Promise.resolve(token), expiresAt: grant.expiresAt, leads });
    return token;
  }
}
