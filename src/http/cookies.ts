/**
 * The RFC 6265 cookie grammar, shared by the `session` method and the HTTP surfaces: `Set-Cookie` response headers
 * (RFC 6265 §5.2), `Cookie:` request headers (RFC 6265 §5.4) and the checks that keep a
 * hostile or broken value out of a request header.
 *
 * Nothing here ever puts a cookie value into an error message or a log line: rejections are
 * reported by cookie name (names are not secret) and reason only.
 */
import { Secret } from '../core/secret.js';

/**
 * Largest name + value we accept for one cookie. Browsers cap a cookie at 4096 bytes
 * (RFC 6265 §6.1 "at least 4096 bytes per cookie"); anything bigger is not a real session
 * cookie and would only bloat every request.
 */
export const MAX_COOKIE_BYTES = 4096;
/** Most cookies we keep for one session (Chrome keeps at most 180 per domain). */
export const MAX_COOKIES = 180;
/** Most `Set-Cookie` headers we look at in one response. */
export const MAX_SET_COOKIE_HEADERS = 100;

/** Why a cookie was not accepted (for counters and messages; never includes the value). */
export type CookieRejection = 'invalid_name' | 'invalid_value' | 'too_large' | 'not_wanted' | 'domain_mismatch' | 'too_many';

/** One parsed `Set-Cookie` header (RFC 6265 §5.2). */
export interface SetCookie {
  name: string;
  value: string;
  /** Lower-cased, without a leading dot; undefined = host-only cookie. */
  domain?: string;
  path?: string;
  /** `Max-Age` (seconds; wins over Expires, §5.3 step 3). */
  maxAge?: number;
  /** `Expires` as epoch milliseconds. */
  expires?: number;
  secure: boolean;
  httpOnly: boolean;
  sameSite?: string;
}

/** The result of parsing one `Set-Cookie` header. */
export type SetCookieParse = { ok: true; cookie: SetCookie } | { ok: false; name?: string; reason: CookieRejection };

// RFC 7230 §3.2.6 token characters: a cookie name is a token (RFC 6265 §4.1.1).
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** True when `name` is a valid cookie name (an RFC 7230 token). */
export function isValidCookieName(name: string): boolean {
  return name.length > 0 && TOKEN.test(name);
}

/**
 * True when `value` can be sent in a `Cookie:` header as is: printable ASCII without `;`
 * (which would start another cookie) and without control characters (CR/LF would split the
 * header). Browsers accept more than the strict RFC 6265 cookie-octet set (spaces, commas,
 * double quotes inside the value), and so do we, because a server that set such a value
 * expects it back.
 */
export function isValidCookieValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x3b /* ; */) return false;
  }
  return true;
}

/** Checks one cookie for sending; undefined when acceptable, else the reason. */
export function checkCookie(name: string, value: string): CookieRejection | undefined {
  if (!isValidCookieName(name)) return 'invalid_name';
  if (name.length + value.length > MAX_COOKIE_BYTES) return 'too_large';
  if (!isValidCookieValue(value)) return 'invalid_value';
  return undefined;
}

/**
 * Parses one `Set-Cookie` header value (RFC 6265 §5.2): `name=value` up to the first `;`,
 * then attributes. Leading/trailing whitespace is trimmed. Rejected: a missing `=`, an empty
 * or non-token name, control characters or non-ASCII in the value, oversized cookies.
 */
export function parseSetCookie(header: string): SetCookieParse {
  if (header.length > MAX_COOKIE_BYTES * 2) {
    // Still report the name when it can be found cheaply, so the caller can count it.
    const eq = header.indexOf('=');
    const name = eq > 0 && eq < 256 ? header.slice(0, eq).trim() : undefined;
    return { ok: false, ...(name !== undefined && isValidCookieName(name) ? { name } : {}), reason: 'too_large' };
  }
  const semi = header.indexOf(';');
  const pair = semi === -1 ? header : header.slice(0, semi);
  const eq = pair.indexOf('=');
  if (eq === -1) return { ok: false, reason: 'invalid_name' };
  const name = pair.slice(0, eq).trim();
  const value = pair.slice(eq + 1).trim();
  if (!isValidCookieName(name)) return { ok: false, reason: 'invalid_name' };
  const rejected = checkCookie(name, value);
  if (rejected) return { ok: false, name, reason: rejected };

  const cookie: SetCookie = { name, value, secure: false, httpOnly: false };
  const attributes = semi === -1 ? [] : header.slice(semi + 1).split(';');
  for (const raw of attributes) {
    const aeq = raw.indexOf('=');
    const key = (aeq === -1 ? raw : raw.slice(0, aeq)).trim().toLowerCase();
    const val = aeq === -1 ? '' : raw.slice(aeq + 1).trim();
    switch (key) {
      case 'expires': {
        const t = Date.parse(val);
        if (Number.isFinite(t)) cookie.expires = t;
        break;
      }
      case 'max-age': {
        // §5.2.2: a leading digit or "-", then digits only; otherwise ignore the attribute.
        if (/^-?\d+$/.test(val)) cookie.maxAge = Number(val);
        break;
      }
      case 'domain': {
        const d = val.replace(/^\./, '').toLowerCase();
        if (d !== '') cookie.domain = d;
        break;
      }
      case 'path':
        if (val.startsWith('/')) cookie.path = val;
        break;
      case 'secure':
        cookie.secure = true;
        break;
      case 'httponly':
        cookie.httpOnly = true;
        break;
      case 'samesite':
        cookie.sameSite = val;
        break;
      default:
        break; // unknown attributes are ignored (§5.2 step 6)
    }
  }
  return { ok: true, cookie };
}

/** True when the cookie deletes itself: `Max-Age<=0`, or (without Max-Age) an `Expires` in the past. */
export function isExpiredSetCookie(cookie: SetCookie, now: number): boolean {
  if (cookie.maxAge !== undefined) return cookie.maxAge <= 0;
  return cookie.expires !== undefined && cookie.expires <= now;
}

/**
 * RFC 6265 §5.1.3 domain-match: `host` equals `domain`, or ends with `.domain` and is not an
 * IP address.
 */
export function domainMatches(host: string, domain: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  const d = domain.toLowerCase();
  if (h === d) return true;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(h) || h.includes(':')) return false;
  return h.endsWith(`.${d}`);
}

/**
 * Parses a `Cookie:` request header value (`a=1; b=2`) as held in a `cookieHeader` secret.
 * Pairs that are malformed or unsafe are skipped; the reasons are returned by name.
 */
export function parseCookieHeader(header: string): { cookies: Map<string, string>; rejected: Array<{ name?: string; reason: CookieRejection }> } {
  const cookies = new Map<string, string>();
  const rejected: Array<{ name?: string; reason: CookieRejection }> = [];
  const text = header.replace(/^\s*cookie\s*:/i, '');
  for (const part of text.split(';')) {
    if (part.trim() === '') continue;
    const eq = part.indexOf('=');
    if (eq === -1) {
      rejected.push({ reason: 'invalid_name' });
      continue;
    }
    const name = part.slice(0, eq).trim();
    const value = part.slice(eq + 1).trim();
    const why = checkCookie(name, value);
    if (why) {
      rejected.push(isValidCookieName(name) ? { name, reason: why } : { reason: why });
      continue;
    }
    if (cookies.size >= MAX_COOKIES && !cookies.has(name)) {
      rejected.push({ name, reason: 'too_many' });
      continue;
    }
    cookies.set(name, value);
  }
  return { cookies, rejected };
}

/**
 * Serialises cookies into a `Cookie:` header value (`a=1; b=2`, RFC 6265 §5.4 step 4).
 * A pair that is not safe to send is skipped (defence in depth: everything that reaches
 * here was already checked on the way in).
 */
export function serializeCookieHeader(cookies: Iterable<[string, Secret]>): string {
  const parts: string[] = [];
  for (const [name, value] of cookies) {
    const v = value.reveal();
    if (checkCookie(name, v) !== undefined) continue;
    parts.push(`${name}=${v}`);
  }
  return parts.join('; ');
}

/** Wraps plain cookie values as secrets. */
export function toSecretCookies(cookies: Iterable<[string, string]>): Map<string, Secret> {
  const out = new Map<string, Secret>();
  for (const [name, value] of cookies) out.set(name, new Secret(value));
  return out;
}

/**
 * Applies a response's `Set-Cookie` headers to a cookie jar (name → value) for a request to
 * `requestUrl`. Cookies scoped to another domain, cookies not in `wanted` (when given) and
 * malformed or oversized ones are ignored; expired ones are removed. Returns the new jar and
 * what was changed or rejected (by name only).
 */
export function applySetCookies(
  jar: ReadonlyMap<string, Secret>,
  setCookieHeaders: readonly string[],
  requestUrl: URL,
  options: { wanted?: ReadonlySet<string>; now: number },
): { jar: Map<string, Secret>; changed: string[]; removed: string[]; rejected: Array<{ name?: string; reason: CookieRejection }> } {
  const next = new Map(jar);
  const changed: string[] = [];
  const removed: string[] = [];
  const rejected: Array<{ name?: string; reason: CookieRejection }> = [];
  const headers = setCookieHeaders.slice(0, MAX_SET_COOKIE_HEADERS);
  if (setCookieHeaders.length > MAX_SET_COOKIE_HEADERS) rejected.push({ reason: 'too_many' });
  for (const header of headers) {
    const parsed = parseSetCookie(header);
    if (!parsed.ok) {
      rejected.push(parsed.name !== undefined ? { name: parsed.name, reason: parsed.reason } : { reason: parsed.reason });
      continue;
    }
    const c = parsed.cookie;
    if (options.wanted && !options.wanted.has(c.name)) {
      rejected.push({ name: c.name, reason: 'not_wanted' });
      continue;
    }
    // §5.3 step 6: a Domain attribute that does not domain-match the request host is ignored
    // entirely (the cookie is not stored).
    if (c.domain !== undefined && !domainMatches(requestUrl.hostname, c.domain)) {
      rejected.push({ name: c.name, reason: 'domain_mismatch' });
      continue;
    }
    if (isExpiredSetCookie(c, options.now)) {
      if (next.delete(c.name)) removed.push(c.name);
      continue;
    }
    const before = next.get(c.name);
    if (before !== undefined && before.reveal() === c.value) continue;
    if (before === undefined && next.size >= MAX_COOKIES) {
      rejected.push({ name: c.name, reason: 'too_many' });
      continue;
    }
    next.set(c.name, new Secret(c.value));
    changed.push(c.name);
  }
  return { jar: next, changed, removed, rejected };
}
