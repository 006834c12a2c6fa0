/**
 * `signOut`: the desktop or CLI client's "Sign out". It asks the gateway to end the session
 * (`POST <gateway>/auth/logout`: the gateway deletes it, revokes the refresh token where the IdP
 * allows, and names the IdP's end-session URL), then makes sure no session cookie is left in
 * the client's store, whatever the gateway answered: a user who signs out while offline is
 * signed out on this machine, and the result says that the gateway could not be told.
 */
import { cookieAccess, type CookieJar, type ElectronCookies } from './cookie-jar.js';
import { errorCodeOf, failureOf, gatewayBaseUrl, postToGateway, type GatewayCallOptions } from './gateway-request.js';
import { hasLiveSession, isSessionCookieName } from './session-cookies.js';

/** The gateway route that ends a session, relative to the deployment's base URL. */
export const LOGOUT_PATH = 'auth/logout';

/** Options of {@link signOut}. */
export type SignOutOptions = GatewayCallOptions;

/** What {@link signOut} did. In every case no session cookie is left in the client's store. */
export interface SignOutResult {
  /**
   * What happened on the gateway's side: `ended` (it deleted the session and revoked the
   * refresh token where the IdP offers revocation), `no_session` (no live session cookie was
   * stored: nothing to end, no request made), `unreachable` or `rejected` (it could not be told;
   * the session there ends with its refresh token's lifetime, or at an administrator's hand).
   */
  gateway: 'ended' | 'no_session' | 'unreachable' | 'rejected';
  /**
   * The IdP's end-session URL (RP-initiated logout) the gateway named, to open in a browser
   * window so the IdP's own session ends too. Only http(s) URLs are passed on.
   */
  endSessionUrl?: string;
  /** Why the gateway could not be told (for `unreachable` and `rejected`). */
  message?: string;
  /** The HTTP status of the gateway's answer, when it answered. */
  httpStatus?: number;
  /** Session cookie names removed from the client's store (by the gateway's deletions or locally). */
  removed: string[];
}

function endSessionUrlOf(body: unknown): string | undefined {
  const raw = typeof body === 'object' && body !== null ? (body as { endSessionUrl?: unknown }).endSessionUrl : undefined;
  if (typeof raw !== 'string' || raw.length > 8192) return undefined;
  try {
    const u = new URL(raw);
    return u.protocol === 'https:' || u.protocol === 'http:' ? u.href : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Signs this client out of the gateway at `gatewayUrl`: asks the gateway to end the session,
 * then removes every session cookie variant (`latchkey_at`, `latchkey_rt`) left in `cookies`.
 * Never throws for what the network or the gateway does; a bad `gatewayUrl` is a
 * `LatchkeyError` (`LK_USAGE`, `LK_INSECURE_ENDPOINT`).
 *
 * @example
 * ```ts
 * const out = await signOut('https://dash.example.com/', session.defaultSession.cookies);
 * if (out.endSessionUrl) await shell.openExternal(out.endSessionUrl);
 * if (out.gateway === 'unreachable') notify('Signed out here; the server will be told when it is reachable.');
 * ```
 */
export async function signOut(gatewayUrl: string | URL, cookies: CookieJar | ElectronCookies, options: SignOutOptions = {}): Promise<SignOutResult> {
  const base = gatewayBaseUrl(gatewayUrl, options);
  const access = cookieAccess(cookies);
  const now = options.now ?? Date.now;
  const logoutUrl = new URL(LOGOUT_PATH, base);
  const sent = await access.forRequest(logoutUrl, now());

  let result: SignOutResult;
  if (!hasLiveSession(sent, { now: now() })) {
    result = { gateway: 'no_session', removed: [] };
  } else {
    const answer = await postToGateway(base, logoutUrl, access, sent, options);
    if (answer.kind === 'failed') {
      result = { gateway: 'unreachable', message: answer.result.message, removed: [] };
    } else {
      const removedByGateway = answer.changes.removed.filter(isSessionCookieName);
      if (answer.status === 200 || (answer.status === 401 && errorCodeOf(answer.body) === 'session_expired')) {
        // 401: the session had already ended there; the result for the user is the same.
        const endSessionUrl = answer.status === 200 ? endSessionUrlOf(answer.body) : undefined;
        result = { gateway: 'ended', httpStatus: answer.status, removed: removedByGateway, ...(endSessionUrl ? { endSessionUrl } : {}) };
      } else {
        const failure = failureOf(answer, base, LOGOUT_PATH);
        result = { gateway: failure.status, httpStatus: answer.status, message: failure.message, removed: removedByGateway };
      }
    }
  }
  const leftovers = await access.removeWhere(base, isSessionCookieName);
  for (const name of leftovers) if (!result.removed.includes(name)) result.removed.push(name);
  return result;
}
