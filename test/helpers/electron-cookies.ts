/**
 * An in-memory stand-in for Electron's `session.cookies` (Electron is not installed here),
 * with the behaviour the remote client relies on, as Electron documents it:
 *
 * - `get({ url })` returns the cookies a request to that URL would carry: host-only cookies
 *   for the exact host, domain cookies for the domain and its subdomains, path-matched,
 *   `Secure` ones only for https, expired ones never;
 * - `set(details)` stores a cookie keyed by (name, domain, path); `domain` omitted makes it
 *   host-only; `expirationDate` is in seconds; it rejects (like Chromium) a `__Host-`/
 *   `__Secure-` cookie that breaks its prefix rules;
 * - `remove(url, name)` removes the cookies called `name` that `get({ url })` would return.
 */
import type { ElectronCookie, ElectronCookieDetails, ElectronCookies } from '../../src/remote/cookie-jar.js';
import { pathMatches } from '../../src/remote/cookie-jar.js';

interface Stored extends ElectronCookie {
  hostOnly: boolean;
}

export class FakeElectronCookies implements ElectronCookies {
  readonly #cookies: Stored[] = [];
  /** calls made, for assertions */
  readonly calls: string[] = [];

  constructor(private readonly now: () => number = Date.now) {}

  #matches(c: Stored, url: URL): boolean {
    const host = url.hostname;
    const domain = (c.domain ?? '').replace(/^\./, '');
    if (c.hostOnly ? host !== domain : host !== domain && !host.endsWith(`.${domain}`)) return false;
    if (!pathMatches(url.pathname, c.path ?? '/')) return false;
    if (c.secure && url.protocol !== 'https:') return false;
    if (c.expirationDate !== undefined && c.expirationDate * 1000 <= this.now()) return false;
    return true;
  }

  async get(filter: { url?: string; name?: string }): Promise<ElectronCookie[]> {
    this.calls.push(`get ${filter.url ?? ''}`);
    return this.#cookies
      .filter((c) => (filter.url === undefined || this.#matches(c, new URL(filter.url))) && (filter.name === undefined || c.name === filter.name))
      .map((c) => ({ ...c }));
  }

  async set(d: ElectronCookieDetails): Promise<void> {
    this.calls.push(`set ${d.name}`);
    const url = new URL(d.url);
    const lower = d.name.toLowerCase();
    if ((lower.startsWith('__secure-') || lower.startsWith('__host-')) && !d.secure) throw new Error(`Failed to set cookie ${d.name}: prefix`);
    if (lower.startsWith('__host-') && (d.domain !== undefined || (d.path ?? '/') !== '/')) throw new Error(`Failed to set cookie ${d.name}: __Host-`);
    const hostOnly = d.domain === undefined;
    const domain = hostOnly ? url.hostname : `.${d.domain!.replace(/^\./, '')}`;
    const path = d.path ?? '/';
    const i = this.#cookies.findIndex((c) => c.name === d.name && c.domain === domain && (c.path ?? '/') === path);
    if (i >= 0) this.#cookies.splice(i, 1);
    const c: Stored = {
      name: d.name,
      value: d.value,
      domain,
      path,
      secure: d.secure ?? false,
      httpOnly: d.httpOnly ?? false,
      session: d.expirationDate === undefined,
      hostOnly,
    };
    if (d.expirationDate !== undefined) c.expirationDate = d.expirationDate;
    this.#cookies.push(c);
  }

  async remove(url: string, name: string): Promise<void> {
    this.calls.push(`remove ${name}`);
    const u = new URL(url);
    for (let i = this.#cookies.length - 1; i >= 0; i--) {
      const c = this.#cookies[i]!;
      if (c.name === name && this.#matches(c, u)) this.#cookies.splice(i, 1);
    }
  }

  /** Every stored cookie, expired ones included. */
  all(): ElectronCookie[] {
    return this.#cookies.map((c) => ({ ...c }));
  }
}
