import { LatchkeyError } from '../core/errors.js';
import type { SourceRecord, StoredGrant } from '../store/store.js';
import { clampExpiresAt } from '../lifetime.js';

export { clampExpiresAt, clampTime, MAX_ACCESS_TOKEN_LIFETIME_S, readExpiresIn, type ExpiresInReading } from '../lifetime.js';

/**
 * Whether a stored grant may be used as is: the pure rules (no I/O) shared by the token
 * engine, `status` and the CLI's synchronous fast path (src/cli/fast-path.ts), which must agree
 * to the millisecond on when a stored access token is handed out without a refresh.
 */

export const DEFAULT_SKEW_MS = 120_000;

/**
 * `expires_in` counts whole seconds and IdPs compute expiry from a second-truncated clock, so
 * a token may die up to a second before `issued + expires_in`. Count from the request start
 * (before issuance) and take that second off, so a token we call fresh is fresh at the IdP.
 */
export function expiresAtFrom(issuedNoLaterThan: number, expiresInSeconds: number): number {
  const ms = expiresInSeconds * 1000;
  return issuedNoLaterThan + ms - Math.min(1000, ms / 2);
}

/**
 * The moment to count a refreshed token's lifetime from: no later than its issue. The request's
 * start always is; the answer's `Date` header is better for a slow answer (an IdP that queued
 * the request for 11 s issues the token at the end, and counted from the start a 2 s token
 * would arrive already expired and be refreshed at once). The `Date` is used only when it falls
 * inside the request's own window by our clock (from a second before the start, for its
 * whole-second truncation, to the answer): then the clocks agree and, truncated, it is still no
 * later than the issue. Anything else (a skewed or absent header, a test clock) keeps the start.
 * An IdP that stamps its answer long after computing the expiry is bounded by a JWT's `exp`
 * (expiresAtOf), and for an opaque token by the 401 recovery.
 */
export function issuedNoLaterThan(requestedAt: number, answeredAt: number, serverDate: number | undefined): number {
  if (serverDate === undefined || serverDate < requestedAt - 1000 || serverDate > answeredAt) return requestedAt;
  return Math.max(requestedAt, serverDate);
}

/** How far the IdP's clock (a JWT's `iat`) may be from ours before `exp` is not read as our time. */
const CLOCK_AGREEMENT_MS = 30_000;

/**
 * When an access token obtained at `requestedAt` stops working: the earlier of the
 * `expires_in` time and the JWT's `exp` (issue 7 item 6: a whole-second IdP can stamp `exp`
 * up to a second before `requestedAt + expires_in`). When the JWT's `iat` shows the IdP's clock
 * disagrees with ours, its lifetime (`exp - iat`) is counted from `requestedAt` instead; an
 * `exp` already past by our clock without an `iat` says the clocks disagree and is ignored.
 * Bounded like every expiry (at most a year, inside the Date range). Undefined: unknown expiry.
 */
export function expiresAtOf(requestedAt: number, expiresInSeconds: number | undefined, jwt: { exp?: number; iat?: number } = {}): number | undefined {
  let at = expiresInSeconds !== undefined ? expiresAtFrom(requestedAt, expiresInSeconds) : undefined;
  if (jwt.exp !== undefined) {
    let fromJwt: number | undefined = jwt.exp * 1000;
    if (jwt.iat !== undefined && Math.abs(jwt.iat * 1000 - requestedAt) > CLOCK_AGREEMENT_MS) {
      fromJwt = jwt.exp > jwt.iat ? expiresAtFrom(requestedAt, jwt.exp - jwt.iat) : undefined;
    } else if (jwt.iat === undefined && fromJwt <= requestedAt) {
      fromJwt = undefined;
    }
    if (fromJwt !== undefined) at = at === undefined ? fromJwt : Math.min(at, fromJwt);
  }
  return at === undefined ? undefined : clampExpiresAt(requestedAt, at);
}

/** Effective skew for a grant: the configured skew, but never more than a third of its lifetime. */
export function effectiveSkewMs(grant: Pick<StoredGrant, 'expiresAt' | 'obtainedAt'>, skewMs = DEFAULT_SKEW_MS): number {
  if (grant.expiresAt === undefined) return 0;
  const lifetime = grant.expiresAt - grant.obtainedAt;
  return Math.max(0, Math.min(skewMs, lifetime / 3));
}

/** When this grant should be refreshed (Infinity = unknown expiry). */
export function refreshDueAt(grant: Pick<StoredGrant, 'expiresAt' | 'obtainedAt'>, skewMs = DEFAULT_SKEW_MS): number {
  if (grant.expiresAt === undefined) return Number.POSITIVE_INFINITY;
  return grant.expiresAt - effectiveSkewMs(grant, skewMs);
}

/**
 * Until when a due grant is still handed out at once while one refresh runs in the background:
 * half-way through the skew window. The first half is refresh-ahead without anyone waiting (a
 * refresh at 50 ms never makes a caller wait); in the second half a caller waits for the flight
 * rather than take a token with less than half the skew left, so a token handed out always has
 * at least skew / 2 to live (60 s with the default skew; a sixth of the lifetime for short ones).
 */
export function serveAheadUntil(grant: Pick<StoredGrant, 'expiresAt' | 'obtainedAt'>, skewMs = DEFAULT_SKEW_MS): number {
  if (grant.expiresAt === undefined) return Number.NEGATIVE_INFINITY;
  return grant.expiresAt - effectiveSkewMs(grant, skewMs) / 2;
}

/** The refresh skew a source configures (`oauth.skewSeconds`), in ms; undefined = the default. */
export function configuredSkewMs(oauth: { skewSeconds?: number } | undefined): number | undefined {
  return oauth?.skewSeconds !== undefined ? oauth.skewSeconds * 1000 : undefined;
}

/** The grant to work from, or the typed error that says what the operator must do. */
export function usableGrant(source: string, rec: SourceRecord | undefined): StoredGrant {
  const grant = rec?.grant;
  if (!grant) {
    throw new LatchkeyError('LK_NO_GRANT', `no grant stored for "${source}"`, { source, operatorAction: 'relogin' });
  }
  if (grant.revoked) {
    throw new LatchkeyError('LK_GRANT_REVOKED', `the grant for "${source}" was revoked (${grant.revoked.reason}) on ${new Date(grant.revoked.at).toISOString()}`, {
      source,
      operatorAction: 'reauthorize',
    });
  }
  return grant;
}
