/**
 * The `next` of a login: where the browser returns after signing in. Only a path of this
 * deployment (no scheme, no host, no `//`, no backslash, no control character, nothing that
 * decodes into one of those), normalised (dot segments resolved), and never a gateway route
 * (`/auth/…`). Returned without the proxy prefix; the caller adds it.
 */

export const MAX_NEXT_CHARS = 2048;

export type NextResult = { ok: true; path: string } | { ok: false; message: string };

const BASE = 'http://next.invalid';

export function validateNext(raw: string | null | undefined): NextResult {
  if (raw === null || raw === undefined || raw === '') return { ok: true, path: '/' };
  if (raw.length > MAX_NEXT_CHARS) return { ok: false, message: `next is longer than ${MAX_NEXT_CHARS} characters` };
  if (!raw.startsWith('/')) return { ok: false, message: 'next must be a path of this site starting with /' };
  let decoded = raw;
  // Twice-encoded tricks (%252F%252F) are refused as well as once-encoded ones.
  for (let i = 0; i < 3; i++) {
    if (!bad(decoded).ok) return bad(decoded);
    let next: string;
    try {
      next = decodeURIComponent(decoded);
    } catch {
      return { ok: false, message: 'next is not validly percent-encoded' };
    }
    if (next === decoded) break;
    decoded = next;
  }
  if (!bad(decoded).ok) return bad(decoded);
  let url: URL;
  try {
    url = new URL(raw, BASE);
  } catch {
    return { ok: false, message: 'next is not a valid path' };
  }
  if (url.origin !== BASE) return { ok: false, message: 'next must stay on this site' };
  const path = `${url.pathname}${url.search}${url.hash}`;
  if (path.startsWith('//') || path === '/auth' || path.startsWith('/auth/') || path.startsWith('/auth?')) return { ok: false, message: 'next may not point at the gateway\'s own /auth routes' };
  return { ok: true, path };
}

function bad(s: string): NextResult {
  if (s.startsWith('//') || s.startsWith('/\\')) return { ok: false, message: 'next may not start with // (another host)' };
  if (s.includes('\\')) return { ok: false, message: 'next may not contain a backslash' };
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(s)) return { ok: false, message: 'next may not contain control characters' };
  return { ok: true, path: s };
}
