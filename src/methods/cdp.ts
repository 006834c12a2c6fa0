/**
 * Reading (and re-issuing) a signed-in tab's cookies from the operator's running Chrome over
 * the Chrome DevTools Protocol, through `playwright-core`'s `connectOverCDP`.
 *
 * - `playwright-core` is imported lazily, so nothing but a CDP renewal pays for loading it.
 * - Every step (endpoint check, connect, cookie read, reload, readyState check) is bounded by
 *   `timeoutMs`; a late connection is closed as soon as it arrives.
 * - We only ever *disconnect*: `browser.close()` on a `connectOverCDP` browser clears the
 *   contexts we created (none) and drops the connection; the operator's browser and tabs stay.
 * - Errors name the endpoint (origin only) and the tab pattern, never a cookie, and never a
 *   tab's URL (it may carry an OAuth code or a token in its query string).
 */
import type { Browser, BrowserContext, Page } from 'playwright-core';
import type { FetchLike } from '../oauth/endpoint.js';

/** Default bound on every CDP step (10 s). */
export const DEFAULT_CDP_TIMEOUT_MS = 10_000;

/** What went wrong talking to the browser. */
export type CdpFailure =
  /** Nothing answers at the endpoint (refused, DNS, reset). */
  | 'unreachable'
  /** Something answers, but it is not a Chrome DevTools endpoint. */
  | 'not_chrome'
  /** Connected, but no tab's URL matches the pattern. */
  | 'tab_gone'
  /** A step did not finish within the timeout (connect, cookies, reload, readyState). */
  | 'timeout'
  /** Any other protocol failure. */
  | 'failed';

/** A CDP failure; `message` names the endpoint and tab pattern, never a secret. */
export class CdpError extends Error {
  readonly failure: CdpFailure;
  /** The step that failed (`connect`, `find tab`, `read cookies`, `reload`, …). */
  readonly step: string;

  constructor(failure: CdpFailure, step: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CdpError';
    this.failure = failure;
    this.step = step;
  }
}

/** A cookie as the browser holds it. */
export interface BrowserCookie {
  name: string;
  value: string;
  domain: string;
  path: string;
  /** Epoch seconds; -1 for a session cookie. */
  expires: number;
  httpOnly: boolean;
  secure: boolean;
}

/** Where the signed-in tab is and how long each step may take. */
export interface CdpTabTarget {
  /** `http://127.0.0.1:9222` (the `--remote-debugging-port`), or a `ws://…/devtools/browser/…` URL. */
  endpoint: string;
  /** URL pattern of the signed-in tab; `*` matches any run of characters. */
  tabUrl: string;
  /** Cookies are read for this URL (the session's origin). */
  origin: string;
  /** Bound on each step (default {@link DEFAULT_CDP_TIMEOUT_MS}). */
  timeoutMs?: number;
  /** Used for the endpoint check (`/json/version`); defaults to the global fetch. */
  fetch?: FetchLike;
  /** Stops the visit (every step fails at once, the connection is dropped) when it aborts. */
  signal?: AbortSignal;
}

/** What one visit to the tab found. */
export interface TabCookies {
  cookies: BrowserCookie[];
  /** Whether the tab was reloaded (and finished loading) before the cookies were read. */
  reloaded: boolean;
}

/**
 * Compiles a tab URL pattern: `*` matches any run of characters, everything else is literal,
 * and the whole URL must match (`https://app.hubspot.com/*` does not match
 * `https://app.hubspot.com.evil.example/`).
 */
export function tabUrlMatcher(pattern: string): (url: string) => boolean {
  const source = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('.*');
  const re = new RegExp(`^${source}$`);
  return (url) => re.test(url);
}

/** The endpoint as named in messages: its origin only (a ws URL's path is a capability). */
export function describeEndpoint(endpoint: string): string {
  try {
    const u = new URL(endpoint);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(invalid endpoint URL)';
  }
}

/**
 * Connects to the browser, finds the tab whose URL matches `tabUrl` (in every context),
 * optionally reloads it and waits for `document.readyState === 'complete'`, then reads the
 * cookies the browser would send to `origin`. Always disconnects without closing the browser.
 */
export async function readTabCookies(target: CdpTabTarget, options: { reload: boolean }): Promise<TabCookies> {
  const timeoutMs = target.timeoutMs ?? DEFAULT_CDP_TIMEOUT_MS;
  const where = `Chrome DevTools endpoint ${describeEndpoint(target.endpoint)}`;
  const matches = tabUrlMatcher(target.tabUrl);

  const signal = target.signal;
  signal?.throwIfAborted();
  const bounded = <T>(promise: Promise<T>, ms: number, step: string, what: string): Promise<T> => boundedStep(promise, ms, step, what, signal);
  const wsEndpoint = await checkDevToolsEndpoint(target.endpoint, timeoutMs, target.fetch ?? ((i, init) => fetch(i, init)), signal);
  const { chromium } = await import('playwright-core');
  signal?.throwIfAborted();
  const connecting = chromium.connectOverCDP(wsEndpoint, { timeout: timeoutMs, noDefaults: true });
  let browser: Browser;
  try {
    browser = await bounded(connecting, timeoutMs, 'connect', where);
  } catch (err) {
    // A connection that completes after we gave up must not stay open.
    connecting.then((late) => late.close().catch(() => undefined), () => undefined);
    if (err instanceof CdpError) throw err;
    throw classifyConnectError(err, where);
  }

  try {
    const page = findTab(browser, matches);
    if (!page) {
      const count = browser.contexts().reduce((n, c) => n + c.pages().length, 0);
      throw new CdpError('tab_gone', 'find tab', `${where}: no open tab matches ${target.tabUrl} (${count} tab${count === 1 ? '' : 's'} open); the signed-in tab is gone`);
    }
    let reloaded = false;
    if (options.reload) {
      const what = `${where}: the tab matching ${target.tabUrl}`;
      await bounded(page.reload({ waitUntil: 'load', timeout: timeoutMs }), timeoutMs, 'reload', `${what} did not finish reloading`).catch((err: unknown) => {
        throw asStepError(err, 'reload', `${what} did not finish reloading within ${timeoutMs} ms`);
      });
      // The seed's check, verbatim: a reload counts only once the document is complete.
      const state = await bounded(
        page.evaluate(() => document.readyState),
        timeoutMs,
        'readyState',
        `${what} did not report document.readyState`,
      );
      if (state !== 'complete') throw new CdpError('timeout', 'readyState', `${what} is still "${state}" after reloading`);
      reloaded = true;
    }
    const context: BrowserContext = page.context();
    const cookies = await bounded(context.cookies([target.origin]), timeoutMs, 'read cookies', `${where}: reading cookies for ${target.origin}`);
    return {
      reloaded,
      cookies: cookies.map((c) => ({ name: c.name, value: c.value, domain: c.domain, path: c.path, expires: c.expires, httpOnly: c.httpOnly, secure: c.secure })),
    };
  } finally {
    // Disconnect only: for a connectOverCDP browser, close() drops our connection and the
    // contexts *we* created (none); the operator's browser and its tabs keep running.
    await boundedStep(browser.close(), Math.min(timeoutMs, 5_000), 'disconnect', where).catch(() => undefined);
  }
}

function findTab(browser: Browser, matches: (url: string) => boolean): Page | undefined {
  for (const context of browser.contexts()) {
    for (const page of context.pages()) {
      if (!page.isClosed() && matches(page.url())) return page;
    }
  }
  return undefined;
}

/**
 * `GET <endpoint>/json/version` must answer JSON with a `webSocketDebuggerUrl`: that is what
 * tells Chrome apart from any other HTTP server on the port. Returns the URL to connect to.
 * A `ws://` endpoint is used as is.
 */
async function checkDevToolsEndpoint(endpoint: string, timeoutMs: number, fetchImpl: FetchLike, signal: AbortSignal | undefined): Promise<string> {
  const where = `Chrome DevTools endpoint ${describeEndpoint(endpoint)}`;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new CdpError('failed', 'endpoint', `${where} is not a valid URL`);
  }
  if (url.protocol === 'ws:' || url.protocol === 'wss:') return endpoint;
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new CdpError('failed', 'endpoint', `${where}: expected an http(s) or ws(s) URL`);
  const versionUrl = new URL('json/version', url.href.endsWith('/') ? url.href : `${url.href}/`);
  let text: string;
  try {
    const timeout = AbortSignal.timeout(timeoutMs);
    const res = await fetchImpl(versionUrl, { signal: signal ? AbortSignal.any([signal, timeout]) : timeout, redirect: 'error' });
    if (!res.ok) {
      await res.body?.cancel().catch(() => undefined);
      throw new CdpError('not_chrome', 'endpoint', `${where} answered ${res.status} on /json/version; it is not a Chrome DevTools endpoint (start Chrome with --remote-debugging-port)`);
    }
    text = await readCapped(res, 64 * 1024, timeoutMs);
  } catch (err) {
    if (err instanceof CdpError) throw err;
    const e = err as Error;
    if (signal?.aborted) throw cancelled('endpoint', where, signal);
    if (e.name === 'TimeoutError' || e.name === 'AbortError') {
      throw new CdpError('timeout', 'endpoint', `${where} did not answer /json/version within ${timeoutMs} ms`, { cause: err });
    }
    throw new CdpError('unreachable', 'endpoint', `${where} is unreachable (${causeCode(err)}); is Chrome running with --remote-debugging-port?`, { cause: err });
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new CdpError('not_chrome', 'endpoint', `${where} answered /json/version with something that is not JSON; it is not a Chrome DevTools endpoint`);
  }
  const ws = typeof body === 'object' && body !== null ? (body as Record<string, unknown>).webSocketDebuggerUrl : undefined;
  if (typeof ws !== 'string' || !/^wss?:\/\//.test(ws)) {
    throw new CdpError('not_chrome', 'endpoint', `${where} answered /json/version without a webSocketDebuggerUrl; it is not a Chrome DevTools endpoint`);
  }
  // Chrome reports its own host in webSocketDebuggerUrl; keep the host we were told to use
  // (an SSH tunnel or a container port mapping) and take only the path from Chrome.
  const wsUrl = new URL(ws);
  wsUrl.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  wsUrl.host = url.host;
  return wsUrl.href;
}

async function readCapped(res: Response, maxBytes: number, timeoutMs: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  const timer = setTimeout(() => void reader.cancel().catch(() => undefined), timeoutMs);
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.byteLength;
      if (size > maxBytes) {
        await reader.cancel().catch(() => undefined);
        throw new CdpError('not_chrome', 'endpoint', 'the /json/version answer is too large for a Chrome DevTools endpoint');
      }
      chunks.push(value);
    }
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `promise`, or a CdpError once `timeoutMs` has passed or `signal` aborts (whichever is first). */
function boundedStep<T>(promise: Promise<T>, timeoutMs: number, step: string, what: string, signal?: AbortSignal): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new CdpError('timeout', step, `${what}: no answer within ${timeoutMs} ms (${step})`)), timeoutMs);
    if (signal) {
      onAbort = () => reject(cancelled(step, what, signal));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  return Promise.race([promise, timeout]).finally(() => {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  });
}

/** The caller gave up (a pre-flight's budget): reported as a timeout of the step in progress. */
function cancelled(step: string, what: string, signal: AbortSignal): CdpError {
  return new CdpError('timeout', step, `${what}: cancelled at the ${step} step (the caller stopped waiting)`, { cause: signal.reason });
}

function asStepError(err: unknown, step: string, message: string): CdpError {
  if (err instanceof CdpError) return new CdpError(err.failure, step, message, { cause: err });
  const e = err as Error;
  const failure: CdpFailure = e?.name === 'TimeoutError' || /timeout/i.test(e?.message ?? '') ? 'timeout' : /closed|detached|Target page/i.test(e?.message ?? '') ? 'tab_gone' : 'failed';
  return new CdpError(failure, step, failure === 'tab_gone' ? message.replace(/did not finish reloading.*$/, 'was closed while reloading') : message, { cause: err });
}

function classifyConnectError(err: unknown, where: string): CdpError {
  const msg = (err as Error)?.message ?? String(err);
  if (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ECONNRESET|EAI_AGAIN/.test(msg)) {
    return new CdpError('unreachable', 'connect', `${where} is unreachable; is Chrome running with --remote-debugging-port?`, { cause: err });
  }
  if (/timeout/i.test(msg)) return new CdpError('timeout', 'connect', `${where}: connecting timed out`, { cause: err });
  return new CdpError('not_chrome', 'connect', `${where}: the DevTools connection failed; it may not be Chrome`, { cause: err });
}

function causeCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string } })?.cause;
  return cause?.code ?? (err as NodeJS.ErrnoException)?.code ?? 'connection failed';
}
