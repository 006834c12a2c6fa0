/**
 * `latchkey/remote`: for desktop and CLI clients of a Latchkey session gateway. Tells "signed
 * out" apart from "the network is down", and keeps the session's rotated cookies.
 *
 * ```ts
 * import { hasLiveSession, checkConnection, signOut } from 'latchkey/remote';
 *
 * const url = 'https://dash.example.com/';
 * const cookies = session.defaultSession.cookies;            // Electron, or a Map<string, JarCookie>
 * if (!hasLiveSession(await cookies.get({ url }))) return showSignIn();
 * const state = await checkConnection(url, cookies);         // mints a ws-ticket: the real answer
 * // state.status: 'connected' | 'needsLogin' | 'unreachable' | 'rejected'
 * await signOut(url, cookies);                                // ends it there, clears it here
 * ```
 *
 * This entry imports nothing from the keeper, the CLI or the token engine: it is safe to load
 * in an Electron main process. Stable (semver) from its first release.
 *
 * @packageDocumentation
 */

/** The liveness rule and the gateway's session cookie names. */
export {
  hasLiveSession,
  isSessionCookieName,
  ACCESS_COOKIE,
  REFRESH_COOKIE,
  COOKIE_NAME_PREFIXES,
  SESSION_COOKIE_NAMES,
} from './session-cookies.js';
/** A cookie in either store's shape; options of {@link hasLiveSession}. */
export type { CookieLike, LiveSessionOptions } from './session-cookies.js';

/** The authoritative probe (a ws-ticket mint) and its outcomes. */
export { checkConnection, WS_TICKET_PATH, LOGIN_PATH } from './check-connection.js';
/** Options and outcomes of {@link checkConnection}. */
export type { CheckConnectionOptions, ConnectionState, Connected, NeedsLogin } from './check-connection.js';
/** "Sign out": the gateway ends the session, and no session cookie is left in the client's store. */
export { signOut, LOGOUT_PATH } from './sign-out.js';
/** Options and result of {@link signOut}. */
export type { SignOutOptions, SignOutResult } from './sign-out.js';
/** What every call to the gateway shares: the base URL rule, the CSRF header, the options and the two failure outcomes. */
export { gatewayBaseUrl, CSRF_HEADER } from './gateway-request.js';
/** Options of every call; `unreachable` (try later) and `rejected` (wrong URL or proxy) outcomes. */
export type { GatewayCallOptions, Unreachable, Rejected } from './gateway-request.js';

/** The cookie stores {@link checkConnection} reads and updates: a plain jar, or Electron's `session.cookies`. */
export type { CookieJar, JarCookie, ElectronCookies, ElectronCookie, ElectronCookieDetails, CookieChanges } from './cookie-jar.js';

/** The ticket in a `connected` answer is a {@link Secret}: printing it shows `[redacted]`; `reveal()` gives the value. */
export { Secret } from '../core/secret.js';
