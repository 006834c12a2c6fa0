/**
 * `checkConnection`: is this client signed in to the gateway, signed out, or merely unable to
 * reach it right now?
 *
 * The local cookies cannot answer that (a refresh token may be revoked at the IdP; a lapsed
 * access cookie is normal), so the probe is the request a client makes anyway before opening
 * its WebSocket: minting a ws-ticket (`POST <gateway>/auth/ws-ticket`). It carries the
 * refresh cookie, so a gateway holding an expired access token rotates it there and answers
 * with fresh cookies, which are stored. Only the gateway's own verdict on the session
 * (401 `session_expired`) means "sign in again"; a network error, a timeout, a 5xx or a 503
 * (the IdP is down) is `unreachable`, never a reason to throw a user back to the login page.
 */
import { Secret } from '../core/secret.js';
import { cookieAccess, type CookieJar, type ElectronCookies } from './cookie-jar.js';
import { errorCodeOf, failureOf, gatewayBaseUrl, postToGateway, type GatewayCallOptions, type Rejected, type Unreachable } from './gateway-request.js';
import { hasLiveSession } from './session-cookies.js';

/** The gateway route that mints a WebSocket ticket, relative to the deployment's base URL. */
export const WS_TICKET_PATH = 'auth/ws-ticket';
/** The gateway route that starts a login, relative to the deployment's base URL. */
export const LOGIN_PATH = 'auth/login';

/** Options of {@link checkConnection}. */
export type CheckConnectionOptions = GatewayCallOptions;

/** Signed in: the gateway minted a ticket (and may have rotated the session's cookies). */
export interface Connected {
  /** Discriminant. */
  status: 'connected';
  /**
   * The single-use WebSocket ticket the probe minted (valid for `ttlSeconds`, bound to the
   * gateway's origin): pass it as `?ticket=` when opening the WebSocket, or drop it.
   */
  ticket: Secret;
  /** How long the ticket stays valid, in seconds. */
  ttlSeconds: number;
  /** True when the gateway rotated the session and the new cookies were stored. */
  cookiesRotated: boolean;
}

/** Signed out: a person must sign in at the gateway again. */
export interface NeedsLogin {
  /** Discriminant. */
  status: 'needsLogin';
  /** `no_session`: no live session cookie was stored (no request made); `session_expired`: the gateway said so. */
  reason: 'no_session' | 'session_expired';
  /** Where to send the person (the gateway's login route, on the gateway's origin). */
  loginUrl: string;
}

/** The outcome of {@link checkConnection}. */
export type ConnectionState = Connected | NeedsLogin | Unreachable | Rejected;

/** The `loginUrl` the gateway sent, if it is on the gateway's own origin; else the default. */
function loginUrlFrom(body: unknown, base: URL): string {
  const fallback = new URL(LOGIN_PATH, base).href;
  const raw = typeof body === 'object' && body !== null ? (body as { loginUrl?: unknown }).loginUrl : undefined;
  if (typeof raw !== 'string' || raw.length > 2048) return fallback;
  try {
    const u = new URL(raw, base);
    return u.origin === base.origin ? u.href : fallback;
  } catch {
    return fallback;
  }
}

/**
 * Asks the gateway whether this client's session is alive, by minting a WebSocket ticket.
 *
 * - No live access or refresh cookie stored ({@link hasLiveSession} is false): `needsLogin`
 *   (reason `no_session`) without a request.
 * - 200 `{ ticket, ttlSeconds }`: `connected`; the `Set-Cookie` headers (a rotated session)
 *   are stored in `cookies`.
 * - 401 `{ "error": "session_expired" }`: `needsLogin` (the cookies the gateway cleared are
 *   removed from `cookies`).
 * - A network error, a timeout, 429, 503 or any other 5xx: `unreachable` (never `needsLogin`).
 * - Anything else (404, 403, a redirect, a 200 without a ticket): `rejected`.
 *
 * Never throws for what the network or the gateway does; throws a `LatchkeyError`
 * (`LK_USAGE`, `LK_INSECURE_ENDPOINT`) only for a bad `gatewayUrl` or something that is not a
 * cookie store.
 *
 * @param gatewayUrl The gateway's base URL, deployment prefix included
 *   (`https://example.com/` or `https://example.com/dash/`).
 * @param cookies The client's cookies for that gateway: a plain {@link CookieJar} (a
 *   `Map<string, JarCookie>` will do) or Electron's `session.cookies`.
 *
 * @example
 * ```ts
 * const state = await checkConnection('https://dash.example.com/', session.defaultSession.cookies);
 * if (state.status === 'needsLogin') await win.loadURL(state.loginUrl);
 * else if (state.status === 'unreachable') scheduleRetry(state.retryAfterSeconds ?? 30);
 * ```
 */
export async function checkConnection(gatewayUrl: string | URL, cookies: CookieJar | ElectronCookies, options: CheckConnectionOptions = {}): Promise<ConnectionState> {
  const base = gatewayBaseUrl(gatewayUrl, options);
  const access = cookieAccess(cookies);
  const now = options.now ?? Date.now;
  const ticketUrl = new URL(WS_TICKET_PATH, base);

  const sent = await access.forRequest(ticketUrl, now());
  if (!hasLiveSession(sent, { now: now() })) {
    return { status: 'needsLogin', reason: 'no_session', loginUrl: new URL(LOGIN_PATH, base).href };
  }
  const answer = await postToGateway(base, ticketUrl, access, sent, options);
  if (answer.kind === 'failed') return answer.result;

  if (answer.status === 200) {
    const b = answer.body as { ticket?: unknown; ttlSeconds?: unknown } | undefined;
    if (typeof b?.ticket === 'string' && b.ticket !== '' && typeof b.ttlSeconds === 'number' && Number.isFinite(b.ttlSeconds) && b.ttlSeconds > 0) {
      return { status: 'connected', ticket: new Secret(b.ticket), ttlSeconds: b.ttlSeconds, cookiesRotated: answer.changes.changed.length > 0 };
    }
    return { status: 'rejected', httpStatus: 200, message: `${base.host} answered 200 without a ticket: is ${base.href} a Latchkey gateway?` };
  }
  if (answer.status === 401 && errorCodeOf(answer.body) === 'session_expired') {
    return { status: 'needsLogin', reason: 'session_expired', loginUrl: loginUrlFrom(answer.body, base) };
  }
  return failureOf(answer, base, WS_TICKET_PATH);
}
