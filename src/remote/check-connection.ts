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
import { LatchkeyError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { sanitizeRemoteText } from '../core/sanitize.js';
import { describeNetworkError } from '../net/describe-network-error.js';
import { isLoopbackHost } from '../net/loopback.js';
import { cookieAccess, type CookieChanges, type CookieJar, type ElectronCookies } from './cookie-jar.js';
import { hasLiveSession } from './session-cookies.js';

/** The header the gateway requires on state-changing routes (with a same-origin `Origin`). */
export const CSRF_HEADER = 'X-Latchkey-CSRF';

/** The gateway route that mints a WebSocket ticket, relative to the deployment's base URL. */
export const WS_TICKET_PATH = 'auth/ws-ticket';
/** The gateway route that starts a login, relative to the deployment's base URL. */
export const LOGIN_PATH = 'auth/login';

const DEFAULT_TIMEOUT_MS = 10_000;
/** A ticket answer is a few dozen bytes; anything much bigger is not a gateway talking. */
const MAX_ANSWER_BYTES = 16 * 1024;

/** Options of {@link checkConnection}. */
export interface CheckConnectionOptions {
  /** The `fetch` to use (default: the global one). It must not add cookies of its own. */
  fetch?: typeof fetch;
  /** Give up after this many milliseconds and answer `unreachable` (default 10 000). */
  timeoutMs?: number;
  /** Aborts the probe (the answer is then `unreachable`, reason `aborted`). */
  signal?: AbortSignal;
  /** The current time in epoch milliseconds, for cookie expiry (default `Date.now`). */
  now?: () => number;
  /**
   * Allow a plain-`http` gateway on a non-loopback host. Off by default: the session cookies
   * would cross the network in clear text.
   */
  allowInsecureHttp?: boolean;
}

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

/** Not reachable right now; the session may well be fine. Try again later. */
export interface Unreachable {
  /** Discriminant. */
  status: 'unreachable';
  /**
   * `network`: no answer (refused, DNS, TLS, reset); `timeout`; `aborted` (the caller's
   * signal); `unavailable`: 503 (the gateway or its IdP is in trouble); `server_error`: another
   * 5xx; `rate_limited`: 429.
   */
  reason: 'network' | 'timeout' | 'aborted' | 'unavailable' | 'server_error' | 'rate_limited';
  /** The HTTP status, when there was an answer. */
  httpStatus?: number;
  /** The server's `Retry-After`, in seconds, when it sent one. */
  retryAfterSeconds?: number;
  /** One line for a person (names host and port, never a cookie or a ticket). */
  message: string;
}

/**
 * The gateway answered something a Latchkey gateway does not answer to this probe (404: wrong
 * URL; 403: the Origin was refused; a redirect; a 200 without a ticket). Retrying will not fix
 * it, and signing in would not either: the client's gateway URL or a proxy in between is wrong.
 */
export interface Rejected {
  /** Discriminant. */
  status: 'rejected';
  /** The HTTP status answered. */
  httpStatus: number;
  /** One line for a person. */
  message: string;
}

/** The outcome of {@link checkConnection}. */
export type ConnectionState = Connected | NeedsLogin | Unreachable | Rejected;

/**
 * Parses and checks the gateway's base URL (its deployment prefix included, e.g.
 * `https://example.com/dash/`): http(s) only, no credentials or query; always ends in `/`.
 */
export function gatewayBaseUrl(gatewayUrl: string | URL, options: { allowInsecureHttp?: boolean } = {}): URL {
  let u: URL;
  try {
    u = new URL(String(gatewayUrl));
  } catch {
    throw new LatchkeyError('LK_USAGE', 'gatewayUrl is not a valid URL');
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new LatchkeyError('LK_USAGE', `gatewayUrl must be http or https, got ${u.protocol}`);
  if (u.username !== '' || u.password !== '') throw new LatchkeyError('LK_USAGE', 'gatewayUrl must not carry credentials');
  if (u.search !== '') throw new LatchkeyError('LK_USAGE', 'gatewayUrl must not have a query');
  if (u.protocol === 'http:' && !isLoopbackHost(u.hostname) && !options.allowInsecureHttp) {
    throw new LatchkeyError('LK_INSECURE_ENDPOINT', `gatewayUrl is plain http to ${u.host}: the session cookies would travel in clear text (use https, or set allowInsecureHttp)`);
  }
  u.hash = '';
  if (!u.pathname.endsWith('/')) u.pathname = `${u.pathname}/`;
  return u;
}

/** `Retry-After` as seconds (delta-seconds or an HTTP date), undefined when absent or unusable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d{1,9}$/.test(v)) return Number(v);
  // An HTTP-date (RFC 9110 §5.6.7) always names a day or month; Date.parse would take "-5" as a year.
  if (!/[A-Za-z]{3}/.test(v)) return undefined;
  const t = Date.parse(v);
  if (!Number.isFinite(t)) return undefined;
  return Math.max(0, Math.ceil((t - now) / 1000));
}

/** Reads at most {@link MAX_ANSWER_BYTES} of the body as JSON; undefined when it is not JSON or too big. */
async function readJson(res: Response): Promise<unknown> {
  const type = res.headers.get('content-type') ?? '';
  if (!/\bjson\b/i.test(type)) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  const reader = res.body?.getReader();
  if (!reader) return undefined;
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > MAX_ANSWER_BYTES) {
      await reader.cancel().catch(() => undefined);
      return undefined;
    }
    chunks.push(value);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

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

function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError';
}

function isTimeout(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'TimeoutError';
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
 * (`LK_USAGE`, `LK_INSECURE_ENDPOINT`) only for a bad `gatewayUrl`, and a `TypeError` for
 * something that is not a cookie store.
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

  const doFetch = options.fetch ?? fetch;
  const timeout = AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await doFetch(ticketUrl, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        accept: 'application/json',
        cookie: sent.map((c) => `${c.name}=${c.value}`).join('; '),
        origin: base.origin,
        [CSRF_HEADER]: '1',
      },
      signal,
    });
  } catch (err) {
    if (options.signal?.aborted) return { status: 'unreachable', reason: 'aborted', message: `the check of ${base.host} was cancelled` };
    if (isTimeout(err) || (isAbort(err) && timeout.aborted)) {
      return { status: 'unreachable', reason: 'timeout', message: `${base.host} did not answer within ${options.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` };
    }
    return { status: 'unreachable', reason: 'network', message: describeNetworkError(err, base) };
  }

  let changes: CookieChanges = { changed: [], removed: [], rejected: [] };
  try {
    changes = await access.apply(ticketUrl, res.headers.getSetCookie(), now());
  } catch {
    // A cookie store that fails to write must not turn a verdict into an exception; the next
    // check simply carries the old cookies (the gateway's successor entry answers them).
  }
  const retryAfter = parseRetryAfter(res.headers.get('retry-after'), now());
  const withRetry = retryAfter === undefined ? {} : { retryAfterSeconds: retryAfter };

  let body: unknown;
  try {
    body = await readJson(res);
  } catch (err) {
    if (res.status >= 500 || res.status === 429) body = undefined;
    else return { status: 'unreachable', reason: 'network', message: describeNetworkError(err, base) };
  }

  if (res.status === 200) {
    const b = body as { ticket?: unknown; ttlSeconds?: unknown } | undefined;
    if (typeof b?.ticket === 'string' && b.ticket !== '' && typeof b.ttlSeconds === 'number' && Number.isFinite(b.ttlSeconds) && b.ttlSeconds > 0) {
      return { status: 'connected', ticket: new Secret(b.ticket), ttlSeconds: b.ttlSeconds, cookiesRotated: changes.changed.length > 0 };
    }
    return { status: 'rejected', httpStatus: 200, message: `${base.host} answered 200 without a ticket: is ${base.href} a Latchkey gateway?` };
  }
  if (res.status === 401) {
    const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
    if (error === 'session_expired') return { status: 'needsLogin', reason: 'session_expired', loginUrl: loginUrlFrom(body, base) };
    return { status: 'rejected', httpStatus: 401, message: `${base.host} answered 401 without "session_expired": something other than the Latchkey gateway refused the request` };
  }
  if (res.status === 503) return { status: 'unreachable', reason: 'unavailable', httpStatus: 503, ...withRetry, message: `${base.host} is temporarily unavailable (503)${errorSuffix(body)}` };
  if (res.status === 429) return { status: 'unreachable', reason: 'rate_limited', httpStatus: 429, ...withRetry, message: `${base.host} is rate limiting (429)` };
  if (res.status >= 500) return { status: 'unreachable', reason: 'server_error', httpStatus: res.status, ...withRetry, message: `${base.host} answered ${res.status}${errorSuffix(body)}` };
  return { status: 'rejected', httpStatus: res.status, message: `${base.host} answered ${res.status} to ${WS_TICKET_PATH}${errorSuffix(body)}` };
}

/** `: <error code>` from a JSON error body, sanitized, or nothing. */
function errorSuffix(body: unknown): string {
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  return typeof error === 'string' && error !== '' ? `: ${sanitizeRemoteText(error, 80)}` : '';
}
