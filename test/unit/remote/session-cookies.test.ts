/**
 * hasLiveSession: the access **or** the refresh cookie, any name variant, unexpired. The seed
 * bug: a client that looked at the access cookie alone called a session with a live refresh
 * cookie "signed out" every 15 minutes.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ACCESS_COOKIE,
  COOKIE_NAME_PREFIXES,
  REFRESH_COOKIE,
  SESSION_COOKIE_NAMES,
  cookieExpiresAt,
  hasLiveSession,
  isSessionCookieName,
} from '../../../src/remote/session-cookies.js';

const NOW = Date.parse('2026-11-30T09:00:00Z');
const S = NOW / 1000;

describe('session cookie names', () => {
  test('six names: __Host-, __Secure- and bare, for access and refresh', () => {
    assert.deepEqual(
      [...SESSION_COOKIE_NAMES].sort(),
      ['__Host-latchkey_at', '__Host-latchkey_rt', '__Secure-latchkey_at', '__Secure-latchkey_rt', 'latchkey_at', 'latchkey_rt'].sort(),
    );
    assert.deepEqual([...COOKIE_NAME_PREFIXES], ['__Host-', '__Secure-', '']);
    for (const n of SESSION_COOKIE_NAMES) assert.ok(isSessionCookieName(n));
    for (const n of ['latchkey_login', '__host-latchkey_at', 'Latchkey_at', 'latchkey_at2', '__Secure-latchkey_login', 'session']) {
      assert.equal(isSessionCookieName(n), false, n);
    }
  });
});

describe('hasLiveSession', () => {
  test('refresh cookie alone (the access cookie lapsed and was dropped): live, every variant', () => {
    for (const p of COOKIE_NAME_PREFIXES) {
      assert.equal(hasLiveSession([{ name: `${p}${REFRESH_COOKIE}`, value: 'sealed', expirationDate: S + 86_400 }], { now: NOW }), true, p);
    }
  });

  test('access cookie alone: live, every variant', () => {
    for (const p of COOKIE_NAME_PREFIXES) {
      assert.equal(hasLiveSession([{ name: `${p}${ACCESS_COOKIE}`, value: 'sealed', expiresAt: NOW + 60_000 }], { now: NOW }), true, p);
    }
  });

  test('expired access + live refresh: live; both expired: not live', () => {
    const at = { name: `__Host-${ACCESS_COOKIE}`, value: 'a', expirationDate: S - 1 };
    assert.equal(hasLiveSession([at, { name: `__Host-${REFRESH_COOKIE}`, value: 'r', expirationDate: S + 10 }], { now: NOW }), true);
    assert.equal(hasLiveSession([at, { name: `__Host-${REFRESH_COOKIE}`, value: 'r', expirationDate: S }], { now: NOW }), false, 'expiring exactly now counts as expired');
  });

  test('no cookies, other cookies, empty values: not live', () => {
    assert.equal(hasLiveSession([], { now: NOW }), false);
    assert.equal(hasLiveSession([{ name: 'latchkey_login_abc', value: 'x' }, { name: 'sid', value: 'y' }], { now: NOW }), false);
    assert.equal(hasLiveSession([{ name: REFRESH_COOKIE, value: '' }], { now: NOW }), false, 'a deleted cookie has an empty value');
  });

  test('a session cookie (no expiry) is live', () => {
    assert.equal(hasLiveSession([{ name: ACCESS_COOKIE, value: 'a' }], { now: NOW }), true);
  });

  test('Electron seconds vs jar milliseconds are not confused', () => {
    // 2 hours ahead in seconds would be "already expired" if read as milliseconds, and the
    // millisecond value would be ~50,000 years ahead if read as seconds.
    assert.equal(hasLiveSession([{ name: REFRESH_COOKIE, value: 'r', expirationDate: S + 7200 }], { now: NOW }), true);
    assert.equal(hasLiveSession([{ name: REFRESH_COOKIE, value: 'r', expiresAt: NOW - 1 }], { now: NOW }), false);
    assert.equal(cookieExpiresAt({ name: 'x', value: 'y', expirationDate: 10 }), 10_000);
    assert.equal(cookieExpiresAt({ name: 'x', value: 'y', expiresAt: 10 }), 10);
    assert.equal(cookieExpiresAt({ name: 'x', value: 'y' }), Number.POSITIVE_INFINITY);
  });

  test('a Map jar is accepted as is; junk entries are skipped, not thrown on', () => {
    const jar = new Map([[REFRESH_COOKIE, { name: REFRESH_COOKIE, value: 'r', expiresAt: NOW + 1000 }]]);
    assert.equal(hasLiveSession(jar, { now: NOW }), true);
    assert.equal(hasLiveSession(jar, { now: NOW + 1000 }), false);
    const junk = [null, 1, { name: 5, value: 'x' }, { name: ACCESS_COOKIE }] as unknown as Parameters<typeof hasLiveSession>[0];
    assert.equal(hasLiveSession(junk, { now: NOW }), false);
  });

  test('defaults to the wall clock', () => {
    assert.equal(hasLiveSession([{ name: REFRESH_COOKIE, value: 'r', expiresAt: Date.now() + 60_000 }]), true);
    assert.equal(hasLiveSession([{ name: REFRESH_COOKIE, value: 'r', expiresAt: Date.now() - 60_000 }]), false);
  });
});

describe('the contract with the gateway', () => {
  test('the remote client knows exactly the gateway\'s access/refresh cookie names and prefixes', async () => {
    // Imported here, not in src/remote: the client must not load the gateway, but the two must agree.
    const rules = await import('../../../src/gateway/cookie-rules.js');
    assert.equal(ACCESS_COOKIE, rules.COOKIE_BASE.at);
    assert.equal(REFRESH_COOKIE, rules.COOKIE_BASE.rt);
    assert.deepEqual([...COOKIE_NAME_PREFIXES], [...rules.NAME_PREFIXES]);
    const gatewayNames = new Set<string>();
    for (const https of [false, true]) {
      for (const prefix of ['', '/dash']) {
        for (const kind of ['at', 'rt'] as const) {
          gatewayNames.add(rules.cookieRule(kind, { https, prefix }).name);
          for (const v of rules.cookieVariants(kind, { https, prefix })) gatewayNames.add(v.name);
        }
      }
    }
    assert.deepEqual([...gatewayNames].sort(), [...SESSION_COOKIE_NAMES].sort());
    // The login-transaction cookie is not a session.
    assert.equal(isSessionCookieName(rules.cookieRule('login', { https: false, prefix: '' }, 'Ab3-x_9Q').name), false);
  });
});
