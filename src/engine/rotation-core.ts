import type { Clock } from '../core/clock.js';
import { ExitCode, LatchkeyError } from '../core/errors.js';
import { RefreshError } from '../oauth/refresh-error.js';
import type { ClientAuthMethod } from '../oauth/client-auth.js';
import type { FetchLike } from '../oauth/endpoint.js';
import type { RefreshAnswer } from '../oauth/refresh.js';
import { MAX_RETRY_AFTER_MS } from '../oauth/token-answer.js';
import type { Secret } from '../core/secret.js';
import type { FailureRecord, SourceRecord, SourceRecordInput, Store, StoredGrant, StoreTx, WithLockOptions } from '../store/store.js';
import { expiresAtOf, MAX_LEAD_MS, refreshAheadAt, refreshDueAt, usableGrant } from './expiry.js';

/** src/oauth/refresh.js once a refresh has loaded it. */
let refreshModule: typeof import('../oauth/refresh.js') | undefined;

/**
 * The locked rotation of one grant (the heart of DESIGN.md's refresh protocol), written once
 * for every caller: the per-source {@link TokenEngine} now, the gateway per session next.
 *
 * One call of {@link rotateGrant} runs one or more *locked units*, each a `store.withLock` of the
 * slot's key: re-read; adopt what a sibling rotated; otherwise call the token endpoint with the
 * refresh token just re-read; persist; classify the answer per src/oauth/token-answer.ts. What a
 * unit produced (the grant to serve, the events) is handed out only after `withLock` resolved,
 * that is, after it is durable (renamed and fsync'd / committed), never from inside the lock.
 *
 * Store contract v2 rules each unit keeps: at most one write on the success path, and no pause
 * before the first write. A second request needs a second unit:
 * - the confirmation of a refusal (invalid_grant) waits *outside* the lock and re-reads under a
 *   new one, so it sends the refused token again only if nobody (no sibling, no login) wrote a
 *   newer one or recorded a failure meanwhile (see "A refusal is confirmed once" in docs/DESIGN.md);
 * - a rotation with an unusable answer saves the new refresh token (durable when its unit ends)
 *   and refreshes with it in the next unit.
 * Only after a *failed* first write does a unit pause and retry (the rotated refresh token is then
 * the only live copy, and the store still holds the consumed one: the lock must not be let go).
 */

/** The OAuth client settings needed to refresh one grant (from config, falling back to the grant). */
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
   * answer arrived and when the locked unit that wrote it resolved (renamed and fsync'd /
   * committed). A crash between the two loses the rotated refresh token: the window the bench
   * measures.
   */
  answerAt?: number;
  persistedAt?: number;
}

/** A refreshed grant the store could not take (yet): the only copy of a rotated refresh token. */
export interface Unsaved {
  /** The refresh token the store holds, the one this grant was rotated from: saved only over it. */
  storedRefreshToken: Secret | undefined;
  grant: StoredGrant;
  refreshedAt: number;
  /** Why the last attempt to save it failed. */
  reason: string;
}

/**
 * Where a grant lives: the key whose lock serialises its rotation, and its record read and
 * written through that lock's transaction. `name` names it in messages and events (a source).
 */
export interface GrantSlot {
  key: string;
  name: string;
  settings: OAuthClientSettings;
  read(tx: StoreTx): Promise<SourceRecord | undefined>;
  write(tx: StoreTx, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord>;
  /**
   * The record read without the lock (when the lock could not be had in time). Absent: the
   * store's source record under `key` (a configured source's slot).
   */
  readUnlocked?(): Promise<SourceRecord | undefined>;
}

/** The slot of a configured source: its record in the store's sources, under its own key. */
export function sourceSlot(source: string, settings: OAuthClientSettings): GrantSlot {
  return { key: source, name: source, settings, read: (tx) => tx.read(source), write: (tx, record, version) => tx.write(source, record, version) };
}

/** What the caller decides; the protocol (what may be sent when) is not negotiable. */
export interface RotationPolicy {
  /**
   * A failure that leaves the current access token in place (network, 5xx, a refused client, a
   * cool-down, a lock held too long): `always` serves it anyway (the operator's sources: the API
   * will say if it is dead); `while_valid` serves it only until it expires and throws after
   * (the gateway: never hand a user an expired token).
   */
  failOpen: 'always' | 'while_valid';
}

export const SOURCE_POLICY: RotationPolicy = { failOpen: 'always' };
export const SESSION_POLICY: RotationPolicy = { failOpen: 'while_valid' };

/** The caller's memory the protocol reads and keeps up to date (per key). */
export interface SlotMemory {
  /** Refreshed grants the store did not take yet. Never bounded: each is the only copy of a token. */
  readonly held: Map<string, Unsaved>;
  /** This process's own cool-downs (the store's are read from the record). */
  readonly cooldownUntil: Map<string, number>;
}

export interface RotationDeps {
  store: Store;
  clock: Clock;
  fetch: FetchLike;
  tokenTimeoutMs: number;
  cooldownMs: number;
  persistRetryDelaysMs: readonly number[];
  confirmRefusalDelayMs: number;
  memory: SlotMemory;
  policy: RotationPolicy;
  emit(event: EngineEvent): void;
  /** Passed to every `withLock` (a waiter that watches for the holder's result, and may stop waiting). */
  lockOptions?: WithLockOptions;
}

export interface RotationRequest {
  /** The API refused this access token (a 401): get a different one. */
  rejected?: string;
  /** Refresh even when not due (the keeper's refresh-ahead and daily touch). */
  force?: boolean;
  /** Only save a held (unsaved) grant, never call the IdP (before the process exits). */
  saveOnly?: boolean;
  /**
   * The access token this flight's callers hold (a plain refresh). While the stored grant still
   * holds it, it is refreshed from half a skew before it is due (refreshAheadAt: the flight was
   * started ahead, its callers are served meanwhile); a sibling's rotation to any other token is
   * served as long as it is not due, as always (the next caller refreshes it ahead), rather than
   * refreshed again because it is itself in its ahead window.
   */
  replacing?: string;
  /**
   * With `replacing`: the lead its ahead time was computed with (refreshAheadAt), so the unit
   * agrees with the memo. A refresh prepared by the lead waits, under the lock, for the grant's
   * own ahead time before it sends the refresh token.
   */
  leadMs?: number;
  /** Told when the unit is ready to send the refresh token (before any such wait): the engine's lead sample. */
  onReady?: (at: number) => void;
}

/** The grant to hand out, and until when it may be (a cool-down), once the work is durable. */
export interface Served {
  grant: StoredGrant;
  until?: number;
}

/**
 * Which locked unit this is: the first; the confirmation of a refusal (same refresh token, sent
 * again because the IdP said it did not accept it); or the refresh with the new refresh token of
 * an unusable rotation (never sent before).
 */
type Attempt = 'first' | 'confirming' | 'after_unusable_rotation';

type UnitResult =
  | { kind: 'serve'; served: Served }
  /** The IdP refused; confirm in a new unit after the pause. `refused`: the record it was refused on. */
  | { kind: 'confirm'; refused: SourceRecord; grant: StoredGrant }
  /** Run another unit: a held grant was saved first, or an unusable rotation's refresh token was. */
  | { kind: 'again'; attempt: 'first' | 'after_unusable_rotation' };

/**
 * Until when `key` cools down after a transient or rejected refresh: this process's own
 * failure, or one any process recorded in the store (so a `latchkey token` per job, each a new
 * process, does not call a failing IdP and wait out its timeout every time).
 */
export function coolingUntil(memory: SlotMemory, cooldownMs: number, key: string, rec: SourceRecord | undefined, now: number): number | undefined {
  let until = memory.cooldownUntil.get(key);
  const f = rec?.lastFailure;
  if (f && f.kind !== 'invalid_grant' && f.at > (rec?.lastRefreshAt ?? 0)) {
    // A failure stamped in the future (another clock) cools down from now, not longer; a
    // Retry-After (`until`) at most MAX_RETRY_AFTER_MS from now.
    const persisted = Math.max(Math.min(f.at, now) + cooldownMs, Math.min(f.until ?? 0, now + MAX_RETRY_AFTER_MS));
    if (until === undefined || persisted > until) until = persisted;
  }
  return until !== undefined && now < until ? until : undefined;
}

/**
 * Runs the locked protocol for one grant until it has a grant to serve (or a definitive error),
 * emitting each unit's events once that unit's work is durable.
 */
export async function rotateGrant(deps: RotationDeps, slot: GrantSlot, request: RotationRequest): Promise<Served> {
  const started = deps.clock.now();
  const run = new Rotation(deps, slot, request, started);
  let next: { attempt: Attempt; refused?: SourceRecord; grant?: StoredGrant } = { attempt: 'first' };
  for (let units = 0; ; units++) {
    let result: UnitResult;
    try {
      result = await deps.store.withLock(slot.key, (tx) => run.unit(tx, next.attempt, next.refused, next.grant), deps.lockOptions);
    } catch (err) {
      // The caller stopped waiting (it served what the holder wrote): nothing happened here.
      if (deps.lockOptions?.signal?.aborted && err instanceof LatchkeyError && err.code === 'LK_LOCK_TIMEOUT') throw err;
      if (err instanceof LatchkeyError && err.code === 'LK_LOCK_TIMEOUT') {
        run.publish();
        return run.lockTimedOut(err);
      }
      // The unit wrote a rotation but its work did not become durable (a commit that failed):
      // the IdP has rotated, so the new grant is the only live copy. It is held like a save that
      // failed ("A rotation the store cannot save" in the README), never dropped.
      const held = run.uncommitted(err);
      run.publish();
      if (held !== undefined) return held;
      throw err;
    }
    // Durable now: what the unit wrote may be handed out.
    run.publish();
    if (result.kind === 'serve') return result.served;
    if (units >= 4) {
      // Never expected (each unit moves the protocol on); a bound so that a store that keeps
      // changing underneath cannot spin us forever.
      throw new LatchkeyError('LK_REFRESH_FAILED', `the refresh of "${slot.name}" did not settle (the stored grant kept changing)`, { source: slot.name });
    }
    if (result.kind === 'confirm') {
      // Outside the lock: siblings are not kept waiting, and whatever they write meanwhile is
      // read under the next lock before the refused token is sent again.
      await sleep(deps.confirmRefusalDelayMs);
      next = { attempt: 'confirming', refused: result.refused, grant: result.grant };
    } else {
      next = { attempt: result.attempt };
    }
  }
}

/** One call of {@link rotateGrant}: its units, and the events they produced not yet published. */
class Rotation {
  readonly #d: RotationDeps;
  readonly #slot: GrantSlot;
  readonly #req: RotationRequest;
  readonly #started: number;
  #pending: EngineEvent[] = [];
  /** A rotation this unit wrote, until the unit is durable. */
  #written: Unsaved | undefined;

  constructor(deps: RotationDeps, slot: GrantSlot, request: RotationRequest, started: number) {
    this.#d = deps;
    this.#slot = slot;
    this.#req = request;
    this.#started = started;
  }

  get #key(): string {
    return this.#slot.key;
  }

  /** Emits the events of the unit that just ended (its writes are durable by now). */
  publish(): void {
    const events = this.#pending;
    this.#pending = [];
    this.#written = undefined;
    const durableAt = performance.now();
    for (const e of events) {
      if (e.answerAt !== undefined && e.outcome === 'refreshed') e.persistedAt = durableAt;
      this.#d.emit(e);
    }
  }

  /**
   * After a unit failed as a whole (its `withLock` rejected): if it had written a rotation, that
   * rotation is held in memory (reported `unsaved`) and served; otherwise nothing to serve.
   */
  uncommitted(err: unknown): Served | undefined {
    const written = this.#written;
    if (written === undefined) return undefined;
    const held: Unsaved = { ...written, reason: describeError(err) };
    this.#d.memory.held.set(this.#key, held);
    this.#pending = this.#pending.filter((e) => e.outcome !== 'refreshed');
    this.#event('unsaved', unsavedMessage(this.#d.store, held));
    return { grant: held.grant };
  }

  /** Someone holds the lock far too long: fail open rather than replay their refresh token. */
  async lockTimedOut(err: LatchkeyError): Promise<Served> {
    const d = this.#d;
    const grant = d.memory.held.get(this.#key)?.grant ?? usableGrant(this.#slot.name, await (this.#slot.readUnlocked ? this.#slot.readUnlocked() : d.store.read(this.#key)));
    this.#event('fail_open', err.message);
    this.publish();
    const now = d.clock.now();
    // The holder may have finished just now: a fresh grant is served as usual.
    return this.#failOpen(grant, now < refreshDueAt(grant, this.#slot.settings.skewMs) ? undefined : now + d.cooldownMs, err);
  }

  async unit(tx: StoreTx, attempt: Attempt, refused?: SourceRecord, refusedGrant?: StoredGrant): Promise<UnitResult> {
    if (attempt === 'confirming') return this.#confirmUnit(tx, refused as SourceRecord, refusedGrant as StoredGrant);
    const d = this.#d;
    const key = this.#key;
    const settings = this.#slot.settings;
    const opts = this.#req;
    let rec = await this.#slot.read(tx);
    let wrote = false;
    if (d.memory.held.has(key)) {
      const saved = await this.#saveUnsaved(tx, rec);
      wrote = saved !== rec;
      rec = saved;
    }
    // Still held: the store cannot be written; the held grant is the newest, work from it.
    const held = d.memory.held.get(key);
    const grant = held?.grant ?? usableGrant(this.#slot.name, rec);
    const record = rec as SourceRecord;
    const now = d.clock.now();
    if (opts.saveOnly) return serve(grant);
    if (attempt === 'after_unusable_rotation') {
      // The new refresh token of an unusable rotation was saved by the previous unit: refresh
      // with it now, unless someone else already did (the stored grant is fresh again).
      if (!held && now < refreshDueAt(grant, settings.skewMs)) {
        this.#event('adopted');
        return serve(grant);
      }
      return this.#callTokenEndpoint(tx, record, grant, 'after_unusable_rotation');
    }
    const current = grant.accessToken.reveal();
    // Double-check under the lock: another thread, process or machine may have rotated.
    const refreshFrom = opts.replacing !== undefined && current === opts.replacing ? refreshAheadAt(grant, settings.skewMs, opts.leadMs) : refreshDueAt(grant, settings.skewMs);
    if (opts.rejected !== undefined ? current !== opts.rejected : !opts.force && now < refreshFrom) {
      if (!held && !wrote) this.#event('adopted');
      return serve(grant);
    }
    // A refresh failed moments ago (transiently, or the client was refused), here or in a
    // sibling we queued behind on the lock: calling the IdP again would only wait out the
    // same failure. Fail open until the cool-down ends (the keeper's refreshNow still tries,
    // except after a failure that may have consumed the refresh token: that one is sent
    // again only once the cool-down has passed, by anyone).
    if (!opts.force || rec?.lastFailure?.maybeConsumed) {
      const cooling = coolingUntil(d.memory, d.cooldownMs, key, rec, now);
      if (cooling !== undefined) return serve(this.#failOpen(grant, cooling));
    }
    // After a failure that may have consumed the refresh token, sending it again risks the
    // IdP's reuse detection revoking the grant, and with it the access token still in use:
    // a refresh-ahead (forced, not due) waits until the access token is due anyway.
    const f = rec?.lastFailure;
    if (opts.force && f?.maybeConsumed && f.at > (rec?.lastRefreshAt ?? 0) && now < refreshDueAt(grant, settings.skewMs)) {
      return serve(grant);
    }
    if (!grant.refreshToken) {
      if (opts.rejected !== undefined || (grant.expiresAt !== undefined && now >= grant.expiresAt)) {
        throw new LatchkeyError('LK_GRANT_INVALID', `the grant for "${this.#slot.name}" has no refresh token and its access token is no longer accepted`, {
          source: this.#slot.name,
          operatorAction: 'relogin',
          exitCode: ExitCode.actionRequired,
        });
      }
      return serve(grant);
    }
    // A held grant was just saved (this unit's one write): the refresh goes in a unit of its own.
    if (wrote) return { kind: 'again', attempt: 'first' };
    if (opts.replacing !== undefined && current === opts.replacing && !held) {
      opts.onReady?.(now);
      // Prepared ahead by the lead (the lock taken, the record read, the connection opening): the
      // refresh token goes at the grant's own ahead time, not before, so the lead adds no refresh
      // at the IdP. Closing stops the wait; nothing was sent.
      const sendFrom = refreshAheadAt(grant, settings.skewMs);
      if (now < sendFrom && !(await untilOrAborted(sendFrom - now, d.lockOptions?.signal))) return serve(grant);
    }
    return this.#callTokenEndpoint(tx, record, grant, 'first');
  }

  /**
   * The second unit of a refusal: re-read under the lock; a newer refresh token there (a sibling
   * rotated, a login or an import wrote) is adopted; a failure a sibling recorded meanwhile cools
   * down as usual; otherwise the same refresh token is sent once more.
   */
  async #confirmUnit(tx: StoreTx, refused: SourceRecord, grant: StoredGrant): Promise<UnitResult> {
    const d = this.#d;
    const again = await this.#slot.read(tx).catch(() => refused);
    const latest = again?.grant;
    if (latest && latest.refreshToken && !latest.refreshToken.equals(refused.grant?.refreshToken)) {
      d.memory.held.delete(this.#key);
      this.#event('adopted');
      return serve(usableGrant(this.#slot.name, again));
    }
    if (latest?.revoked) usableGrant(this.#slot.name, again); // someone marked it meanwhile: say so
    const now = d.clock.now();
    const cooling = coolingUntil(d.memory, d.cooldownMs, this.#key, again, now);
    if (cooling !== undefined) return serve(this.#failOpen(grant, cooling));
    return this.#callTokenEndpoint(tx, again ?? refused, grant, 'confirming');
  }

  async #callTokenEndpoint(tx: StoreTx, rec: SourceRecord, grant: StoredGrant, attempt: Attempt): Promise<UnitResult> {
    const d = this.#d;
    const settings = this.#slot.settings;
    const source = this.#slot.name;
    const tokenEndpoint = settings.tokenEndpoint ?? grant.tokenEndpoint;
    const clientId = settings.clientId ?? grant.clientId;
    if (!tokenEndpoint || !clientId) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `source "${source}" has no token endpoint or client id to refresh with`, { source, operatorAction: 'fix_config' });
    }
    const refreshToken = grant.refreshToken as Secret;
    const clientSecret = settings.clientSecret ?? (settings.resolveClientSecret ? await settings.resolveClientSecret() : undefined);
    // Loaded on first refresh (the hot path and `latchkey token` on a fresh grant never need it),
    // then kept: a refresh in a busy process does not wait a turn of the loop for it again.
    const { refreshTokenGrant } = refreshModule ?? (refreshModule = await import('../oauth/refresh.js'));
    // The token's lifetime runs from when the IdP issued it: no later than this moment.
    const requestedAt = d.clock.now();
    let result: RefreshAnswer;
    try {
      result = await refreshTokenGrant(
        {
          tokenEndpoint,
          issuer: settings.issuer ?? grant.issuer,
          clientId,
          clientSecret,
          clientAuth: settings.clientAuth,
          fetch: d.fetch,
          timeoutMs: d.tokenTimeoutMs,
          now: () => d.clock.now(),
        },
        refreshToken,
      );
    } catch (err) {
      if (!(err instanceof RefreshError)) throw err;
      return this.#handleFailure(tx, rec, grant, err, attempt);
    }
    // From here to the store's rename is the crash window (a crash loses the rotated token):
    // nothing in it reads, sleeps or retries before the first write.
    const now = d.clock.now();
    const warnings = result.warnings.length ? result.warnings.join('; ') : undefined;
    if (result.answer === 'rotation_unusable') {
      // The IdP rotated (the new refresh token is in the answer) but the rest is unusable: the
      // new refresh token is the only live one; persist it first, with the access token marked
      // expired, then (next unit) refresh once with it: it has never been sent, sending it is safe.
      const next: StoredGrant = { ...grant, refreshToken: result.refreshToken, expiresAt: Math.min(grant.expiresAt ?? requestedAt, requestedAt), tokenEndpoint, clientId };
      delete next.revoked;
      const message = `the IdP rotated the refresh token but the rest of its answer is unusable (${result.problem}); the new refresh token was saved`;
      const failure: FailureRecord | undefined = attempt === 'after_unusable_rotation' ? { at: now, kind: 'transient', message } : undefined;
      const saved = await this.#persistRotation(tx, rec, next, now, { answerAt: result.receivedAt, message, failure });
      if (failure !== undefined) {
        d.memory.cooldownUntil.set(this.#key, now + d.cooldownMs);
        return serve(this.#failOpen(next, now + d.cooldownMs));
      }
      if (saved.written === undefined) return serve(saved.grant);
      return { kind: 'again', attempt: 'after_unusable_rotation' };
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
    return serve((await this.#persistRotation(tx, rec, next, now, { answerAt: result.receivedAt, message: warnings })).grant);
  }

  /**
   * Persists a refreshed grant before anyone sees it. The IdP has already rotated the refresh
   * token: from here the new grant is the only live copy, and it must never be dropped silently.
   *
   * The first write is attempted at once (the crash window ends with its rename). A failed write
   * is retried under the lock (with the record re-read: a conflict means the record changed,
   * possible only if the lock was lost or the file was edited by hand; it is merged when the
   * store still holds the refresh token we rotated from, and otherwise the store has moved on to
   * another grant and wins). When the store still cannot be written (disk full), this process
   * holds the new grant in memory: it serves its access token, refreshes from its refresh token
   * (never replaying the consumed one in the store), retries the save every few seconds, and
   * reports `unsaved` (event, `status`, the CLI's stderr) until it is saved. `written` is the
   * record written, when it was.
   */
  async #persistRotation(
    tx: StoreTx,
    rec: SourceRecord,
    next: StoredGrant,
    refreshedAt: number,
    extra: { answerAt?: number; message?: string; failure?: FailureRecord } = {},
  ): Promise<{ grant: StoredGrant; written?: SourceRecord }> {
    const d = this.#d;
    const key = this.#key;
    const storedRefreshToken = rec.grant?.refreshToken;
    let current = rec;
    let lastError: unknown;
    for (let attempt = 0; ; attempt++) {
      try {
        const written = await this.#slot.write(tx, rotatedRecord(current, next, refreshedAt, extra.failure), current.version);
        this.#written = { storedRefreshToken, grant: next, refreshedAt, reason: '' };
        d.memory.held.delete(key);
        if (extra.failure === undefined) d.memory.cooldownUntil.delete(key);
        const notes = [extra.message, attempt > 0 ? `saved at attempt ${attempt + 1} (${describeError(lastError)})` : undefined].filter((m) => m !== undefined).join('; ');
        this.#event('refreshed', notes || undefined, extra.answerAt);
        return { grant: next, written };
      } catch (err) {
        lastError = err;
      }
      // Only after a failed write: the rotated token must not be lost, and the store still holds
      // the consumed one, so the lock is kept while we retry.
      const delay = d.persistRetryDelaysMs[attempt];
      if (delay === undefined) break;
      await sleep(delay);
      let latest: SourceRecord | undefined;
      try {
        latest = await this.#slot.read(tx);
      } catch {
        continue; // unreadable right now: retry on the version we have (the write is CAS)
      }
      if (!sameSecret(latest?.grant?.refreshToken, storedRefreshToken)) {
        // A login, an import, a logout, or a holder that broke in: the store's grant wins.
        d.memory.held.delete(key);
        this.#event('adopted', `the stored grant changed during the refresh; using the stored one (${describeError(lastError)})`);
        return { grant: usableGrant(this.#slot.name, latest) };
      }
      current = latest as SourceRecord;
    }
    const held: Unsaved = { storedRefreshToken, grant: next, refreshedAt, reason: describeError(lastError) };
    d.memory.held.set(key, held);
    this.#event('unsaved', unsavedMessage(d.store, held), extra.answerAt);
    return { grant: next };
  }

  /**
   * Writes the held grant over the store's record if that still holds the refresh token it was
   * rotated from (otherwise the store moved on and wins). Returns the record to work from: the
   * one written, or `rec` as it was.
   */
  async #saveUnsaved(tx: StoreTx, rec: SourceRecord | undefined): Promise<SourceRecord | undefined> {
    const d = this.#d;
    const held = d.memory.held.get(this.#key);
    if (held === undefined) return rec;
    if (!rec?.grant || !sameSecret(rec.grant.refreshToken, held.storedRefreshToken)) {
      d.memory.held.delete(this.#key);
      this.#event('adopted', 'the stored grant changed while a refreshed one waited to be saved; using the stored one');
      return rec;
    }
    try {
      const written = await this.#slot.write(tx, rotatedRecord(rec, held.grant, held.refreshedAt), rec.version);
      d.memory.held.delete(this.#key);
      this.#event('saved');
      return written;
    } catch (err) {
      held.reason = describeError(err);
      return rec;
    }
  }

  /**
   * A refresh that did not produce a grant, per the table in src/oauth/token-answer.ts.
   *
   * A first refusal of the refresh token (invalid_grant, an empty 400) ends this unit with no
   * write; {@link rotateGrant} confirms it in a new one. A second refusal marks the grant revoked.
   * Anything else fails open with the current token and cools down (longer when the IdP sent
   * Retry-After); when the token may have been consumed the record says so, and it is sent
   * again only after the cool-down, even by a forced refresh.
   */
  async #handleFailure(tx: StoreTx, rec: SourceRecord, grant: StoredGrant, err: RefreshError, attempt: Attempt): Promise<UnitResult> {
    const d = this.#d;
    if (err.kind === 'invalid_grant') {
      if (attempt !== 'confirming') return { kind: 'confirm', refused: rec, grant };
      return this.#markRevoked(tx, rec, grant, err);
    }
    const now = d.clock.now();
    const until = now + Math.max(d.cooldownMs, Math.min(MAX_RETRY_AFTER_MS, err.retryAfterMs ?? 0));
    d.memory.cooldownUntil.set(this.#key, until);
    const failure: FailureRecord = { at: now, kind: err.kind === 'rejected' ? 'rejected' : 'transient', message: err.message };
    if (err.consumed === 'maybe') failure.maybeConsumed = true;
    if (until > now + d.cooldownMs) failure.until = until;
    await this.#slot.write(tx, { ...stripVersion(rec), lastFailure: failure }, rec.version).catch(() => undefined);
    this.#event(err.kind === 'rejected' ? 'rejected' : 'fail_open', err.message);
    return serve(this.#failOpen(grant, until, err));
  }

  /** A confirmed refusal: the grant is marked revoked (nothing blanked) and the IdP not called again for it. */
  async #markRevoked(tx: StoreTx, rec: SourceRecord, grant: StoredGrant, err: RefreshError): Promise<UnitResult> {
    const d = this.#d;
    const source = this.#slot.name;
    const now = d.clock.now();
    // Re-read: if the stored refresh token changed, someone rotated it outside our lock
    // (e.g. a login): adopt theirs. Otherwise the grant is dead: say so, stop calling the IdP.
    // (Compared with what the store held under our lock: `grant` may be a held, unsaved one.)
    const again = await this.#slot.read(tx);
    const latest = again?.grant;
    if (latest && latest.refreshToken && !latest.refreshToken.equals(rec.grant?.refreshToken)) {
      d.memory.held.delete(this.#key);
      this.#event('adopted');
      return serve(usableGrant(source, again));
    }
    d.memory.held.delete(this.#key);
    this.#event('invalid_grant', err.message);
    const revokedGrant: StoredGrant = { ...grant, revoked: { at: now, reason: 'invalid_grant' } };
    let unrecorded = '';
    try {
      await this.#slot.write(tx, { ...stripVersion(rec), grant: revokedGrant, lastFailure: { at: now, kind: 'invalid_grant', message: err.message } }, rec.version);
    } catch (writeErr) {
      unrecorded = `; recording that in the store failed too (${describeError(writeErr)})`;
    }
    throw new LatchkeyError('LK_GRANT_REVOKED', `the grant for "${source}" was revoked or expired at the IdP (${err.message})${unrecorded}`, {
      source,
      operatorAction: 'reauthorize',
    });
  }

  /**
   * The current grant served despite a failure, per the policy: always (the operator's sources),
   * or only while its access token has not expired (the gateway).
   */
  #failOpen(grant: StoredGrant, until: number | undefined, cause?: Error): Served {
    if (this.#d.policy.failOpen === 'while_valid' && grant.expiresAt !== undefined && this.#d.clock.now() >= grant.expiresAt) {
      throw new LatchkeyError('LK_REFRESH_FAILED', `the access token for "${this.#slot.name}" has expired and could not be refreshed${cause ? ` (${cause.message})` : ' (cooling down after a failed refresh)'}`, {
        source: this.#slot.name,
        ...(cause ? { cause } : {}),
      });
    }
    return until === undefined ? { grant } : { grant, until };
  }

  #event(outcome: RefreshOutcome, message?: string, answerAt?: number): void {
    const event: EngineEvent = { source: this.#slot.name, outcome, durationMs: this.#d.clock.now() - this.#started, ...(message ? { message } : {}) };
    if (answerAt !== undefined) event.answerAt = answerAt;
    this.#pending.push(event);
  }
}

/** Waits `ms` (at most MAX_LEAD_MS); false when `signal` aborted first. */
function untilOrAborted(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  if (signal?.aborted) return Promise.resolve(false);
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      resolve(ok);
    };
    const onAbort = (): void => done(false);
    const timer = setTimeout(() => done(true), Math.min(ms, MAX_LEAD_MS));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function serve(served: StoredGrant | Served): UnitResult {
  return { kind: 'serve', served: 'grant' in served ? served : { grant: served } };
}

/** Why a held grant is held, for events, `status` and the CLI's stderr (never its tokens). */
export function unsavedMessage(store: Pick<Store, 'location'>, u: Unsaved): string {
  return `refreshed at the IdP, but the new grant could not be saved to ${store.location} (${u.reason}); process ${process.pid} holds it in memory and keeps trying to save it`;
}

function stripVersion(rec: SourceRecord): SourceRecordInput {
  const { version: _version, ...rest } = rec;
  return rest;
}

/** `rec` with a refreshed grant in place, counted as a refresh, its failure cleared (or set to `failure`). */
function rotatedRecord(rec: SourceRecord, grant: StoredGrant, refreshedAt: number, failure?: FailureRecord): SourceRecordInput {
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
