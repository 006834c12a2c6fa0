import { createHash } from 'node:crypto';
import type { SessionConfig } from '../config/schema.js';
import { LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { CoreContext } from '../context.js';
import { isLoopbackHost } from '../net/loopback.js';
import { Secret } from '../core/secret.js';
import { untilAborted } from '../core/wait.js';
import type { SourceRecord, StoreTx } from '../store/store.js';
import { CdpError, describeEndpoint, readTabCookies, type BrowserCookie } from './cdp.js';
import { applySetCookies, checkCookie, parseCookieHeader, serializeCookieHeader, MAX_COOKIES } from '../http/cookies.js';
import { WrongDestinationError, type Availability, type AuthMethod, type AuthRequest, type MethodContext, type PreparedAuth } from './method.js';
import { describeNetworkError } from '../net/describe-network-error.js';

/** Default bound on the renewal request and on every DevTools step. */
export const DEFAULT_SESSION_TIMEOUT_MS = 10_000;

/** A set of session cookies and what they turn into on a request. */
interface Jar {
  /** Cookies from the `cookieHeader` secret (the operator's layer). */
  base: Map<string, Secret>;
  /** Cookies captured from the browser or re-issued by a renewal (the stored layer; wins). */
  overlay: Map<string, Secret>;
  /** What is sent: base ∪ overlay, filtered to the wanted names. */
  effective: Map<string, Secret>;
  prepared: PreparedAuth;
}

/**
 * The `session` method: a browser session's cookies plus a CSRF header whose value is one of
 * those cookies (HubSpot: cookie `csrf.app` → header `X-HubSpot-CSRF-hubspotapi`).
 *
 * Where the cookies come from, in order:
 * 1. cookies captured earlier and kept in the store (`SourceRecord.session`), so a later
 *    process does not need the browser for every call;
 * 2. the `cookieHeader` secret reference (stored cookies override it name by name);
 * 3. the operator's running Chrome over the DevTools Protocol (`cdp`): the tab whose URL
 *    matches `cdp.tabUrl`, cookies read for `origin`, then stored.
 *
 * Recovery on a 401 (the client calls it once, then retries once), under the source's store
 * lock so that processes never renew twice:
 * - the store already holds different cookies (another process renewed) → adopt them;
 * - (a) `renewUrl`: fetched with the session cookies; its `Set-Cookie` headers are applied;
 * - (b) `cdp`: the signed-in tab is reloaded, `document.readyState === 'complete'` awaited
 *   (bounded), the new cookies read and stored;
 * - an operator-supplied `cookieHeader` that stored cookies shadow: the stored layer is
 *   dropped, so a header the operator has just replaced takes effect.
 * When nothing renews the cookies, recovery throws `LK_SESSION` with operator action
 * `renew_session` and a message naming the endpoint and tab pattern, never a cookie value.
 */
export class SessionMethod implements AuthMethod {
  readonly name = 'session' as const;
  readonly rejectedAction: OperatorAction = 'renew_session';
  readonly #lk: CoreContext;
  readonly #source: string;
  readonly #config: SessionConfig;
  readonly #origin: URL;
  readonly #tabUrl: string | undefined;
  /** Names to keep; undefined = every cookie of the origin. */
  readonly #wanted: ReadonlySet<string> | undefined;
  readonly #timeoutMs: number;
  #memo: Jar | undefined;
  #loading: SharedWork<Jar> | undefined;
  #recovering: SharedWork<void> | undefined;
  /** The credential whose last recovery failed (so concurrent callers share the failure). */
  #failedFor: string | undefined;

  constructor(lk: CoreContext, source: string, config: SessionConfig) {
    this.#lk = lk;
    this.#source = source;
    this.#config = config;
    if (!config.origin) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `sources.${source}.session.origin is not set (and no preset sets it)`, { source, operatorAction: 'fix_config' });
    }
    this.#origin = new URL(config.origin);
    this.#tabUrl = config.cdp ? (config.cdp.tabUrl ?? `${this.#origin.origin}/*`) : undefined;
    const names = config.cookies ?? [];
    this.#wanted = names.length === 0 ? undefined : new Set([...names, ...(config.csrfCookie ? [config.csrfCookie] : [])]);
    this.#timeoutMs = config.timeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS;
  }

  /** No network I/O: is there anything to take cookies from? */
  async available(): Promise<Availability> {
    const rec = await this.#lk.store.read(this.#source);
    if (rec?.session && Object.keys(rec.session.cookies).length > 0) return { ok: true };
    if (this.#config.cookieHeader) {
      try {
        await this.#lk.resolveSecret(this.#config.cookieHeader);
        return { ok: true };
      } catch (err) {
        // A reason names the method's own problem; callers prefix the source (and the method).
        if (err instanceof LatchkeyError) return { ok: false, reason: `session.cookieHeader: ${err.message}`, operatorAction: 'renew_session' };
        throw err;
      }
    }
    if (this.#config.cdp) return { ok: true };
    return {
      ok: false,
      reason: 'no session cookies captured, and neither session.cdp nor session.cookieHeader is configured to get them',
      operatorAction: 'renew_session',
    };
  }

  authorize(request?: AuthRequest): Promise<PreparedAuth> {
    if (request) {
      try {
        this.#checkDestination(request.url);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    const m = this.#memo;
    if (m) return Promise.resolve(m.prepared);
    if (!this.#loading || this.#loading.cancelled) {
      const work = new SharedWork((signal) => this.#load(signal));
      this.#loading = work;
      work.promise.then(
        () => undefined,
        () => undefined,
      ).finally(() => {
        if (this.#loading === work) this.#loading = undefined;
      });
    }
    return this.#loading.join(request?.signal).then((jar) => jar.prepared);
  }

  async recover(used: PreparedAuth, request?: AuthRequest): Promise<boolean> {
    const signal = request?.signal;
    // Concurrent 401s in this process share one renewal: wait for the one in flight; when it
    // failed for the same credential, that failure is ours too (no second reload).
    const inflight = this.#recovering?.cancelled ? undefined : this.#recovering;
    if (inflight) {
      try {
        await inflight.join(signal);
      } catch (err) {
        signal?.throwIfAborted();
        if (this.#failedFor === used.credential) throw err;
      }
    }
    if (this.#memo && this.#memo.prepared.credential !== used.credential) return true;
    // A new renewal unless one started since (the one waited for above is over).
    if (!this.#recovering || this.#recovering.cancelled || this.#recovering === inflight) {
      const work = new SharedWork((shared) =>
        this.#recoverUnderLock(used, shared).catch((err: unknown) => {
          this.#failedFor = used.credential;
          throw err;
        }),
      );
      this.#recovering = work;
      work.promise.then(
        () => undefined,
        () => undefined,
      ).finally(() => {
        if (this.#recovering === work) this.#recovering = undefined;
      });
    }
    await this.#recovering.join(signal);
    return this.#memo !== undefined && this.#memo.prepared.credential !== used.credential;
  }

  /**
   * The exact fix for `renew_session`, naming where to sign in; for `check_network` (the
   * cookies could not be fetched in time), what to look at: the browser and its tab, the
   * renewal URL.
   */
  fixFor(action: OperatorAction): string | undefined {
    if (action === 'check_network') {
      const parts: string[] = [];
      if (this.#config.cdp) parts.push(`that the Chrome at ${describeEndpoint(this.#config.cdp.endpoint)} answers and its tab matching ${this.#tabUrl} finishes loading`);
      if (this.#config.renewUrl) parts.push(`that ${new URL(this.#config.renewUrl).origin} answers`);
      return parts.length > 0 ? `check ${parts.join(', and ')}, then run \`latchkey preflight ${this.#source}\`` : undefined;
    }
    if (action !== 'renew_session') return undefined;
    const where = this.#config.loginUrl ?? this.#origin.origin;
    const tab = this.#config.cdp ? ` in the Chrome at ${describeEndpoint(this.#config.cdp.endpoint)} (keep a tab matching ${this.#tabUrl} open)` : '';
    const header = this.#config.cookieHeader ? `, or put a fresh Cookie header in ${this.#config.cookieHeader}` : '';
    return `sign in at ${where}${tab}${header}, then run \`latchkey preflight ${this.#source}\``;
  }

  // ---- loading -------------------------------------------------------------------------

  async #load(signal: AbortSignal): Promise<Jar> {
    const rec = await this.#lk.store.read(this.#source);
    const base = await this.#baseCookies();
    const jar = this.#jar(base, storedCookies(rec));
    if (this.#usable(jar)) {
      this.#memo = jar;
      return jar;
    }
    if (!this.#config.cdp && !(this.#config.renewUrl && jar.effective.size > 0)) throw this.#error(this.#missingMessage(jar));
    // Nothing usable stored: obtain it (once across processes, under the source's lock). The
    // cookies are handed out (memo) only once withLock resolved: what the lock's work wrote is
    // durable then (committed, in PostgreSQL), never before (store contract v2).
    const obtained = await this.#lk.store.withLock(this.#source, async (tx) => {
      const again = await tx.read(this.#source);
      const stored = this.#jar(base, storedCookies(again));
      if (this.#usable(stored)) return stored;
      const failures: string[] = [];
      // A session cookie without its CSRF cookie (a cookieHeader holding only the session):
      // the renewal URL re-issues the rest.
      if (this.#config.renewUrl && stored.effective.size > 0) {
        try {
          return await this.#renewOverHttp(tx, again, stored, signal);
        } catch (err) {
          if (!(err instanceof LatchkeyError)) throw err;
          failures.push(stripSource(err.message, this.#source));
        }
      }
      if (this.#config.cdp) {
        try {
          const next = this.#jar(base, await this.#captureFromBrowser(false, signal));
          if (!this.#usable(next)) throw this.#error(this.#missingMessage(next, 'the signed-in tab'));
          await this.#persist(tx, again, next.overlay);
          return next;
        } catch (err) {
          if (!(err instanceof LatchkeyError)) throw err;
          failures.push(stripSource(err.message, this.#source));
        }
      }
      throw this.#error(failures.join('; '));
    });
    this.#memo = obtained;
    return obtained;
  }

  async #baseCookies(): Promise<Map<string, Secret>> {
    const ref = this.#config.cookieHeader;
    if (!ref) return new Map();
    let value: Secret;
    try {
      value = await this.#lk.resolveSecret(ref);
    } catch (err) {
      if (err instanceof LatchkeyError) throw this.#error(`session.cookieHeader: ${err.message}`, err);
      throw err;
    }
    const { cookies } = parseCookieHeader(value.reveal());
    const out = new Map<string, Secret>();
    for (const [name, v] of cookies) out.set(name, new Secret(v));
    return out;
  }

  #jar(base: Map<string, Secret>, overlay: Map<string, Secret>): Jar {
    const effective = new Map<string, Secret>();
    for (const layer of [base, overlay]) {
      for (const [name, value] of layer) {
        if (this.#wanted && !this.#wanted.has(name)) continue;
        if (checkCookie(name, value.reveal()) !== undefined) continue;
        effective.set(name, value);
      }
    }
    const headers: Record<string, string> = {};
    const cookieHeader = serializeCookieHeader([...effective].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    if (cookieHeader !== '') headers.Cookie = cookieHeader;
    const { csrfCookie, csrfHeader } = this.#config;
    const csrf = csrfCookie ? effective.get(csrfCookie) : undefined;
    if (csrfHeader && csrf) headers[csrfHeader] = csrf.reveal();
    return { base, overlay, effective, prepared: { headers, credential: fingerprint(cookieHeader, csrf?.reveal()) } };
  }

  #usable(jar: Jar): boolean {
    if (jar.effective.size === 0) return false;
    // `cookies` is a filter (send these when present); only the CSRF cookie is required.
    return !this.#config.csrfCookie || jar.effective.has(this.#config.csrfCookie);
  }

  #missingMessage(jar: Jar, where = 'the stored session'): string {
    if (jar.effective.size === 0) return `no session cookies for ${this.#origin.origin} in ${where}; not signed in`;
    return `${where} has no "${this.#config.csrfCookie ?? ''}" (CSRF) cookie for ${this.#origin.origin}; sign in again`;
  }

  // ---- recovery ------------------------------------------------------------------------

  async #recoverUnderLock(used: PreparedAuth, signal: AbortSignal): Promise<void> {
    // The lock's work says what to remember; it is remembered (and a failure thrown) only once
    // withLock resolved, so no caller is handed cookies whose write is not durable yet, and a
    // failure does not undo what was stored (a transaction that throws rolls back).
    const outcome = await this.#lk.store.withLock(this.#source, async (tx): Promise<{ memo: Jar | undefined; error?: LatchkeyError }> => {
      let rec = await tx.read(this.#source);
      const base = await this.#baseCookies();
      const current = this.#jar(base, storedCookies(rec));
      // Double-check: another process renewed while we waited for the lock.
      if (this.#usable(current) && current.prepared.credential !== used.credential) return { memo: current };
      const failures: string[] = [];
      if (this.#config.renewUrl) {
        try {
          return { memo: await this.#renewOverHttp(tx, rec, current, signal) };
        } catch (err) {
          if (!(err instanceof LatchkeyError)) throw err;
          failures.push(stripSource(err.message, this.#source));
        }
      }
      if (this.#config.cdp) {
        try {
          const captured = await this.#captureFromBrowser(true, signal);
          const next = this.#jar(base, captured);
          if (!this.#usable(next)) throw this.#error(this.#missingMessage(next, 'the reloaded tab'));
          rec = await this.#persist(tx, rec, next.overlay);
          if (next.prepared.credential === used.credential) {
            throw this.#error(`reloading the tab matching ${this.#tabUrl} did not change its session cookies; the browser session itself has expired`);
          }
          return { memo: next };
        } catch (err) {
          if (!(err instanceof LatchkeyError)) throw err;
          failures.push(stripSource(err.message, this.#source));
        }
      }
      // A cookie header the operator replaced is shadowed by stored cookies: drop the stored layer.
      if (base.size > 0 && current.overlay.size > 0) {
        const headerOnly = this.#jar(base, new Map());
        if (this.#usable(headerOnly) && headerOnly.prepared.credential !== used.credential) {
          await this.#persist(tx, rec, new Map());
          return { memo: headerOnly };
        }
      }
      if (failures.length === 0) {
        return { memo: undefined, error: this.#error(`the session cookies for ${this.#origin.origin} were rejected, and neither session.renewUrl nor session.cdp is configured to renew them`) };
      }
      return { memo: undefined, error: this.#error(failures.join('; ')) };
    });
    this.#memo = outcome.memo;
    if (outcome.error) throw outcome.error;
  }

  /** Renewal (a): GET renewUrl with the session cookies; apply its Set-Cookie headers. */
  async #renewOverHttp(tx: StoreTx, rec: SourceRecord | undefined, current: Jar, signal: AbortSignal): Promise<Jar> {
    const url = new URL(this.#config.renewUrl!);
    const headers: Record<string, string> = {};
    const cookie = current.prepared.headers.Cookie;
    if (cookie) headers.Cookie = cookie;
    let res: Response;
    try {
      res = await this.#lk.fetchImpl(url, { method: 'GET', headers, redirect: 'manual', signal: AbortSignal.any([signal, AbortSignal.timeout(this.#timeoutMs)]) });
    } catch (err) {
      const e = err as Error;
      const code = (e as { cause?: { code?: string } }).cause?.code;
      const why = signal.aborted
        ? 'cancelled (the caller gave up)'
        : e.name === 'TimeoutError' || e.name === 'AbortError'
          ? `no answer within ${this.#timeoutMs} ms`
          : code
            ? describeNetworkError(err, url)
            : `no usable answer (${e.name})`;
      throw this.#error(`renewal URL ${url.origin}${url.pathname}: ${why}`, err);
    }
    const setCookies = res.headers.getSetCookie();
    await res.body?.cancel().catch(() => undefined);
    if (res.status >= 400) {
      throw this.#error(`renewal URL ${url.origin}${url.pathname} answered ${res.status}; the session itself has expired`);
    }
    const applied = applySetCookies(new Map([...current.base, ...current.overlay]), setCookies, url, {
      wanted: this.#wanted,
      now: this.#lk.clock.now(),
    });
    if (applied.changed.length === 0 && applied.removed.length === 0) {
      throw this.#error(`renewal URL ${url.origin}${url.pathname} answered ${res.status} without re-issuing any session cookie`);
    }
    const overlay = new Map(current.overlay);
    for (const name of applied.changed) overlay.set(name, applied.jar.get(name)!);
    for (const name of applied.removed) overlay.delete(name);
    const next = this.#jar(current.base, overlay);
    if (!this.#usable(next)) throw this.#error(this.#missingMessage(next, `the answer of the renewal URL ${url.origin}${url.pathname}`));
    await this.#persist(tx, rec, overlay);
    // The caller remembers it once the lock's work is durable (withLock resolved).
    return next;
  }

  /** Reads (after an optional reload) the signed-in tab's cookies; keeps the wanted, valid ones. */
  async #captureFromBrowser(reload: boolean, signal: AbortSignal): Promise<Map<string, Secret>> {
    const cdp = this.#config.cdp!;
    let cookies: BrowserCookie[];
    try {
      ({ cookies } = await readTabCookies(
        { endpoint: cdp.endpoint, tabUrl: this.#tabUrl!, origin: this.#origin.href, timeoutMs: cdp.timeoutMs ?? this.#timeoutMs, fetch: this.#lk.fetchImpl, signal },
        { reload },
      ));
    } catch (err) {
      if (err instanceof CdpError) throw this.#error(err.message, err);
      throw this.#error(`Chrome DevTools endpoint ${describeEndpoint(cdp.endpoint)}: ${(err as Error)?.name ?? 'error'} while reading the tab matching ${this.#tabUrl}`, err);
    }
    return this.#pickCookies(cookies);
  }

  #pickCookies(cookies: BrowserCookie[]): Map<string, Secret> {
    const nowSeconds = this.#lk.clock.now() / 1000;
    // Several cookies may share a name (different Path or Domain); like a browser, prefer the
    // longest path, then the most specific domain.
    const sorted = [...cookies].sort((a, b) => b.path.length - a.path.length || b.domain.length - a.domain.length);
    const out = new Map<string, Secret>();
    for (const c of sorted) {
      if (out.has(c.name)) continue;
      if (this.#wanted && !this.#wanted.has(c.name)) continue;
      if (c.expires > 0 && c.expires <= nowSeconds) continue;
      if (checkCookie(c.name, c.value) !== undefined) continue;
      if (out.size >= MAX_COOKIES) break;
      out.set(c.name, new Secret(c.value));
    }
    return out;
  }

  /** Stores the captured/renewed layer (caller holds the lock; CAS on the version read). */
  async #persist(tx: StoreTx, rec: SourceRecord | undefined, overlay: Map<string, Secret>): Promise<SourceRecord> {
    const { version: _v, ...rest } = rec ?? { version: 0 };
    const next = { ...rest };
    if (overlay.size > 0) next.session = { cookies: Object.fromEntries(overlay), updatedAt: this.#lk.clock.now() };
    else delete next.session;
    return tx.write(this.#source, next, rec?.version ?? 0);
  }

  #checkDestination(url: URL): void {
    const host = url.hostname.toLowerCase();
    const originHost = this.#origin.hostname.toLowerCase();
    const allowed = host === originHost || host.endsWith(`.${originHost}`) || (this.#config.hosts ?? []).some((h) => h.toLowerCase() === host);
    const downgrade = this.#origin.protocol === 'https:' && url.protocol !== 'https:' && !isLoopbackHost(host);
    if (!allowed || downgrade) {
      throw new WrongDestinationError(
        'session',
        `${this.#source}: the session cookies belong to ${this.#origin.origin}; refusing to send them to ${url.protocol}//${url.host} (add the host to sources.${this.#source}.session.hosts if it is the same site)`,
        this.#source,
      );
    }
  }

  #error(message: string, cause?: unknown): LatchkeyError {
    return new LatchkeyError('LK_SESSION', `${this.#source}: ${message}`, {
      source: this.#source,
      operatorAction: 'renew_session',
      fix: this.fixFor('renew_session'),
      ...(cause !== undefined ? { cause } : {}),
    });
  }
}

/**
 * Work shared by concurrent callers (one DevTools visit, one renewal), each waiting with its
 * own signal. The work is cancelled only once every caller that joined it has given up; a
 * caller without a signal keeps it running to its own bounds (the step timeouts).
 */
class SharedWork<T> {
  readonly promise: Promise<T>;
  readonly #controller = new AbortController();
  #waiting = 0;
  #unbounded = false;

  constructor(run: (signal: AbortSignal) => Promise<T>) {
    this.promise = run(this.#controller.signal);
  }

  /** True once every caller gave up and the work was told to stop: a new caller starts afresh. */
  get cancelled(): boolean {
    return this.#controller.signal.aborted;
  }

  join(signal: AbortSignal | undefined): Promise<T> {
    if (!signal) {
      this.#unbounded = true;
      return this.promise;
    }
    if (signal.aborted) {
      this.#giveUp(signal);
      return Promise.reject(signal.reason as Error);
    }
    this.#waiting += 1;
    return untilAborted(this.promise, signal, () => {
      this.#waiting -= 1;
      this.#giveUp(signal);
    });
  }

  #giveUp(signal: AbortSignal): void {
    if (this.#waiting === 0 && !this.#unbounded) this.#controller.abort(signal.reason);
  }
}

function storedCookies(rec: SourceRecord | undefined): Map<string, Secret> {
  return new Map(Object.entries(rec?.session?.cookies ?? {}));
}

/** Opaque identity of a credential (compared by recover(); a hash, so it leaks nothing). */
function fingerprint(cookieHeader: string, csrf: string | undefined): string {
  return createHash('sha256').update(cookieHeader).update('\0').update(csrf ?? '').digest('base64url').slice(0, 32);
}

/** Messages are combined under one `<source>: ` prefix. */
function stripSource(message: string, source: string): string {
  return message.startsWith(`${source}: `) ? message.slice(source.length + 2) : message;
}

/** The factory registered in `methods/index.ts`. */
export function createSessionMethod({ lk, source }: MethodContext): AuthMethod {
  if (!source.session) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `sources.${source.name}.session is not configured`, { source: source.name, operatorAction: 'fix_config' });
  }
  return new SessionMethod(lk, source.name, source.session);
}
