import type { IncomingMessage } from 'node:http';
import { isValidCookieName, MAX_COOKIE_BYTES } from '../http/cookies.js';
import type { RequestShape } from './request-shape.js';

/**
 * The gateway's cookies and THE rule that names them and sets their attributes. The setter,
 * the reader and logout all go through {@link cookieRule} / {@link cookieVariants}, so they
 * can never disagree (the seed's bug: a reader that looked for the bare name when the setter
 * wrote `__Secure-…`).
 *
 * | shape of the request            | name              | Path        | Secure |
 * | ------------------------------- | ----------------- | ----------- | ------ |
 * | plain HTTP (loopback)           | `latchkey_at`     | prefix or / | no     |
 * | HTTPS, no proxy prefix          | `__Host-latchkey_at` | /        | yes    |
 * | HTTPS behind `X-Forwarded-Prefix` | `__Secure-latchkey_at` | the prefix | yes |
 *
 * Always HttpOnly and SameSite=Lax (the IdP's redirect back to the callback is a cross-site
 * top-level GET, which Lax lets through). No Domain attribute ever: host-only cookies.
 */

/** The three cookies: access, refresh, login transaction. */
export type CookieKind = 'at' | 'rt' | 'login';

/** The base names of the gateway's cookies (before any `__Host-` / `__Secure-` prefix). */
export const COOKIE_BASE: Readonly<Record<CookieKind, string>> = { at: 'latchkey_at', rt: 'latchkey_rt', login: 'latchkey_login' };
/** Every name prefix a gateway cookie can carry. */
export const NAME_PREFIXES = ['__Host-', '__Secure-', ''] as const;
/** Login-attempt suffixes: 8 base64url characters (`latchkey_login_Ab3-x_9Q`). */
export const ATTEMPT_ID = /^[A-Za-z0-9_-]{8}$/;

/** Name and attributes of one cookie for one request shape. */
export interface CookieSpec {
  name: string;
  path: string;
  secure: boolean;
}

/** The base name of a cookie kind (`latchkey_login_<attempt>` for a login attempt). */
export function baseName(kind: CookieKind, attempt?: string): string {
  return kind === 'login' ? `${COOKIE_BASE.login}_${attempt ?? ''}` : COOKIE_BASE[kind];
}

/** THE rule: which name, Path and Secure a cookie gets for this request. */
export function cookieRule(kind: CookieKind, shape: Pick<RequestShape, 'https' | 'prefix'>, attempt?: string): CookieSpec {
  const base = baseName(kind, attempt);
  if (!shape.https) return { name: base, path: shape.prefix || '/', secure: false };
  if (shape.prefix) return { name: `__Secure-${base}`, path: shape.prefix, secure: true };
  return { name: `__Host-${base}`, path: '/', secure: true };
}

/**
 * Every variant a browser may hold for a cookie kind (whatever request shape set it), with the
 * attributes that delete it: `__Host-` at `/` (Secure), `__Secure-` at the prefix and at `/`
 * (Secure), bare at the prefix and at `/` (Secure when this request is HTTPS).
 */
export function cookieVariants(kind: CookieKind, shape: Pick<RequestShape, 'https' | 'prefix'>, attempt?: string): CookieSpec[] {
  const base = baseName(kind, attempt);
  const paths = shape.prefix ? [shape.prefix, '/'] : ['/'];
  const out: CookieSpec[] = [{ name: `__Host-${base}`, path: '/', secure: true }];
  for (const path of paths) out.push({ name: `__Secure-${base}`, path, secure: true });
  for (const path of paths) out.push({ name: base, path, secure: shape.https });
  return out;
}

/** A `Set-Cookie` header value for `spec` (`maxAgeSeconds` 0 deletes it). */
export function setCookieHeader(spec: CookieSpec, value: string, maxAgeSeconds: number): string {
  const maxAge = Math.max(0, Math.floor(maxAgeSeconds));
  return `${spec.name}=${value}; Path=${spec.path}; Max-Age=${maxAge}${maxAge === 0 ? '; Expires=Thu, 01 Jan 1970 00:00:00 GMT' : ''}; HttpOnly; SameSite=Lax${spec.secure ? '; Secure' : ''}`;
}

/** The headers that delete every variant of a cookie kind. */
export function deletionHeaders(kind: CookieKind, shape: Pick<RequestShape, 'https' | 'prefix'>, attempt?: string): string[] {
  return cookieVariants(kind, shape, attempt).map((spec) => setCookieHeader(spec, '', 0));
}

/**
 * The gateway's cookies on a request, by base name (`latchkey_at`, `latchkey_login_<id>`…): every
 * value of every variant, in header order (a duplicated name, two paths, two prefixes: all
 * kept, the caller tries each). Values that are too long or not cookie-safe are dropped.
 */
export interface RequestCookies {
  values: Map<string, string[]>;
  /** How many gateway cookie values were dropped as malformed or oversized. */
  rejected: number;
}

/** At most this many values per base name are considered (a flood of duplicates is not tried one by one). */
export const MAX_VALUES_PER_COOKIE = 8;

export function readGatewayCookies(req: Pick<IncomingMessage, 'headers'>): RequestCookies {
  const values = new Map<string, string[]>();
  let rejected = 0;
  const header = req.headers.cookie;
  if (!header) return { values, rejected };
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1) continue;
    const rawName = part.slice(0, eq).trim();
    const base = gatewayBaseName(rawName);
    if (base === undefined) continue;
    const value = part.slice(eq + 1).trim();
    if (rawName.length + value.length > MAX_COOKIE_BYTES || !/^[A-Za-z0-9._-]*$/.test(value)) {
      rejected++;
      continue;
    }
    const list = values.get(base) ?? [];
    if (list.length >= MAX_VALUES_PER_COOKIE) {
      rejected++;
      continue;
    }
    list.push(value);
    values.set(base, list);
  }
  return { values, rejected };
}

/** The base name when `name` is one of the gateway's cookies (any variant), else undefined. */
export function gatewayBaseName(name: string): string | undefined {
  let base = name;
  if (base.startsWith('__Host-')) base = base.slice(7);
  else if (base.startsWith('__Secure-')) base = base.slice(9);
  if (base === COOKIE_BASE.at || base === COOKIE_BASE.rt || base === COOKIE_BASE.login) return base;
  if (base.startsWith(`${COOKIE_BASE.login}_`) && isValidCookieName(base)) return base;
  return undefined;
}

/** The `Cookie` header without any gateway cookie (what the upstream gets), or undefined when nothing is left. */
export function withoutGatewayCookies(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const kept: string[] = [];
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    const name = (eq === -1 ? part : part.slice(0, eq)).trim();
    if (name === '') continue;
    if (gatewayBaseName(name) !== undefined) continue;
    kept.push(part.trim());
  }
  return kept.length ? kept.join('; ') : undefined;
}
