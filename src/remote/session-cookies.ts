/**
 * The gateway's session cookies as a client sees them, and the liveness rule a desktop or CLI
 * client applies before it bothers the network.
 *
 * The gateway writes an access cookie (`latchkey_at`, Max-Age = the access token's lifetime)
 * and a refresh cookie (`latchkey_rt`, the refresh token's lifetime), each under one of three
 * names depending on how it was reached: `__Host-<name>` (HTTPS at Path `/`),
 * `__Secure-<name>` (HTTPS under a proxy prefix) or the bare name (plain-HTTP loopback). A
 * client does not know which one the gateway chose, so it accepts every variant.
 *
 * Why the refresh cookie counts: the access cookie lapses every ~15 minutes and the client's
 * cookie store drops it, while the refresh cookie (hours or days) still lets the gateway
 * rotate a fresh access token on the next request. A client that looked at the access cookie
 * alone would send its user to the IdP every 15 minutes (the bug in the third seed document).
 */

/** The access cookie's base name (the gateway may prefix it with `__Host-` or `__Secure-`). */
export const ACCESS_COOKIE = 'latchkey_at';
/** The refresh cookie's base name (the gateway may prefix it with `__Host-` or `__Secure-`). */
export const REFRESH_COOKIE = 'latchkey_rt';

/** The cookie-name prefixes the gateway uses (RFC 6265bis §4.1.3), strictest first; `''` is the bare name. */
export const COOKIE_NAME_PREFIXES = ['__Host-', '__Secure-', ''] as const;

/** Every name the access or the refresh cookie can have. */
export const SESSION_COOKIE_NAMES: readonly string[] = COOKIE_NAME_PREFIXES.flatMap((p) => [`${p}${ACCESS_COOKIE}`, `${p}${REFRESH_COOKIE}`]);

const SESSION_NAMES = new Set(SESSION_COOKIE_NAMES);

/** True when `name` is one of the gateway's session cookie names (any variant of access or refresh). */
export function isSessionCookieName(name: string): boolean {
  return SESSION_NAMES.has(name);
}

/**
 * A cookie as the common client cookie stores hand it out. Both shapes are accepted:
 * Electron's (`expirationDate` in **seconds** since the epoch, absent for a session cookie) and
 * the plain jar's {@link JarCookie} (`expiresAt` in **milliseconds**). A cookie with neither
 * lives until the client's session ends, so it counts as unexpired.
 */
export interface CookieLike {
  /** The cookie's name, e.g. `__Host-latchkey_rt`. */
  readonly name: string;
  /** The cookie's value; an empty value is a deleted cookie. */
  readonly value: string;
  /** Electron: expiry in seconds since the epoch (may be fractional). */
  readonly expirationDate?: number | undefined;
  /** Plain jar: expiry in milliseconds since the epoch. */
  readonly expiresAt?: number | undefined;
}

/** Options of {@link hasLiveSession}. */
export interface LiveSessionOptions {
  /** The current time in milliseconds since the epoch (default `Date.now()`). */
  now?: number;
}

/** Expiry of a cookie in epoch milliseconds; `Infinity` when it has none (a session cookie). */
export function cookieExpiresAt(cookie: CookieLike): number {
  if (typeof cookie.expiresAt === 'number' && !Number.isNaN(cookie.expiresAt)) return cookie.expiresAt;
  if (typeof cookie.expirationDate === 'number' && !Number.isNaN(cookie.expirationDate)) return cookie.expirationDate * 1000;
  return Number.POSITIVE_INFINITY;
}

/** True when the cookie is one of the gateway's session cookies, has a value and has not expired at `now`. */
export function isLiveSessionCookie(cookie: CookieLike, now: number): boolean {
  return isSessionCookieName(cookie.name) && cookie.value !== '' && cookieExpiresAt(cookie) > now;
}

/**
 * Whether the cookies hold a session the gateway can still serve: true when any variant of the
 * access cookie **or** of the refresh cookie is present, non-empty and unexpired.
 *
 * This is the cheap local check (no network). It can say "signed out" for certain (neither
 * cookie is there), but a `true` is only a hint: the refresh token behind the cookie may have
 * been revoked at the IdP. {@link checkConnection} asks the gateway for the authoritative answer.
 *
 * Accepts an array or any iterable of cookies (Electron's `await session.cookies.get({ url })`,
 * or `jar.values()`), or a plain `Map` jar itself.
 *
 * @example
 * ```ts
 * const cookies = await session.defaultSession.cookies.get({ url: 'https://dash.example.com/' });
 * if (!hasLiveSession(cookies)) showSignIn();
 * ```
 */
export function hasLiveSession(cookies: Iterable<CookieLike> | ReadonlyMap<string, CookieLike>, options: LiveSessionOptions = {}): boolean {
  const now = options.now ?? Date.now();
  const list: Iterable<CookieLike> = cookies instanceof Map ? (cookies as ReadonlyMap<string, CookieLike>).values() : (cookies as Iterable<CookieLike>);
  for (const cookie of list) {
    if (typeof cookie !== 'object' || cookie === null || typeof cookie.name !== 'string' || typeof cookie.value !== 'string') continue;
    if (isLiveSessionCookie(cookie, now)) return true;
  }
  return false;
}
