/**
 * The two cookie stores a client of the gateway keeps its session in, behind one small
 * internal interface ({@link CookieAccess}):
 *
 * - a plain {@link CookieJar}: the cookies of one gateway, keyed by name. A `Map<string,
 *   JarCookie>` is one; so is anything with `values()`, `set(name, cookie)` and
 *   `delete(name)` (sync or async), e.g. a wrapper that persists to a file;
 * - Electron's `session.cookies` ({@link ElectronCookies}): `get(filter)`, `set(details)`,
 *   `remove(url, name)`, all async, expiry in seconds.
 *
 * `Set-Cookie` headers are parsed with the shared RFC 6265 grammar (src/http/cookies.ts) and
 * stored the way a browser would: `Max-Age` wins over `Expires`, an expired cookie deletes,
 * the `__Host-`/`__Secure-` prefix rules are enforced (RFC 6265bis §4.1.3), a `Domain` that
 * does not match the gateway's host is ignored. Values never appear in a message.
 */
import { checkCookie, domainMatches, isExpiredSetCookie, parseSetCookie, type CookieRejection, type SetCookie } from '../http/cookies.js';
import { LatchkeyError } from '../core/errors.js';
import { isLoopbackHost } from '../net/loopback.js';
import type { CookieLike } from './session-cookies.js';

/** One cookie in a plain {@link CookieJar}. */
export interface JarCookie {
  /** The cookie's name (also its key in the jar). */
  name: string;
  /** The cookie's value. */
  value: string;
  /** Expiry in milliseconds since the epoch; absent for a session cookie. */
  expiresAt?: number | undefined;
  /** The `Path` attribute (default: the directory of the URL that set it, RFC 6265 §5.1.4). */
  path?: string | undefined;
  /** Sent over HTTPS only. */
  secure?: boolean | undefined;
  /** Hidden from page scripts (kept for fidelity; a client sends it like any other). */
  httpOnly?: boolean | undefined;
  /** The `SameSite` attribute as the server wrote it. */
  sameSite?: string | undefined;
}

/**
 * A plain cookie jar holding the cookies of **one** gateway (one origin and deployment path),
 * keyed by cookie name. A `new Map<string, JarCookie>()` satisfies it; methods may also return
 * promises (a jar persisted to disk).
 */
export interface CookieJar {
  /** Every cookie in the jar. */
  values(): Iterable<JarCookie> | Promise<Iterable<JarCookie>>;
  /** Stores (or replaces) the cookie called `name`. */
  set(name: string, cookie: JarCookie): unknown;
  /** Removes the cookie called `name`. */
  delete(name: string): unknown;
}

/** A cookie as Electron's `session.cookies.get()` returns it (the fields used here). */
export interface ElectronCookie {
  /** The cookie's name. */
  name: string;
  /** The cookie's value. */
  value: string;
  /** The cookie's domain (a leading dot for a domain cookie). */
  domain?: string;
  /** The cookie's path. */
  path?: string;
  /** Sent over HTTPS only. */
  secure?: boolean;
  /** Hidden from page scripts. */
  httpOnly?: boolean;
  /** True for a session cookie (no expiry). */
  session?: boolean;
  /** Expiry in seconds since the epoch (absent for a session cookie). */
  expirationDate?: number;
}

/** The argument of Electron's `session.cookies.set()` (the fields used here). */
export interface ElectronCookieDetails {
  /** The URL the cookie belongs to. */
  url: string;
  /** The cookie's name. */
  name: string;
  /** The cookie's value. */
  value: string;
  /** Only for a domain cookie; omitted makes a host-only cookie. */
  domain?: string;
  /** The cookie's path. */
  path?: string;
  /** Sent over HTTPS only. */
  secure?: boolean;
  /** Hidden from page scripts. */
  httpOnly?: boolean;
  /** Expiry in seconds since the epoch; omitted makes a session cookie. */
  expirationDate?: number;
  /** Electron's SameSite spelling. */
  sameSite?: 'unspecified' | 'no_restriction' | 'lax' | 'strict';
}

/**
 * Electron's `session.cookies` (`Electron.Cookies`), reduced to the three methods used here,
 * so `session.defaultSession.cookies` can be passed as is.
 */
export interface ElectronCookies {
  /** Cookies matching the filter (`{ url }`: the ones a request to that URL would carry). */
  get(filter: { url?: string; name?: string }): Promise<ElectronCookie[]>;
  /** Stores a cookie. */
  set(details: ElectronCookieDetails): Promise<void>;
  /** Removes the cookies called `name` that a request to `url` would carry. */
  remove(url: string, name: string): Promise<void>;
}

/** What applying a response's `Set-Cookie` headers did (names only, never values). */
export interface CookieChanges {
  /** Cookies stored or replaced with a new value. */
  changed: string[];
  /** Cookies deleted (`Max-Age=0` or an `Expires` in the past). */
  removed: string[];
  /** Cookies not stored, with the reason. */
  rejected: Array<{ name?: string; reason: CookieRejection | 'prefix_rules' | 'insecure_origin' | 'store_refused' }>;
}

/** Read and write access to a client's cookie store for requests to one URL at a time. */
export interface CookieAccess {
  /** The cookies a request to `url` carries (unexpired, path and `Secure` respected). */
  forRequest(url: URL, now: number): Promise<CookieLike[]>;
  /** Stores what a response from `url` set. */
  apply(url: URL, setCookieHeaders: readonly string[], now: number): Promise<CookieChanges>;
  /** Removes every cookie a request to `url` would carry whose name `which` selects; returns their names. */
  removeWhere(url: URL, which: (name: string) => boolean): Promise<string[]>;
}

/** True when the store is Electron's `session.cookies` rather than a plain jar. */
function isElectronCookies(store: CookieJar | ElectronCookies): store is ElectronCookies {
  return typeof (store as Partial<ElectronCookies>).remove === 'function' && typeof (store as Partial<CookieJar>).delete !== 'function';
}

function notACookieStore(): LatchkeyError {
  return new LatchkeyError('LK_USAGE', 'cookies must be a cookie jar (values/set/delete) or Electron session.cookies (get/set/remove)');
}

/** A read/write view of either store (detected by shape: Electron's has `remove`, a jar `delete`). */
export function cookieAccess(store: CookieJar | ElectronCookies): CookieAccess {
  if (typeof store !== 'object' || store === null) throw notACookieStore();
  if (isElectronCookies(store)) return electronAccess(store);
  if (typeof store.values !== 'function' || typeof store.set !== 'function' || typeof store.delete !== 'function') {
    throw notACookieStore();
  }
  return jarAccess(store);
}

/** RFC 6265 §5.1.4 default-path: the request path up to (not including) its last `/`, or `/`. */
export function defaultCookiePath(url: URL): string {
  const p = url.pathname;
  if (!p.startsWith('/')) return '/';
  const last = p.lastIndexOf('/');
  return last <= 0 ? '/' : p.slice(0, last);
}

/** RFC 6265 §5.1.4 path-match. */
export function pathMatches(requestPath: string, cookiePath: string): boolean {
  if (requestPath === cookiePath) return true;
  if (!requestPath.startsWith(cookiePath)) return false;
  return cookiePath.endsWith('/') || requestPath.charAt(cookiePath.length) === '/';
}

/** Expiry (epoch ms) of a parsed `Set-Cookie`, undefined for a session cookie (§5.3 step 3). */
function expiryOf(c: SetCookie, now: number): number | undefined {
  if (c.maxAge !== undefined) return now + c.maxAge * 1000;
  return c.expires;
}

/** A secure origin for cookies: HTTPS, or loopback (browsers treat localhost as potentially trustworthy). */
function isSecureOrigin(url: URL): boolean {
  return url.protocol === 'https:' || isLoopbackHost(url.hostname);
}

type Verdict = { ok: true; cookie: SetCookie; path: string; expiresAt: number | undefined; remove: boolean } | { ok: false; name?: string; reason: CookieChanges['rejected'][number]['reason'] };

/** Parses one header and applies the browser's acceptance rules for a response from `url`. */
function judge(url: URL, header: string, now: number): Verdict {
  const parsed = parseSetCookie(header);
  if (!parsed.ok) return parsed.name !== undefined ? { ok: false, name: parsed.name, reason: parsed.reason } : { ok: false, reason: parsed.reason };
  const c = parsed.cookie;
  const path = c.path ?? defaultCookiePath(url);
  if (isExpiredSetCookie(c, now)) return { ok: true, cookie: c, path, expiresAt: undefined, remove: true };
  if (c.domain !== undefined && !domainMatches(url.hostname, c.domain)) return { ok: false, name: c.name, reason: 'domain_mismatch' };
  // RFC 6265bis §5.7 step 13: a Secure cookie only from a secure origin.
  if (c.secure && !isSecureOrigin(url)) return { ok: false, name: c.name, reason: 'insecure_origin' };
  // RFC 6265bis §4.1.3: __Secure- needs Secure; __Host- also needs Path=/ and no Domain.
  const lower = c.name.toLowerCase();
  if (lower.startsWith('__secure-') && !c.secure) return { ok: false, name: c.name, reason: 'prefix_rules' };
  if (lower.startsWith('__host-') && (!c.secure || c.domain !== undefined || c.path !== '/')) return { ok: false, name: c.name, reason: 'prefix_rules' };
  return { ok: true, cookie: c, path, expiresAt: expiryOf(c, now), remove: false };
}

function jarAccess(jar: CookieJar): CookieAccess {
  return {
    async removeWhere(_url, which) {
      // One gateway per jar: every cookie in it is the gateway's, whatever its path.
      const names = [...(await jar.values())].map((c) => c?.name).filter((n): n is string => typeof n === 'string' && which(n));
      for (const name of names) await jar.delete(name);
      return names;
    },
    async forRequest(url, now) {
      const out: CookieLike[] = [];
      for (const c of await jar.values()) {
        if (typeof c?.name !== 'string' || typeof c.value !== 'string') continue;
        if (c.expiresAt !== undefined && c.expiresAt <= now) continue;
        if (c.secure && url.protocol !== 'https:' && !isLoopbackHost(url.hostname)) continue;
        if (c.path !== undefined && !pathMatches(url.pathname, c.path)) continue;
        if (checkCookie(c.name, c.value) !== undefined) continue;
        out.push({ name: c.name, value: c.value, expiresAt: c.expiresAt });
      }
      return out;
    },
    async apply(url, headers, now) {
      const changes: CookieChanges = { changed: [], removed: [], rejected: [] };
      const current = new Map<string, JarCookie>();
      for (const c of await jar.values()) if (typeof c?.name === 'string') current.set(c.name, c);
      for (const header of headers) {
        const v = judge(url, header, now);
        if (!v.ok) {
          changes.rejected.push(v.name !== undefined ? { name: v.name, reason: v.reason } : { reason: v.reason });
          continue;
        }
        const { cookie: c } = v;
        if (v.remove) {
          const had = current.get(c.name);
          // A deletion scoped to another path leaves the jar's cookie alone (a browser keys by path too).
          if (had && (had.path === undefined || had.path === v.path)) {
            await jar.delete(c.name);
            current.delete(c.name);
            changes.removed.push(c.name);
          }
          continue;
        }
        const next: JarCookie = { name: c.name, value: c.value, path: v.path, secure: c.secure, httpOnly: c.httpOnly };
        if (v.expiresAt !== undefined) next.expiresAt = v.expiresAt;
        if (c.sameSite !== undefined) next.sameSite = c.sameSite;
        await jar.set(c.name, next);
        current.set(c.name, next);
        changes.changed.push(c.name);
      }
      return changes;
    },
  };
}

function electronSameSite(s: string | undefined): ElectronCookieDetails['sameSite'] {
  switch (s?.toLowerCase()) {
    case 'lax':
      return 'lax';
    case 'strict':
      return 'strict';
    case 'none':
      return 'no_restriction';
    default:
      return 'unspecified';
  }
}

function electronAccess(cookies: ElectronCookies): CookieAccess {
  return {
    async removeWhere(url, which) {
      const removed: string[] = [];
      for (const c of await cookies.get({ url: url.href })) {
        if (typeof c?.name !== 'string' || !which(c.name)) continue;
        await cookies.remove(new URL(c.path ?? '/', url.origin).href, c.name);
        removed.push(c.name);
      }
      return removed;
    },
    async forRequest(url, now) {
      const list = await cookies.get({ url: url.href });
      const out: CookieLike[] = [];
      for (const c of list) {
        if (typeof c?.name !== 'string' || typeof c.value !== 'string') continue;
        if (typeof c.expirationDate === 'number' && c.expirationDate * 1000 <= now) continue;
        if (checkCookie(c.name, c.value) !== undefined) continue;
        out.push({ name: c.name, value: c.value, expirationDate: c.expirationDate });
      }
      return out;
    },
    async apply(url, headers, now) {
      const changes: CookieChanges = { changed: [], removed: [], rejected: [] };
      for (const header of headers) {
        const v = judge(url, header, now);
        if (!v.ok) {
          changes.rejected.push(v.name !== undefined ? { name: v.name, reason: v.reason } : { reason: v.reason });
          continue;
        }
        const { cookie: c } = v;
        const scopedUrl = new URL(v.path, url.origin).href;
        try {
          if (v.remove) {
            await cookies.remove(scopedUrl, c.name);
            changes.removed.push(c.name);
            continue;
          }
          const details: ElectronCookieDetails = {
            url: scopedUrl,
            name: c.name,
            value: c.value,
            path: v.path,
            secure: c.secure,
            httpOnly: c.httpOnly,
            sameSite: electronSameSite(c.sameSite),
          };
          if (c.domain !== undefined) details.domain = c.domain;
          if (v.expiresAt !== undefined) details.expirationDate = v.expiresAt / 1000;
          await cookies.set(details);
          changes.changed.push(c.name);
        } catch {
          // Electron rejects what Chromium would not store; its message may quote the value.
          changes.rejected.push({ name: c.name, reason: 'store_refused' });
        }
      }
      return changes;
    },
  };
}
