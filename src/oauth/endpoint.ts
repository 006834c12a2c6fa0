import * as oauth from 'oauth4webapi';
import { LatchkeyError } from '../core/errors.js';
import { isLoopbackHost } from '../net/loopback.js';
import { readCappedBody } from '../http/capped-body.js';

export type FetchLike = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Largest token/discovery response we will read (a token response is a few KB). */
export const MAX_RESPONSE_BYTES = 1024 * 1024;

export { isLoopbackHost } from '../net/loopback.js';

/**
 * OAuth endpoints must be HTTPS (RFC 9700 §2.6); plain HTTP is allowed only on loopback, where
 * the traffic never leaves the machine (tests, local IdPs, RFC 8252 redirects).
 */
export function checkEndpoint(url: string, what: string, source?: string): URL {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new LatchkeyError('LK_CONFIG_INVALID', `${what} is not a valid URL`, { source });
  }
  if (u.protocol === 'https:') return u;
  if (u.protocol === 'http:' && isLoopbackHost(u.hostname)) return u;
  throw new LatchkeyError('LK_INSECURE_ENDPOINT', `${what} ${u.origin} must use https (plain http is allowed only on loopback)`, { source });
}

/** Options for every oauth4webapi call: injected fetch with a body-size cap, timeout, loopback http. */
export interface OAuthCallOptions {
  [oauth.customFetch]: (url: string, options: { body?: unknown; headers: Record<string, string>; method: string; redirect: 'manual'; signal?: AbortSignal }) => Promise<Response>;
  signal: AbortSignal;
  [oauth.allowInsecureRequests]?: boolean;
}

export function requestOptions(url: URL, fetchImpl: FetchLike, timeoutMs: number): OAuthCallOptions {
  const limited = limitedFetch(fetchImpl);
  return {
    [oauth.customFetch]: (u, options) => limited(u, options as RequestInit),
    signal: AbortSignal.timeout(timeoutMs),
    ...(url.protocol === 'http:' ? { [oauth.allowInsecureRequests]: true } : {}),
  };
}

/** An answer larger than the limit: not read (whatever it holds), its status kept for the classification. */
export class ResponseTooLargeError extends LatchkeyError {
  readonly status: number;
  constructor(status: number, message: string) {
    super('LK_TOKEN_ENDPOINT', message);
    this.status = status;
  }
}

/** Wraps fetch so an endpoint that streams megabytes of garbage cannot exhaust memory. */
export function limitedFetch(fetchImpl: FetchLike, maxBytes = MAX_RESPONSE_BYTES): FetchLike {
  return async (input, init) => {
    const res = await fetchImpl(input, init);
    const declared = Number(res.headers.get('content-length') ?? '0');
    if (declared > maxBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw new ResponseTooLargeError(res.status, `response of ${declared} bytes exceeds the ${maxBytes}-byte limit`);
    }
    if (!res.body) return new Response(null, { status: res.status, statusText: res.statusText, headers: res.headers });
    const read = await readCappedBody(res.body, maxBytes);
    if (!read.ok) throw new ResponseTooLargeError(res.status, `response exceeds the ${maxBytes}-byte limit`);
    return new Response(read.bytes, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

/**
 * Without a configured issuer an ID token cannot be validated (its `iss` has nothing to match)
 * and the grant does not need it: it is dropped before oauth4webapi processes the response.
 */
export async function withoutIdToken(response: Response): Promise<Response> {
  if (!response.ok) return response;
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return new Response(text, { status: response.status, headers: response.headers });
  }
  if (body && typeof body === 'object' && !Array.isArray(body) && 'id_token' in body) delete (body as Record<string, unknown>).id_token;
  return new Response(JSON.stringify(body), { status: response.status, headers: response.headers });
}

/**
 * RFC 6749 §5.2 error responses are HTTP 400, but some token endpoints answer errors with HTTP
 * 200 and `{"error": …}` (GitHub: `authorization_pending`, `slow_down`, `bad_verification_code`;
 * Slack). oauth4webapi would read such an answer as a success without its `access_token`; it
 * is re-labelled 400 here so that it is handled as the error it is. Anything else is left as is.
 */
export async function errorIn200AsError(response: Response): Promise<Response> {
  if (response.status !== 200) return response;
  const text = await response.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  const isError = typeof body === 'object' && body !== null && !Array.isArray(body) && typeof (body as Record<string, unknown>).error === 'string' && !('access_token' in body);
  if (!isError) return new Response(text, { status: 200, statusText: response.statusText, headers: response.headers });
  const headers = new Headers(response.headers);
  headers.set(ORIGINAL_STATUS_HEADER, '200');
  return new Response(text, { status: 400, statusText: 'Bad Request', headers });
}

/** Marks a response re-labelled by {@link errorIn200AsError}, so messages quote the status the IdP sent. */
export const ORIGINAL_STATUS_HEADER = 'x-latchkey-original-status';

/**
 * Token types accepted besides `bearer` (and `dpop`, which oauth4webapi handles): Slack's
 * OAuth v2 answers `token_type: "bot"` (and `"user"`) for tokens that are sent as
 * `Authorization: Bearer`. Any other type is refused (RFC 6749 §7.1: a client must not use a
 * token whose type it does not understand).
 */
export const RECOGNIZED_TOKEN_TYPES: oauth.RecognizedTokenTypes = {
  bot: () => undefined,
  user: () => undefined,
};

/** The caller's signal bounded by a timeout (either one aborting aborts the request). */
export function withTimeout(timeoutMs: number, signal?: AbortSignal): AbortSignal {
  const timeout = AbortSignal.timeout(timeoutMs);
  return signal ? AbortSignal.any([signal, timeout]) : timeout;
}
