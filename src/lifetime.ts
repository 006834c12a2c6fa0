/**
 * Bounds on the times that come from outside (an IdP's `expires_in`, a grant file, a store
 * edited by hand): pure rules shared by the oauth layer (reading answers), the store (reading
 * the document) and the engine (computing expiry), so none of them imports another for them.
 */

/**
 * The longest access-token lifetime believed (1 year). Nothing real issues longer-lived access
 * tokens; beyond it an `expires_in` is a unit mistake (milliseconds for seconds) or a way of
 * saying "never", and trusting it would never refresh (1e12 s) or overflow the Date range
 * (1e300 s: "Invalid time value" in every `toISOString`). The keeper still touches a grant daily.
 */
export const MAX_ACCESS_TOKEN_LIFETIME_S = 365 * 24 * 3600;

/** The largest time a JavaScript Date can hold (ECMA-262 §21.4.1.22, ±8.64e15 ms). */
const MAX_DATE_MS = 8.64e15;

/** What an `expires_in` from the outside (IdP answer, grant file) is taken to mean. */
export interface ExpiresInReading {
  /** Seconds to use; undefined = unknown expiry (refresh on 401 and on the keeper's schedule). */
  seconds: number | undefined;
  /** Why the value was not taken as is (names the value's kind, never a token). */
  warning?: string;
}

/**
 * Reads an `expires_in` (RFC 6749 §5.1: "the lifetime in seconds of the access token").
 * Absent: unknown expiry. Not a finite number, zero or negative: unknown expiry, with a warning
 * (taking it as "already expired" would refresh on every call). A numeric string is accepted
 * (several IdPs send one). Above {@link MAX_ACCESS_TOKEN_LIFETIME_S}: clamped, with a warning.
 */
export function readExpiresIn(raw: unknown): ExpiresInReading {
  if (raw === undefined || raw === null) return { seconds: undefined };
  const n = typeof raw === 'number' ? raw : typeof raw === 'string' && raw.trim() !== '' ? Number(raw) : Number.NaN;
  if (!Number.isFinite(n)) return { seconds: undefined, warning: `"expires_in" is not a number (${typeof raw === 'string' ? 'a non-numeric string' : typeof raw}); treated as unknown expiry` };
  if (n <= 0) return { seconds: undefined, warning: `"expires_in" is ${n === 0 ? 'zero' : 'negative'}; treated as unknown expiry` };
  if (n > MAX_ACCESS_TOKEN_LIFETIME_S) return { seconds: MAX_ACCESS_TOKEN_LIFETIME_S, warning: `"expires_in" of ${n} s is beyond a year; clamped to ${MAX_ACCESS_TOKEN_LIFETIME_S} s` };
  return { seconds: n };
}

/**
 * A stored time made safe to compute with and to format: inside the Date range. Applied when a
 * store is read, so a grant written before expiry was bounded (or edited by hand) cannot make
 * `status`, `health`, `preflight` or the keeper throw "Invalid time value".
 */
export function clampTime(ms: number): number {
  return Number.isFinite(ms) ? Math.max(-MAX_DATE_MS, Math.min(MAX_DATE_MS, ms)) : ms > 0 ? MAX_DATE_MS : -MAX_DATE_MS;
}

/** A stored expiry bounded like a fresh one: at most a year after the token was obtained. */
export function clampExpiresAt(obtainedAt: number, expiresAt: number): number {
  return clampTime(Math.min(expiresAt, obtainedAt + MAX_ACCESS_TOKEN_LIFETIME_S * 1000));
}
