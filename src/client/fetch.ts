import { isLoopbackHost } from '../net/loopback.js';
import type { MethodName } from '../config/constants.js';
import { ExitCode, LatchkeyError, type OperatorAction } from '../core/errors.js';
import { WrongDestinationError, type AuthMethod, type AuthRequest } from '../methods/method.js';
import type { FetchLike } from '../oauth/endpoint.js';
import { asMethodFailure, fixForMethod, type MethodFailure, type Prepared, type SourceAuth } from './auth-path.js';
import { describeNetworkError } from '../net/describe-network-error.js';
import { sanitizeRemoteText } from '../core/sanitize.js';

/**
 * `lk.fetch`: a request with the current auth path's credentials and one bounded 401
 * recovery (DESIGN.md "Methods and the 401 path").
 *
 * 1. The first usable method (in the source's order of preference) authorizes the request.
 * 2. On a 401 that method's `recover()` runs once (oauth: forced refresh under the lock;
 *    session: renewal; token: re-read the secret reference).
 * 3. Exactly one retry: with the recovered credential; else, when recovery found nothing
 *    new, with the next usable method (fallback) if there is one; else with the same
 *    credential (a 401 is sometimes transient). A recovery that failed for good (grant
 *    revoked) with nothing to fall back on is not retried at all.
 * 4. A second 401 is an {@link UnauthorizedError} carrying the operator action. Never a loop:
 *    at most two requests per call (plus redirects, which are followed by hand so that
 *    credentials never travel to another origin).
 */

/** Redirect statuses that carry a Location to follow (RFC 9110 §15.4). */
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const MAX_REDIRECTS = 20;
/** Request headers that identify the caller and must not follow a redirect to another origin. */
const CREDENTIAL_HEADERS = ['authorization', 'cookie', 'proxy-authorization'];

/** A second 401: the credential is rejected even after recovery. */
export class UnauthorizedError extends LatchkeyError {
  /** HTTP status of the last answer (401). */
  readonly status: number;
  /** The method whose credential was sent last. */
  readonly authPath: MethodName;

  constructor(message: string, options: { source: string; status: number; authPath: MethodName; operatorAction: OperatorAction; fix: string; exitCode: ExitCode; cause?: unknown }) {
    super('LK_UNAUTHORIZED', message, options);
    this.name = 'UnauthorizedError';
    this.status = options.status;
    this.authPath = options.authPath;
  }
}

/** What happened to one authorized request (the probe reads this; `lk.fetch` turns a final 401 into an error). */
export interface AuthorizedOutcome {
  /** The URL that was requested (before any redirect). */
  url: URL;
  /** The last answer (body unread). */
  response: Response;
  /** The method whose credential went with the last request. */
  method: AuthMethod;
  methodIndex: number;
  /** Requests made (redirect hops not counted): 1, or 2 after a 401. */
  attempts: 1 | 2;
  /** Methods passed over before the request went out (unavailable, or held back after a rejection). */
  skipped: MethodFailure[];
  /** Credentials the API rejected during this call and could not be recovered, in order. */
  rejected: MethodFailure[];
  /** True when a 401 was answered by a new credential of the same method. */
  recovered: boolean;
}

export interface SendOptions {
  /** Use only the method at this index, no fallback (the probe tries each method in turn). */
  only?: number;
  /** Skip methods whose credential was just rejected (default true; the probe re-tests them). */
  honourRejections?: boolean;
}

/** The request, normalized once so it can be sent twice. */
interface Outgoing {
  url: URL;
  method: string;
  /** The caller's headers; undefined when there were none (the common case: no copy needed). */
  headers: Headers | undefined;
  body: BodyInit | null | undefined;
  /** Whether `body` can be sent again (a stream cannot). */
  replayable: boolean;
  redirect: RequestRedirect;
  /** Everything else the caller passed (signal, keepalive, duplex, …). */
  rest: RequestInit;
}

/**
 * Sends `input` with the source's credentials and the bounded 401 recovery; resolves with the
 * last answer whatever its status. Throws a typed error when no method is usable.
 */
export async function sendAuthorized(auth: SourceAuth, fetchImpl: FetchLike, input: string | URL | Request, init: RequestInit | undefined, options: SendOptions = {}): Promise<AuthorizedOutcome> {
  const req = await toOutgoing(auth.source, input, init);
  const target: AuthRequest = { url: req.url, method: req.method };
  if (req.rest.signal) target.signal = req.rest.signal;
  const first = await auth.prepare(target, 0, options);
  const res1 = await send(auth.source, fetchImpl, req, first);
  if (res1.status !== 401) {
    auth.clearRejected(first.index);
    return { url: req.url, response: res1, method: first.method, methodIndex: first.index, attempts: 1, skipped: first.skipped, rejected: [], recovered: false };
  }

  // One recovery.
  let recovered = false;
  let recoveryError: LatchkeyError | undefined;
  try {
    recovered = await first.method.recover(first.auth, target);
  } catch (err) {
    if (!(err instanceof LatchkeyError) || !err.operatorAction) throw err;
    recoveryError = err;
  }
  let second: Prepared | undefined;
  if (recovered) {
    try {
      second = { ...first, auth: await first.method.authorize(target), skipped: [] };
    } catch (err) {
      const failure = asMethodFailure(first.method, err);
      if (!failure) throw err;
      recoveryError = failure.error;
    }
  }
  const rejected: MethodFailure[] = [];
  if (second === undefined) {
    const reason = recoveryError ? `rejected (401) and recovery failed: ${recoveryError.message}` : 'rejected (401); recovery found no other credential';
    auth.markRejected(first.index, first.auth.credential, reason);
    rejected.push({ method: first.method.name, reason, operatorAction: recoveryError?.operatorAction ?? first.method.rejectedAction, ...(recoveryError ? { error: recoveryError } : {}) });
    if (options.only === undefined && first.index + 1 < auth.methods.length) {
      second = await auth.prepare(target, first.index + 1, options).catch((err: unknown) => {
        // Nothing further applies to this URL, or nothing further is usable: no fallback.
        if (err instanceof WrongDestinationError) return undefined;
        if (err instanceof LatchkeyError && err.operatorAction && err.operatorAction !== 'fix_config') return undefined;
        throw err;
      });
    }
    // Nothing else to try: retry the same credential once, unless recovery said it is dead.
    if (second === undefined && recoveryError === undefined) second = { ...first, skipped: [] };
  }
  if (second === undefined) {
    return { url: req.url, response: res1, method: first.method, methodIndex: first.index, attempts: 1, skipped: first.skipped, rejected, recovered };
  }
  if (!req.replayable) {
    await discard(res1);
    throw notReplayable(auth.source, req.url, first.method, recovered || second.index !== first.index, rejected);
  }
  await discard(res1);

  // Exactly one retry.
  const res2 = await send(auth.source, fetchImpl, req, second);
  if (res2.status === 401) {
    const reason = recovered ? 'rejected (401) again with the recovered credential' : 'rejected (401) on the one retry';
    auth.markRejected(second.index, second.auth.credential, reason);
    if (second.index !== first.index || recovered) rejected.push({ method: second.method.name, reason, operatorAction: second.method.rejectedAction });
  } else {
    auth.clearRejected(second.index);
  }
  return { url: req.url, response: res2, method: second.method, methodIndex: second.index, attempts: 2, skipped: [...first.skipped, ...second.skipped], rejected, recovered };
}

/**
 * `lk.fetch(source, input, init)`: like `fetch`, with the source's credentials and one bounded
 * 401 recovery. Any status but a final 401 is returned as is; a final 401 throws
 * {@link UnauthorizedError} (code `LK_UNAUTHORIZED`) with the operator action and its fix.
 */
export async function authorizedFetch(auth: SourceAuth, fetchImpl: FetchLike, input: string | URL | Request, init?: RequestInit): Promise<Response> {
  const outcome = await sendAuthorized(auth, fetchImpl, input, init);
  if (outcome.response.status !== 401) return outcome.response;
  await discard(outcome.response);
  throw unauthorized(auth, outcome);
}

function unauthorized(auth: SourceAuth, outcome: AuthorizedOutcome): UnauthorizedError {
  const primary = outcome.rejected[0] ?? { method: outcome.method.name, reason: 'rejected (401)', operatorAction: outcome.method.rejectedAction };
  const method = auth.methods.find((m) => m.name === primary.method);
  const url = describeUrl(outcome.url);
  const tried = outcome.rejected.map((r) => `${r.method}: ${r.reason}`).join('; ');
  return new UnauthorizedError(`${auth.source}: ${url} answered 401 after ${outcome.attempts} request${outcome.attempts === 1 ? '' : 's'} (${tried})`, {
    source: auth.source,
    status: 401,
    authPath: outcome.method.name,
    operatorAction: primary.operatorAction,
    fix: fixForMethod(auth.source, method, primary.operatorAction),
    exitCode: primary.error?.exitCode === ExitCode.unreachable ? ExitCode.unreachable : ExitCode.actionRequired,
    cause: primary.error,
  });
}

/** `retryable`: a new credential or another method is ready, so sending the request again would likely work. */
function notReplayable(source: string, url: URL, method: AuthMethod, retryable: boolean, rejected: MethodFailure[]): LatchkeyError {
  const action = rejected[0]?.operatorAction ?? method.rejectedAction;
  return new LatchkeyError(
    'LK_UNAUTHORIZED',
    `${source}: ${describeUrl(url)} answered 401 and the request was not retried because its body is a stream, which cannot be sent twice${
      retryable ? ' (new credentials are ready: sending the request again will use them)' : ''
    }; pass a string, Uint8Array, Blob, FormData or URLSearchParams body to get the automatic retry`,
    retryable ? { source, exitCode: ExitCode.unreachable } : { source, operatorAction: action, exitCode: ExitCode.actionRequired },
  );
}

/** Origin and path only: a query string may carry secrets, so messages never show it. */
export function describeUrl(url: URL): string {
  return `${url.origin}${url.pathname}`;
}

async function toOutgoing(source: string, input: string | URL | Request, init: RequestInit = {}): Promise<Outgoing> {
  let url: URL;
  let method = 'GET';
  let headers: Headers | undefined;
  let body: BodyInit | null | undefined;
  let rest: RequestInit = {};
  let redirect: RequestRedirect = 'follow';
  if (input instanceof Request) {
    url = new URL(input.url);
    method = input.method;
    headers = new Headers(input.headers);
    redirect = input.redirect;
    rest = { signal: input.signal };
    // A Request's body is a stream that can be read once: buffer it so the retry can resend it.
    if (input.body !== null && init.body === undefined) body = await input.arrayBuffer();
  } else {
    try {
      url = new URL(input);
    } catch {
      throw new LatchkeyError('LK_USAGE', `${source}: "${sanitizeRemoteText(String(input))}" is not an absolute URL`, { source });
    }
  }
  const { headers: initHeaders, body: initBody, method: initMethod, redirect: initRedirect, ...initRest } = init;
  rest = { ...rest, ...initRest };
  if (initHeaders !== undefined) headers = new Headers(initHeaders);
  if (initMethod !== undefined) method = initMethod.toUpperCase();
  if (initRedirect !== undefined) redirect = initRedirect;
  if (initBody !== undefined) body = initBody;
  checkDestination(source, url);
  return { url, method, headers, body, replayable: isReplayable(body), redirect, rest };
}

/** Credentials travel only over HTTPS, or plain HTTP to this machine (RFC 6750 §5.3). */
function checkDestination(source: string, url: URL): void {
  if (url.protocol === 'https:') return;
  if (url.protocol === 'http:') {
    if (isLoopbackHost(url.hostname)) return;
    throw new LatchkeyError('LK_INSECURE_ENDPOINT', `${source}: refusing to send credentials over plain http to ${url.host}; use https (plain http is allowed only to loopback)`, { source });
  }
  throw new LatchkeyError('LK_USAGE', `${source}: ${url.protocol} URLs are not supported (http or https only)`, { source });
}

function isReplayable(body: BodyInit | null | undefined): boolean {
  return (
    body === undefined ||
    body === null ||
    typeof body === 'string' ||
    body instanceof URLSearchParams ||
    body instanceof Blob ||
    body instanceof ArrayBuffer ||
    ArrayBuffer.isView(body) ||
    body instanceof FormData
  );
}

/** RFC 9110 §5.1 field name and §5.5 field value (no CR, LF or NUL: nothing that could inject a header). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Credential header sets already checked (methods hand back the same object while their credential is unchanged). */
const checkedCredentials = new WeakSet<Record<string, string>>();

/** The method's credential headers, refused if any would not be a valid header (a hostile or broken credential). */
function credentialHeaders(source: string, prepared: Prepared): Record<string, string> {
  const headers = prepared.auth.headers;
  if (checkedCredentials.has(headers)) return headers;
  for (const name in headers) {
    if (!HEADER_NAME.test(name) || !HEADER_VALUE.test(headers[name]!)) {
      throw new LatchkeyError('LK_UNAUTHORIZED', `${source}: the ${prepared.method.name} method produced an invalid value for the ${name} header; it was not sent`, {
        source,
        operatorAction: prepared.method.rejectedAction,
        exitCode: ExitCode.actionRequired,
      });
    }
  }
  checkedCredentials.add(headers);
  return headers;
}

/** The request's headers with the method's credentials set over them (the caller's own Authorization is replaced). */
function withCredentials(source: string, base: Headers | undefined, prepared: Prepared): HeadersInit {
  const credentials = credentialHeaders(source, prepared);
  if (base === undefined) return credentials;
  const headers = new Headers(base);
  for (const name in credentials) headers.set(name, credentials[name]!);
  return headers;
}

/**
 * One request, following redirects by hand when the caller asked for `follow` (the default):
 * credentials go only to the origin they were prepared for, and every credential header is
 * dropped once a redirect leaves it (as the fetch standard does for Authorization).
 */
async function send(source: string, fetchImpl: FetchLike, req: Outgoing, prepared: Prepared): Promise<Response> {
  const follow = req.redirect === 'follow';
  let url = req.url;
  let method = req.method;
  let body = req.body;
  let headers = withCredentials(source, req.headers, prepared);
  for (let hop = 0; ; hop++) {
    // The href string, not the URL object: fetch parses a string faster than it copies a URL.
    const res = await fetchImpl(url.href, { ...req.rest, method, headers, body, redirect: follow ? 'manual' : req.redirect });
    if (!follow || !REDIRECT_STATUSES.has(res.status)) return res;
    const location = res.headers.get('location');
    if (location === null) return res;
    let next: URL;
    try {
      next = new URL(location, url);
    } catch {
      return res;
    }
    if (next.protocol !== 'http:' && next.protocol !== 'https:') return res;
    if (hop >= MAX_REDIRECTS) {
      await discard(res);
      throw new LatchkeyError('LK_UNREACHABLE', `${source}: ${describeUrl(req.url)} redirected more than ${MAX_REDIRECTS} times`, { source });
    }
    // RFC 9110 §15.4.4: 303 turns into GET; 301/302 after POST do too, as every browser does.
    const toGet = (res.status === 303 && method !== 'GET' && method !== 'HEAD') || ((res.status === 301 || res.status === 302) && method === 'POST');
    if (toGet) {
      method = 'GET';
      body = undefined;
      headers = new Headers(headers);
      for (const h of ['content-type', 'content-length', 'content-encoding', 'content-language', 'content-location']) headers.delete(h);
    } else if (body !== undefined && body !== null && !req.replayable) {
      return res;
    }
    if (next.origin !== url.origin) {
      headers = new Headers(headers);
      for (const h of CREDENTIAL_HEADERS) headers.delete(h);
      for (const name in prepared.auth.headers) headers.delete(name);
    }
    await discard(res);
    url = next;
  }
}

/** "network error: connection refused by 127.0.0.1:9 (ECONNREFUSED)" from undici's `TypeError: fetch failed` and its cause chain. */
export function networkErrorText(err: unknown, url?: string | URL): string {
  return `network error: ${describeNetworkError(err, url)}`;
}

/** Releases a response we will not read (so its connection can be reused or closed). */
export async function discard(res: Response): Promise<void> {
  if (res.body && !res.bodyUsed) await res.body.cancel().catch(() => undefined);
}
