/**
 * Shared pieces of the login tests: drive the fixture IdP's real HTML pages over HTTP (no
 * browser), capture every secret that crosses the wire (the canary set), and compare store.json
 * byte for byte. Not a test file itself.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { inspect } from 'node:util';
import type { FetchLike } from '../../src/oauth/endpoint.js';

const HOP_TIMEOUT_MS = 10_000;

/** Minimal cookie jar for one host (path and domain ignored). */
export class CookieJar {
  readonly #cookies = new Map<string, string>();
  store(res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair = ''] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      if (value === '' || /max-age=0|expires=Thu, 01 Jan 1970/i.test(line)) this.#cookies.delete(name);
      else this.#cookies.set(name, value);
    }
  }
  header(): string {
    return [...this.#cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

function decodeHtml(s: string): string {
  return s.replace(/&#(\d+);/g, (_m, n: string) => String.fromCharCode(Number(n))).replace(/&amp;/g, '&').replace(/&quot;/g, '"').replace(/&lt;/g, '<').replace(/&gt;/g, '>');
}

function attr(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\b${name}="([^"]*)"`, 'i').exec(tag);
  return m?.[1] === undefined ? undefined : decodeHtml(m[1]);
}

/** The first POST form of a page: its action and the fields a browser would submit. */
function firstPostForm(html: string, base: string, login: string): { action: string; body: URLSearchParams } | undefined {
  const form = /<form\b[^>]*>/i.exec(html);
  if (!form || (attr(form[0], 'method') ?? 'get').toLowerCase() !== 'post') return undefined;
  const id = attr(form[0], 'id');
  const body = new URLSearchParams();
  for (const m of html.matchAll(/<input\b[^>]*>/gi)) {
    const name = attr(m[0], 'name');
    if (!name) continue;
    const owner = attr(m[0], 'form');
    if (owner && owner !== id) continue;
    body.set(name, name === 'login' ? login : (attr(m[0], 'value') ?? ''));
  }
  // A named submit button (inside the form or bound to it with form="…") submits its value.
  for (const m of html.matchAll(/<button\b[^>]*>/gi)) {
    const name = attr(m[0], 'name');
    if (name && (!attr(m[0], 'form') || attr(m[0], 'form') === id)) body.set(name, attr(m[0], 'value') ?? '');
  }
  return { action: new URL(attr(form[0], 'action') ?? base, base).href, body };
}

/**
 * Follows an IdP's pages the way a person with a browser would: redirects, auto-submitting
 * forms, the login form (typing `login`), confirm buttons. Stops when a redirect points at a
 * URL for which `stopAt` is true (returned, not followed), or on a page matching `donePattern`.
 */
export async function driveIdpPages(
  startUrl: string,
  opts: { stopAt?: (url: URL) => boolean; donePattern?: RegExp; login?: string; jar?: CookieJar } = {},
): Promise<{ stoppedAt?: URL; html?: string }> {
  const jar = opts.jar ?? new CookieJar();
  const login = opts.login ?? 'alice';
  let next: { url: string; method: 'GET' | 'POST'; body?: URLSearchParams } = { url: startUrl, method: 'GET' };
  for (let hop = 0; hop < 20; hop += 1) {
    const res = await fetch(next.url, {
      method: next.method,
      redirect: 'manual',
      headers: { cookie: jar.header(), ...(next.body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: next.body,
      signal: AbortSignal.timeout(HOP_TIMEOUT_MS),
    });
    jar.store(res);
    const text = await res.text();
    if (res.status >= 300 && res.status < 400) {
      const location = res.headers.get('location');
      assert.ok(location, `redirect without Location at ${next.url}`);
      const target = new URL(location, next.url);
      if (opts.stopAt?.(target)) return { stoppedAt: target };
      next = { url: target.href, method: 'GET' };
      continue;
    }
    if (opts.donePattern?.test(text)) return { html: text };
    const form = res.status === 200 ? firstPostForm(text, next.url, login) : undefined;
    if (!form) throw new Error(`driveIdpPages: unexpected ${res.status} at ${next.url}: ${text.slice(0, 400)}`);
    next = { url: form.action, method: 'POST', body: form.body };
  }
  throw new Error('driveIdpPages: too many hops');
}

/** Drives an authorization URL through the IdP's login until the redirect to the loopback callback. */
export async function authorizeOverHttp(authorizationUrl: string, login = 'alice'): Promise<URL> {
  const redirectUri = new URL(authorizationUrl).searchParams.get('redirect_uri');
  assert.ok(redirectUri, 'authorization URL without redirect_uri');
  const { stoppedAt } = await driveIdpPages(authorizationUrl, { stopAt: (u) => u.href.startsWith(redirectUri), login });
  assert.ok(stoppedAt, 'the IdP never redirected to the callback');
  return stoppedAt;
}

/**
 * Wraps fetch and remembers every secret that crosses it: authorization codes, PKCE
 * verifiers, client secrets and refresh tokens sent, and every token received. These are the
 * canaries no message or output may contain.
 */
export function recordingFetch(base: FetchLike = (i, init) => fetch(i, init)): { fetch: FetchLike; secrets: Set<string> } {
  const secrets = new Set<string>();
  const add = (v: unknown): void => {
    if (typeof v === 'string' && v.length >= 8) secrets.add(v);
  };
  const wrapped: FetchLike = async (input, init) => {
    const body = init?.body;
    if (body instanceof URLSearchParams || typeof body === 'string') {
      const params = new URLSearchParams(body);
      for (const k of ['code', 'code_verifier', 'refresh_token', 'client_secret', 'token', 'device_code']) add(params.get(k));
    }
    const res = await base(input, init);
    const text = await res.clone().text();
    try {
      const json = JSON.parse(text) as Record<string, unknown>;
      for (const k of ['access_token', 'refresh_token', 'id_token', 'device_code']) add(json[k]);
    } catch {
      // not JSON
    }
    return res;
  };
  return { fetch: wrapped, secrets };
}

/** Asserts no canary appears in any of the texts (messages, outputs, inspected errors). */
export function assertNoSecrets(secrets: Iterable<string>, ...texts: unknown[]): void {
  const haystack = texts.map((t) => (typeof t === 'string' ? t : inspect(t, { depth: 8, showHidden: false }))).join('\n');
  for (const s of secrets) {
    assert.ok(!haystack.includes(s), `a secret (${s.slice(0, 4)}…, ${s.length} chars) leaked into a message or output`);
  }
}

/** store.json as bytes (undefined when absent). */
export async function storeBytes(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** A writable stream that collects what is written (for in-process CLI runs); `onWrite` sees the text so far. */
export function captureStream(onWrite?: (all: string) => void): NodeJS.WritableStream & { text(): string } {
  const chunks: string[] = [];
  const stream = {
    write(chunk: string | Uint8Array, ...rest: unknown[]): boolean {
      chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString('utf8'));
      const cb = rest.find((r): r is () => void => typeof r === 'function');
      cb?.();
      onWrite?.(chunks.join(''));
      return true;
    },
    text: () => chunks.join(''),
  };
  return stream as unknown as NodeJS.WritableStream & { text(): string };
}
