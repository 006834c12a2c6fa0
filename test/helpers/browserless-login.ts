/**
 * Signs in through any relying party (the Latchkey gateway, or express-openid-connect in the
 * bench) at the test IdP without a browser: plain HTTP, following the relying party's
 * redirects by hand with one cookie jar per origin, and the IdP's login/consent form submitted
 * the way a person would (by the gateway tests' `authorizeAtIdp`; the fixture's interaction is a
 * single HTML form, login and consent). Nothing here bypasses the protocol: the relying party runs its real authorization-code +
 * PKCE flow, state and nonce included, and the IdP issues real tokens.
 *
 * The jars are the remote client's plain `Map<string, JarCookie>` jars, filled through the
 * same Set-Cookie rules (src/remote/cookie-jar.ts), so a jar can be handed to
 * `checkConnection` afterwards.
 */
import { cookieAccess, type JarCookie } from '../../src/remote/cookie-jar.js';
import { authorizeAtIdp } from './gateway.js';

/** Cookie jars by origin (`http://127.0.0.1:PORT`). */
export type OriginJars = Map<string, Map<string, JarCookie>>;

/** One hop of the sign-in, for diagnostics. */
export interface Hop {
  method: string;
  url: string;
  status: number;
}

/** Result of {@link signIn}. */
export interface SignInResult {
  /** The last URL fetched (where the browser would rest). */
  finalUrl: string;
  finalStatus: number;
  /** The final answer's body (text). */
  finalBody: string;
  /** The jar of the origin the sign-in started on (the relying party's cookies). */
  jar: Map<string, JarCookie>;
  /** Every origin's jar (the IdP's session cookies included). */
  jars: OriginJars;
  hops: Hop[];
}

/** The jar for `origin` in `jars` (created when missing). */
export function jarFor(jars: OriginJars, origin: string): Map<string, JarCookie> {
  let jar = jars.get(origin);
  if (!jar) {
    jar = new Map();
    jars.set(origin, jar);
  }
  return jar;
}

/** The `Cookie:` header value a request to `url` carries from `jars`. */
export async function cookieHeaderFor(jars: OriginJars, url: URL): Promise<string> {
  const cookies = await cookieAccess(jarFor(jars, url.origin)).forRequest(url, Date.now());
  return cookies.map((c) => `${c.name}=${c.value}`).join('; ');
}

/**
 * Fetches `url` with the jar's cookies, stores what it sets, and never follows redirects.
 * `headers` are added (e.g. `Origin` and the CSRF header for a POST).
 */
export async function fetchWithJars(
  jars: OriginJars,
  url: string | URL,
  init: { method?: string; headers?: Record<string, string>; body?: string | URLSearchParams } = {},
): Promise<Response> {
  const u = new URL(url);
  const cookie = await cookieHeaderFor(jars, u);
  const res = await fetch(u, {
    method: init.method ?? 'GET',
    redirect: 'manual',
    headers: { ...(cookie ? { cookie } : {}), ...(init.headers ?? {}) },
    body: init.body,
    signal: AbortSignal.timeout(15_000),
  });
  await cookieAccess(jarFor(jars, u.origin)).apply(u, res.headers.getSetCookie(), Date.now());
  return res;
}

/**
 * Starts at `startUrl` on the relying party (a protected page, or the gateway's
 * `/auth/login?next=…`) and follows its redirects like a browser. The hop that leaves for
 * another origin is the authorization request: the IdP part (login page, consent) is driven by
 * `authorizeAtIdp` (test/helpers/gateway.ts); its redirect back is fetched on the relying party
 * with its jar, and redirects are followed again until an answer that is not a redirect,
 * normally the protected page itself.
 */
export async function signIn(startUrl: string, options: { login?: string; jars?: OriginJars; maxHops?: number } = {}): Promise<SignInResult> {
  const jars = options.jars ?? new Map();
  const start = new URL(startUrl);
  const hops: Hop[] = [];
  let next = start.href;
  let visitedIdp = false;
  for (let i = 0; i < (options.maxHops ?? 20); i++) {
    const res = await fetchWithJars(jars, next);
    hops.push({ method: 'GET', url: next, status: res.status });
    const text = await res.text();
    if (res.status < 300 || res.status >= 400) return { finalUrl: next, finalStatus: res.status, finalBody: text, jar: jarFor(jars, start.origin), jars, hops };
    const location = res.headers.get('location');
    if (!location) throw new Error(`signIn: ${res.status} without Location at ${next}`);
    const target = new URL(location, next);
    if (target.origin !== start.origin) {
      if (visitedIdp) throw new Error(`signIn: sent to ${target.origin} a second time: ${hops.map((h) => `${h.url} ${h.status}`).join(' → ')}`);
      visitedIdp = true;
      const callback = await authorizeAtIdp(target, options.login ?? 'alice');
      hops.push({ method: 'GET', url: `${target.origin} (login and consent)`, status: 303 });
      next = callback.href;
      continue;
    }
    next = target.href;
  }
  throw new Error(`signIn: more than ${options.maxHops ?? 20} hops: ${hops.map((h) => `${h.method} ${h.url} ${h.status}`).join(' → ')}`);
}

/** The jar's cookies as a `Cookie:` header value for any path on its origin (names and values). */
export function cookieHeaderOf(jar: Map<string, JarCookie>): string {
  return [...jar.values()].map((c) => `${c.name}=${c.value}`).join('; ');
}
