import type { SourceMeta, SourceRecord } from '../store/store.js';

/**
 * The keeper's "schedule" stage: pure decisions about *when* — the next cycle, whether a grant
 * is due for refresh-ahead, whether a failing source sits this cycle out — plus the clock-jump
 * detector. Nothing here does I/O, so every rule is tested by calling it with numbers.
 */

/** Refresh an OAuth grant once ⅔ of its access token's lifetime has passed (DESIGN.md). */
export const REFRESH_AHEAD_FRACTION = 2 / 3;
/** …and at least this often, so idle rotating refresh tokens never age out at the IdP. */
export const DAILY_REFRESH_MS = 24 * 60 * 60 * 1000;
/** ±10 % so that many keepers (or many sources' IdPs) do not fall into lock-step. */
export const JITTER_FRACTION = 0.1;
/** A failing source is skipped for at most this long (expressed in cycles, see {@link backoffCapCycles}). */
export const MAX_BACKOFF_MS = 60 * 60 * 1000;
/** Never more than this many cycles skipped in a row, however short the interval. */
export const MAX_BACKOFF_CYCLES = 16;

/** The delay before the next cycle: `intervalMs` ± 10 %, from a uniform draw `random ∈ [0, 1)`. */
export function jitteredDelayMs(intervalMs: number, random: number = Math.random()): number {
  const factor = 1 + JITTER_FRACTION * (2 * random - 1);
  return Math.max(0, Math.round(intervalMs * factor));
}

/**
 * The next cycle starts `delay` after the previous one *started*; a cycle that overran its
 * interval is followed at once (but never by a negative wait).
 */
export function nextCycleDelayMs(cycleStartedMono: number, nowMono: number, intervalMs: number, random?: number): number {
  const elapsed = nowMono - cycleStartedMono;
  return Math.max(0, jitteredDelayMs(intervalMs, random) - elapsed);
}

export type RefreshReason = 'two_thirds_lifetime' | 'daily' | 'expired';

/**
 * What refresh-ahead decides on: a stored record, or its metadata ({@link SourceMeta}, from
 * `store.listMeta()`, which never reads a secret: the keeper plans every grant from it).
 */
export type RefreshBasis = Pick<SourceRecord, 'grant' | 'lastRefreshAt'> | SourceMeta;

/** The grant's times, when it can be refreshed at all (a grant, not revoked, with a refresh token). */
function refreshable(rec: RefreshBasis | undefined): { obtainedAt: number; expiresAt: number | undefined; lastRefreshAt: number } | undefined {
  if (rec === undefined) return undefined;
  if ('hasGrant' in rec) {
    if (!rec.hasGrant || rec.revoked || !rec.hasRefreshToken || rec.obtainedAt === undefined) return undefined;
    return { obtainedAt: rec.obtainedAt, expiresAt: rec.expiresAt, lastRefreshAt: rec.lastRefreshAt ?? 0 };
  }
  const g = rec.grant;
  if (!g || g.revoked || !g.refreshToken) return undefined;
  return { obtainedAt: g.obtainedAt, expiresAt: g.expiresAt, lastRefreshAt: rec.lastRefreshAt ?? 0 };
}

/**
 * Whether the keeper should refresh this grant now, and why. `undefined` = not due (or nothing
 * to refresh with: no grant, no refresh token, or a grant already known to be revoked).
 */
export function refreshAheadReason(rec: RefreshBasis | undefined, now: number): RefreshReason | undefined {
  const g = refreshable(rec);
  if (!g) return undefined;
  if (g.expiresAt !== undefined) {
    if (now >= g.expiresAt) return 'expired';
    const lifetime = g.expiresAt - g.obtainedAt;
    if (now >= g.obtainedAt + lifetime * REFRESH_AHEAD_FRACTION) return 'two_thirds_lifetime';
  }
  // Time since the refresh token was last exchanged (a fresh login counts as the last exchange).
  const lastExchange = Math.max(g.lastRefreshAt, g.obtainedAt);
  // A clock that jumped backwards puts `lastExchange` in the future: that is not "due".
  if (now - lastExchange >= DAILY_REFRESH_MS) return 'daily';
  return undefined;
}

/** When refresh-ahead will next be due for this grant (ms epoch), or undefined. */
export function refreshAheadAt(rec: RefreshBasis | undefined): number | undefined {
  const g = refreshable(rec);
  if (!g) return undefined;
  const daily = Math.max(g.lastRefreshAt, g.obtainedAt) + DAILY_REFRESH_MS;
  if (g.expiresAt === undefined) return daily;
  return Math.min(daily, g.obtainedAt + (g.expiresAt - g.obtainedAt) * REFRESH_AHEAD_FRACTION);
}

/** The refresh-ahead jitter: up to this fraction of the lifetime *after* the ⅔ point (never before it). */
export const REFRESH_JITTER_FRACTION = 0.05;
/** The daily refresh's jitter: up to this long after the day is up. */
export const DAILY_JITTER_MS = 10 * 60 * 1000;

/**
 * When the keeper wakes to refresh this grant (ms epoch), or undefined when there is nothing to
 * refresh. The ⅔ point plus up to 5 % of the lifetime, so 1,000 grants issued in the same second
 * do not hit their IdPs in the same millisecond; the jitter only ever delays (to at most ~72 % of
 * the lifetime), so {@link refreshAheadReason} agrees the grant is due when the keeper wakes.
 */
export function refreshDueAt(rec: RefreshBasis | undefined, random: number): number | undefined {
  const base = refreshAheadAt(rec);
  const g = refreshable(rec);
  if (base === undefined || !g) return undefined;
  const r = Math.min(1, Math.max(0, random));
  if (g.expiresAt !== undefined && base < g.expiresAt) {
    const lifetime = g.expiresAt - g.obtainedAt;
    const twoThirds = g.obtainedAt + lifetime * REFRESH_AHEAD_FRACTION;
    if (base === twoThirds) return Math.round(base + r * REFRESH_JITTER_FRACTION * lifetime);
  }
  return Math.round(base + r * DAILY_JITTER_MS);
}

/**
 * After a refresh that failed for a passing reason (network, 5xx): try again in 30 s, sooner
 * when the token has less than that left (a third of what remains, at least 1 s).
 */
export function refreshRetryDelayMs(expiresAt: number | undefined, now: number): number {
  if (expiresAt === undefined || expiresAt <= now) return 30_000;
  return Math.max(1000, Math.min(30_000, Math.floor((expiresAt - now) / 3)));
}

/**
 * The earliest of many due times, kept for one re-armed timer (not one timer per source). A
 * linear scan on change: 10,000 sources take well under a millisecond, and a wake-up changes a
 * handful of entries.
 */
export class DueTimes {
  readonly #due = new Map<string, number>();

  get size(): number {
    return this.#due.size;
  }

  get(name: string): number | undefined {
    return this.#due.get(name);
  }

  set(name: string, at: number | undefined): void {
    if (at === undefined || !Number.isFinite(at)) this.#due.delete(name);
    else this.#due.set(name, at);
  }

  delete(name: string): void {
    this.#due.delete(name);
  }

  /** Keeps only these names. */
  retain(names: ReadonlySet<string>): void {
    for (const n of this.#due.keys()) if (!names.has(n)) this.#due.delete(n);
  }

  earliest(): number | undefined {
    let min: number | undefined;
    for (const at of this.#due.values()) if (min === undefined || at < min) min = at;
    return min;
  }

  /** Removes and returns every entry due at `now` (earliest first). */
  takeDue(now: number): Array<{ name: string; at: number }> {
    const out: Array<{ name: string; at: number }> = [];
    for (const [name, at] of this.#due) if (at <= now) out.push({ name, at });
    for (const { name } of out) this.#due.delete(name);
    return out.sort((a, b) => a.at - b.at);
  }
}

/** The most cycles a failing source may sit out for a given interval. */
export function backoffCapCycles(intervalMs: number): number {
  return Math.max(1, Math.min(MAX_BACKOFF_CYCLES, Math.floor(MAX_BACKOFF_MS / Math.max(1, intervalMs))));
}

/**
 * Cycles to skip after `consecutiveFailures` failures in a row: 0, 1, 3, 7, 15… capped. The
 * first failure is re-checked at the next cycle (it may be a blip); a source that keeps failing
 * is probed exponentially less often, so it never eats the cycle of the healthy ones.
 */
export function backoffCycles(consecutiveFailures: number, capCycles: number): number {
  if (consecutiveFailures <= 1) return 0;
  const n = Math.min(consecutiveFailures - 1, 30);
  return Math.min(2 ** n - 1, capCycles);
}

/**
 * Notices when the wall clock (the injected `Clock`) moved differently from the monotonic
 * clock between two cycles: NTP corrections, a suspended laptop, a VM restored from snapshot.
 * The keeper says so; its backoff counts cycles, not wall time, so a jump cannot starve a source.
 */
export class ClockJumpDetector {
  #lastWall: number | undefined;
  #lastMono: number | undefined;
  readonly #thresholdMs: number;

  constructor(thresholdMs = 30_000) {
    this.#thresholdMs = thresholdMs;
  }

  /** Returns the jump (wall delta minus monotonic delta, ms) when it exceeds the threshold. */
  observe(wallNow: number, monoNow: number): number | undefined {
    const lw = this.#lastWall;
    const lm = this.#lastMono;
    this.#lastWall = wallNow;
    this.#lastMono = monoNow;
    if (lw === undefined || lm === undefined) return undefined;
    const jump = wallNow - lw - (monoNow - lm);
    return Math.abs(jump) > this.#thresholdMs ? jump : undefined;
  }
}
