/**
 * The remote client's cookie stores: a plain Map jar and Electron's `session.cookies` shape
 * (an in-memory stand-in with Electron's documented matching). Set-Cookie headers as the
 * gateway writes them: rotation replaces, `Max-Age=0` deletes, prefix rules hold.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cookieAccess, defaultCookiePath, pathMatches, type JarCookie } from '../../../src/remote/cookie-jar.js';
import { FakeElectronCookies } from '../../helpers/electron-cookies.js';
import { LatchkeyError } from '../../../src/core/errors.js';

const NOW = Date.parse('2026-11-30T09:00:00Z');
const HTTPS = new URL('https://dash.example.com/auth/ws-ticket');
const PREFIXED = new URL('https://example.com/dash/auth/ws-ticket');
const LOOPBACK = new URL('http://127.0.0.1:8080/auth/ws-ticket');

describe('RFC 6265 paths', () => {
  test('default-path and path-match', () => {
    assert.equal(defaultCookiePath(new URL('https://h/auth/ws-ticket')), '/auth');
    assert.equal(defaultCookiePath(new URL('https://h/x')), '/');
    assert.equal(defaultCookiePath(new URL('https://h/')), '/');
    assert.ok(pathMatches('/dash/auth/ws-ticket', '/dash'));
    assert.ok(pathMatches('/dash', '/dash'));
    assert.ok(pathMatches('/dash/x', '/dash/'));
    assert.equal(pathMatches('/dashboard', '/dash'), false);
    assert.equal(pathMatches('/', '/dash'), false);
  });
});

describe('plain jar', () => {
  test('stores a rotation, sends it back; Max-Age=0 deletes; other names untouched', async () => {
    const jar = new Map<string, JarCookie>([['other', { name: 'other', value: 'o' }]]);
    const a = cookieAccess(jar);
    const ch = await a.apply(HTTPS, ['__Host-latchkey_at=AT1; Path=/; Max-Age=900; Secure; HttpOnly; SameSite=Lax', '__Host-latchkey_rt=RT1; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Lax'], NOW);
    assert.deepEqual(ch, { changed: ['__Host-latchkey_at', '__Host-latchkey_rt'], removed: [], rejected: [] });
    assert.deepEqual(jar.get('__Host-latchkey_at'), { name: '__Host-latchkey_at', value: 'AT1', path: '/', secure: true, httpOnly: true, expiresAt: NOW + 900_000, sameSite: 'Lax' });
    assert.deepEqual(
      (await a.forRequest(HTTPS, NOW)).map((c) => c.name),
      ['other', '__Host-latchkey_at', '__Host-latchkey_rt'],
    );
    // 15 minutes later the access cookie is gone from requests, the refresh cookie is not.
    assert.deepEqual(
      (await a.forRequest(HTTPS, NOW + 900_000)).map((c) => c.name),
      ['other', '__Host-latchkey_rt'],
    );
    const del = await a.apply(HTTPS, ['__Host-latchkey_at=; Path=/; Max-Age=0; Secure; HttpOnly', 'latchkey_rt=; Path=/; Max-Age=0', '__Host-latchkey_rt=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Secure'], NOW);
    assert.deepEqual(del.removed, ['__Host-latchkey_at', '__Host-latchkey_rt']);
    assert.deepEqual([...jar.keys()], ['other']);
  });

  test('prefix rules: __Host- without Secure, with a Domain or Path≠/ is refused; __Secure- without Secure too', async () => {
    const jar = new Map<string, JarCookie>();
    const ch = await cookieAccess(jar).apply(
      HTTPS,
      [
        '__Host-latchkey_at=a; Path=/; Max-Age=60',
        '__Host-latchkey_at=b; Path=/x; Secure; Max-Age=60',
        '__Host-latchkey_at=c; Path=/; Domain=example.com; Secure; Max-Age=60',
        '__Secure-latchkey_rt=d; Path=/dash; Max-Age=60',
      ],
      NOW,
    );
    assert.deepEqual(ch.rejected.map((r) => r.reason), ['prefix_rules', 'prefix_rules', 'prefix_rules', 'prefix_rules']);
    assert.equal(jar.size, 0);
  });

  test('a Domain not matching the host is ignored; Secure from plain http on a non-loopback host is refused; loopback is fine', async () => {
    const jar = new Map<string, JarCookie>();
    const a = cookieAccess(jar);
    const ch = await a.apply(HTTPS, ['latchkey_at=x; Domain=evil.test; Path=/'], NOW);
    assert.deepEqual(ch.rejected, [{ name: 'latchkey_at', reason: 'domain_mismatch' }]);
    const ch2 = await a.apply(new URL('http://10.0.0.5/auth/ws-ticket'), ['latchkey_at=x; Path=/; Secure'], NOW);
    assert.deepEqual(ch2.rejected, [{ name: 'latchkey_at', reason: 'insecure_origin' }]);
    const ch3 = await a.apply(LOOPBACK, ['latchkey_at=x; Path=/; HttpOnly; SameSite=Lax; Max-Age=60'], NOW);
    assert.deepEqual(ch3.changed, ['latchkey_at']);
  });

  test('malformed and oversized Set-Cookie headers are rejected by name, values never reported', async () => {
    const jar = new Map<string, JarCookie>();
    const big = 'x'.repeat(5000);
    const ch = await cookieAccess(jar).apply(LOOPBACK, ['no-equals-sign', `latchkey_rt=${big}; Path=/`, 'latchkey_at=bad\u0001value; Path=/'], NOW);
    assert.deepEqual(ch.rejected.map((r) => r.reason), ['invalid_name', 'too_large', 'invalid_value']);
    assert.equal(JSON.stringify(ch).includes(big), false);
    assert.equal(jar.size, 0);
  });

  test('path scoping: a prefix deployment\'s cookies go only under the prefix; a deletion for another path leaves them', async () => {
    const jar = new Map<string, JarCookie>();
    const a = cookieAccess(jar);
    await a.apply(PREFIXED, ['__Secure-latchkey_rt=R; Path=/dash; Secure; HttpOnly; Max-Age=600'], NOW);
    assert.deepEqual((await a.forRequest(PREFIXED, NOW)).map((c) => c.name), ['__Secure-latchkey_rt']);
    assert.deepEqual(await a.forRequest(new URL('https://example.com/other/auth/ws-ticket'), NOW), []);
    const ch = await a.apply(PREFIXED, ['__Secure-latchkey_rt=; Path=/; Max-Age=0; Secure'], NOW);
    assert.deepEqual(ch.removed, []);
    assert.equal(jar.size, 1);
  });

  test('Secure cookies are not sent over plain http to a non-loopback host; expired ones never', async () => {
    const jar = new Map<string, JarCookie>([
      ['s', { name: 's', value: '1', secure: true }],
      ['e', { name: 'e', value: '2', expiresAt: NOW }],
      ['ok', { name: 'ok', value: '3' }],
    ]);
    assert.deepEqual((await cookieAccess(jar).forRequest(new URL('http://10.0.0.5/x'), NOW)).map((c) => c.name), ['ok']);
  });

  test('an async jar works the same', async () => {
    const inner = new Map<string, JarCookie>();
    const asyncJar = {
      values: async () => inner.values(),
      set: async (n: string, c: JarCookie) => void inner.set(n, c),
      delete: async (n: string) => inner.delete(n),
    };
    const a = cookieAccess(asyncJar);
    await a.apply(LOOPBACK, ['latchkey_rt=R; Path=/; Max-Age=60'], NOW);
    assert.deepEqual((await a.forRequest(LOOPBACK, NOW)).map((c) => `${c.name}=${c.value}`), ['latchkey_rt=R']);
  });

  test('something that is neither store is LK_USAGE naming both shapes', () => {
    for (const bad of [null, {}, { get() {}, set() {} }, 'cookies']) {
      assert.throws(() => cookieAccess(bad as never), (e: unknown) => e instanceof LatchkeyError && e.code === 'LK_USAGE' && /values\/set\/delete.*get\/set\/remove/.test(e.message));
    }
  });
});

describe('Electron session.cookies', () => {
  test('host-only cookies set with seconds, rotation replaces, deletion removes', async () => {
    const el = new FakeElectronCookies(() => NOW);
    const a = cookieAccess(el);
    await a.apply(HTTPS, ['__Host-latchkey_at=AT1; Path=/; Max-Age=900; Secure; HttpOnly; SameSite=Lax', '__Host-latchkey_rt=RT1; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Lax'], NOW);
    const stored = el.all();
    assert.equal(stored.length, 2);
    const at = stored.find((c) => c.name === '__Host-latchkey_at');
    assert.equal(at?.expirationDate, NOW / 1000 + 900);
    assert.equal(at?.domain, 'dash.example.com', 'no Domain attribute: host-only');
    assert.equal(at?.secure, true);
    assert.equal(at?.httpOnly, true);

    await a.apply(HTTPS, ['__Host-latchkey_rt=RT2; Path=/; Max-Age=86400; Secure; HttpOnly; SameSite=Lax'], NOW);
    const sent = await a.forRequest(HTTPS, NOW);
    assert.deepEqual(sent.map((c) => `${c.name}=${c.value}`).sort(), ['__Host-latchkey_at=AT1', '__Host-latchkey_rt=RT2']);

    await a.apply(HTTPS, ['__Host-latchkey_at=; Path=/; Max-Age=0; Secure; HttpOnly', '__Host-latchkey_rt=; Path=/; Max-Age=0; Secure; HttpOnly'], NOW);
    assert.deepEqual(el.all(), []);
  });

  test('a prefix deployment: cookies scoped to the prefix path; http loopback bare names', async () => {
    const el = new FakeElectronCookies(() => NOW);
    const a = cookieAccess(el);
    await a.apply(PREFIXED, ['__Secure-latchkey_rt=R; Path=/dash; Secure; HttpOnly; Max-Age=600'], NOW);
    assert.equal(el.all()[0]?.path, '/dash');
    assert.equal((await a.forRequest(new URL('https://example.com/elsewhere'), NOW)).length, 0);
    assert.equal((await a.forRequest(PREFIXED, NOW)).length, 1);

    const el2 = new FakeElectronCookies(() => NOW);
    await cookieAccess(el2).apply(LOOPBACK, ['latchkey_at=A; Path=/; HttpOnly; SameSite=Lax; Max-Age=60'], NOW);
    assert.deepEqual(el2.all().map((c) => [c.name, c.secure, c.domain]), [['latchkey_at', false, '127.0.0.1']]);
  });

  test('what Electron refuses is reported by name, not thrown, and never with the value', async () => {
    const el = new FakeElectronCookies(() => NOW);
    el.set = async () => {
      throw new Error('Failed to set cookie: value SECRETVALUE');
    };
    const ch = await cookieAccess(el).apply(LOOPBACK, ['latchkey_at=SECRETVALUE; Path=/'], NOW);
    assert.deepEqual(ch.rejected, [{ name: 'latchkey_at', reason: 'store_refused' }]);
    assert.equal(JSON.stringify(ch).includes('SECRETVALUE'), false);
  });

  test('expired cookies Electron still hands out are not sent', async () => {
    const el = new FakeElectronCookies(() => NOW - 10_000);
    await el.set({ url: 'http://127.0.0.1:8080/', name: 'latchkey_at', value: 'A', path: '/', expirationDate: NOW / 1000 - 1 });
    await el.set({ url: 'http://127.0.0.1:8080/', name: 'latchkey_rt', value: 'R', path: '/', expirationDate: NOW / 1000 + 100 });
    assert.deepEqual((await cookieAccess(el).forRequest(LOOPBACK, NOW)).map((c) => c.name), ['latchkey_rt']);
  });
});
