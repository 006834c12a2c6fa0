/**
 * One authenticated POST from a client to the gateway, shared by `checkConnection` and
 * `signOut`: the client's cookies for the URL, the gateway's own `Origin` and the CSRF header
 * (the gateway refuses state-changing requests without both), no redirects followed, a
 * deadline, the answer's `Set-Cookie` headers stored, a small JSON body read. A request that
 * got no answer, and an answer that says "not now" (429, 5xx), become {@link Unreachable};
 * what a Latchkey gateway never answers becomes {@link Rejected}.
 */
import { LatchkeyError } from '../core/errors.js';
import { sanitizeRemoteText } from '../core/sanitize.js';
import { describeNetworkError } from '../net/describe-network-error.js';
import { isLoopbackHost } from '../net/loopback.js';
import { retryAfterMs } from '../http/retry-after.js';
import { readCappedBody } from '../http/capped-body.js';
import type { CookieAccess, CookieChanges } from './cookie-jar.js';
import type { CookieLike } from './session-cookies.js';

/** The header the gateway requires on state-changing routes (with a same-origin `Origin`). */
export const CSRF_HEADER = 'X-Latchkey-CSRF';

const DEFAULT_TIMEOUT_MS = 10_000;
/** A gateway's JSON answers are a few hundred bytes; anything much bigger is not a gateway talking. */
const MAX_ANSWER_BYTES = 16 * 1024;

/** Options of every call to the gateway ({@link checkConnection}, {@link signOut}). */
export interface GatewayCallOptions {
  /** The `fetch` to use (default: the global one). It must not add cookies of its own. */
  fetch?: typeof fetch;
  /** Give up after this many milliseconds and answer `unreachable` (default 10 000). */
  timeoutMs?: number;
  /** Aborts the call (the answer is then `unreachable`, reason `aborted`). */
  signal?: AbortSignal;
  /** The current time in epoch milliseconds, for cookie expiry (default `Date.now`). */
  now?: () => number;
  /**
   * Allow a plain-`http` gateway on a non-loopback host. Off by default: the session cookies
   * would cross the network in clear text.
   */
  allowInsecureHttp?: boolean;
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
 * The gateway answered something a Latchkey gateway does not answer to this call (404: wrong
 * URL; 403: the Origin was refused; a redirect; a 200 without the expected body). Retrying will
 * not fix it, and signing in would not either: the client's gateway URL or a proxy in between is
 * wrong.
 */
export interface Rejected {
  /** Discriminant. */
  status: 'rejected';
  /** The HTTP status answered. */
  httpStatus: number;
  /** One line for a person. */
  message: string;
}

/** What one call brought back: an answer to judge, or no usable answer. */
export type GatewayAnswer = { kind: 'answer'; status: number; body: unknown; changes: CookieChanges; retryAfterSeconds?: number } | { kind: 'failed'; result: Unreachable };

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
  const ms = retryAfterMs(value, now);
  return ms === undefined ? undefined : Math.ceil(ms / 1000);
}

/** Reads at most {@link MAX_ANSWER_BYTES} of the body as JSON; undefined when it is not JSON or too big. */
async function readJson(res: Response): Promise<unknown> {
  const type = res.headers.get('content-type') ?? '';
  if (!/\bjson\b/i.test(type)) {
    await res.body?.cancel().catch(() => undefined);
    return undefined;
  }
  const body = await readCappedBody(res.body, MAX_ANSWER_BYTES);
  if (!body.ok) return undefined;
  try {
    return JSON.parse(Buffer.from(body.bytes).toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

function errorName(err: unknown): unknown {
  return typeof err === 'object' && err !== null ? (err as { name?: unknown }).name : undefined;
}

/**
 * POSTs to `url` (on the gateway at `base`) with the cookies `sent`, stores what the answer
 * sets, and reads its JSON body. Never throws for the network or the answer.
 */
export async function postToGateway(base: URL, url: URL, access: CookieAccess, sent: readonly CookieLike[], options: GatewayCallOptions): Promise<GatewayAnswer> {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const timeout = AbortSignal.timeout(timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let res: Response;
  try {
    res = await (options.fetch ?? fetch)(url, {
      method: 'POST',
      redirect: 'manual',
      headers: {
        accept: 'application/json',
        ...(sent.length ? { cookie: sent.map((c) => `${c.name}=${c.value}`).join('; ') } : {}),
        origin: base.origin,
        [CSRF_HEADER]: '1',
      },
      signal,
    });
  } catch (err) {
    if (options.signal?.aborted) return { kind: 'failed', result: { status: 'unreachable', reason: 'aborted', message: `the call to ${base.host} was cancelled` } };
    if (errorName(err) === 'TimeoutError' || (errorName(err) === 'AbortError' && timeout.aborted)) {
      return { kind: 'failed', result: { status: 'unreachable', reason: 'timeout', message: `${base.host} did not answer within ${timeoutMs} ms` } };
    }
    return { kind: 'failed', result: { status: 'unreachable', reason: 'network', message: describeNetworkError(err, base) } };
  }

  let changes: CookieChanges = { changed: [], removed: [], rejected: [] };
  try {
    changes = await access.apply(url, res.headers.getSetCookie(), now());
  } catch {
    // A cookie store that fails to write must not turn a verdict into an exception; the next
    // call simply carries the old cookies (the gateway's successor entry answers them).
  }
  const retryAfterSeconds = parseRetryAfter(res.headers.get('retry-after'), now());
  let body: unknown;
  try {
    body = await readJson(res);
  } catch (err) {
    // The connection broke in the middle of the body: for a 2xx or 4xx that is no answer at all.
    if (res.status < 500 && res.status !== 429) return { kind: 'failed', result: { status: 'unreachable', reason: 'network', message: describeNetworkError(err, base) } };
  }
  return { kind: 'answer', status: res.status, body, changes, ...(retryAfterSeconds === undefined ? {} : { retryAfterSeconds }) };
}

/** The `error` member of a JSON error body, if it is a string. */
export function errorCodeOf(body: unknown): string | undefined {
  const error = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  return typeof error === 'string' ? error : undefined;
}

/** `: <error code>` from a JSON error body, sanitized, or nothing. */
function errorSuffix(body: unknown): string {
  const error = errorCodeOf(body);
  return error ? `: ${sanitizeRemoteText(error, 80)}` : '';
}

/**
 * The verdict on an answer that is neither the route's success nor the gateway's "session
 * over": 503, 429 and other 5xx are `unreachable` (with `Retry-After`); anything else is
 * `rejected`.
 */
export function failureOf(answer: Extract<GatewayAnswer, { kind: 'answer' }>, base: URL, route: string): Unreachable | Rejected {
  const { status, body } = answer;
  const retry = answer.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: answer.retryAfterSeconds };
  if (status === 503) return { status: 'unreachable', reason: 'unavailable', httpStatus: 503, ...retry, message: `${base.host} is temporarily unavailable (503)${errorSuffix(body)}` };
  if (status === 429) return { status: 'unreachable', reason: 'rate_limited', httpStatus: 429, ...retry, message: `${base.host} is rate limiting (429)` };
  if (status >= 500) return { status: 'unreachable', reason: 'server_error', httpStatus: status, ...retry, message: `${base.host} answered ${status}${errorSuffix(body)}` };
  if (status === 401) return { status: 'rejected', httpStatus: 401, message: `${base.host} answered 401 without "session_expired": something other than the Latchkey gateway refused the request` };
  return { status: 'rejected', httpStatus: status, message: `${base.host} answered ${status} to ${route}${errorSuffix(body)}` };
}
