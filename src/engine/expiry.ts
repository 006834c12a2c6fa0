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
 * When a process starts refreshing a grant in the background while it still hands the token out:
 * half a skew before it is due, but never before ⅔ of the lifetime (the keeper's refresh-ahead
 * point: a token() caller does not refresh earlier than the keeper would). Callers never get a
 * token with less than the skew left (a due token makes them wait, as always); what changes is
 * that the refresh has usually landed by then, so nobody waits. With the default skew and an
 * hour's token the refresh starts 180 s before expiry; tokens of 6 minutes or less (skew a
 * third of the lifetime) get no ahead window: they are due at ⅔ already.
 *
 * `leadMs`: how long this process recently took to get ready to send a refresh of this grant
 * (its lock taken, the record re-read, the token endpoint's connection open: {@link LeadSamples}).
 * With a lead, the refresh is *prepared* that much earlier (at most {@link MAX_LEAD_MS}, never
 * before a third of the lifetime), and the refresh token is still sent only from the time
 * above (the locked unit waits for it): the IdP gets no more refreshes than before, and a caller
 * at the due time waits for the IdP alone, not for the store's round trips too. That matters for
 * short tokens through a busy fleet, where getting ready takes a few hundred ms.
 */
export function refreshAheadAt(grant: Pick<StoredGrant, 'expiresAt' | 'obtainedAt'>, skewMs = DEFAULT_SKEW_MS, leadMs = 0): number {
  if (grant.expiresAt === undefined) return Number.POSITIVE_INFINITY;
  const lifetime = grant.expiresAt - grant.obtainedAt;
  const skew = effectiveSkewMs(grant, skewMs);
  const ahead = Math.max(grant.expiresAt - skew * 1.5, grant.obtainedAt + (lifetime * 2) / 3);
  if (!(leadMs > 0)) return ahead;
  return Math.max(ahead - Math.min(leadMs, MAX_LEAD_MS), Math.min(ahead, grant.obtainedAt + lifetime / 3));
}

/** The longest a refresh is prepared ahead of its send (and holds its lock before sending). */
export const MAX_LEAD_MS = 2_000;

/**
 * How long the recent refreshes of one source took in one process to be ready to send (ms,
 * newest last, at most {@link LEAD_SAMPLES}): their (lower) median is the lead
 * {@link refreshAheadAt} prepares ahead by, so one slow sample (a lock held long once) does not
 * move it; two in a row do.
 */
export type LeadSamples = readonly number[];
export const NO_LEAD_SAMPLES: LeadSamples = Object.freeze([]);
const LEAD_SAMPLES = 3;

/** `samples` with `ms` added (the oldest dropped beyond {@link LEAD_SAMPLES}); a new array. */
export function addLeadSample(samples: LeadSamples, ms: number): LeadSamples {
  if (!Number.isFinite(ms) || ms < 0) return samples;
  return samples.length < LEAD_SAMPLES ? [...samples, ms] : [...samples.slice(1), ms];
}

/** The lower median of the samples (of two, the shorter; 0 without any): the lead to refresh ahead by. */
export function leadOf(samples: LeadSamples): number {
  if (samples.length === 0) return 0;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[(sorted.length - 1) >> 1]!;
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
