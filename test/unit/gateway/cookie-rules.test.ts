import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { cookieRule, cookieVariants, deletionHeaders, gatewayBaseName, readGatewayCookies, setCookieHeader, withoutGatewayCookies } from '../../../src/gateway/cookie-rules.js';

const HTTP = { https: false, prefix: '' };
const HTTPS = { https: true, prefix: '' };
const PREFIXED = { https: true, prefix: '/dash' };

describe('cookieRule: the one rule for name, Path and Secure', () => {
  test('plain HTTP: bare name at / (or the prefix), not Secure', () => {
    assert.deepEqual(cookieRule('at', HTTP), { name: 'latchkey_at', path: '/', secure: false });
    assert.deepEqual(cookieRule('rt', { https: false, prefix: '/p' }), { name: 'latchkey_rt', path: '/p', secure: false });
  });
  test('HTTPS at /: __Host-, Path=/, Secure', () => {
    assert.deepEqual(cookieRule('at', HTTPS), { name: '__Host-latchkey_at', path: '/', secure: true });
  });
  test('HTTPS behind a prefix: __Secure-, Path=<prefix>, Secure', () => {
    assert.deepEqual(cookieRule('rt', PREFIXED), { name: '__Secure-latchkey_rt', path: '/dash', secure: true });
  });
  test('login attempts carry their id in the name', () => {
    assert.equal(cookieRule('login', HTTPS, 'Ab3-x_9Q').name, '__Host-latchkey_login_Ab3-x_9Q');
  });
  test('the setter\'s choice is always among the variants the reader and logout know', () => {
    for (const shape of [HTTP, HTTPS, PREFIXED, { https: false, prefix: '/p' }]) {
      for (const kind of ['at', 'rt'] as const) {
        const set = cookieRule(kind, shape);
        assert.ok(cookieVariants(kind, shape).some((v) => v.name === set.name && v.path === set.path && v.secure === set.secure), JSON.stringify({ shape, kind }));
        assert.equal(gatewayBaseName(set.name), kind === 'at' ? 'latchkey_at' : 'latchkey_rt');
      }
    }
  });
  test('Set-Cookie: HttpOnly, SameSite=Lax, Max-Age; a deletion is Max-Age=0 with a past Expires', () => {
    assert.equal(setCookieHeader(cookieRule('at', HTTPS), 'v1.x', 900), '__Host-latchkey_at=v1.x; Path=/; Max-Age=900; HttpOnly; SameSite=Lax; Secure');
    const deletions = deletionHeaders('at', PREFIXED);
    assert.equal(deletions.length, 5);
    for (const d of deletions) assert.match(d, /=; Path=\/\S*; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax/);
    assert.ok(deletions.every((d) => !d.startsWith('__') || d.endsWith('; Secure')), 'prefixed names are deleted with Secure (browsers ignore them otherwise)');
  });
});

describe('reading and stripping', () => {
  test('every variant is read under its base name, duplicates kept in order, junk dropped', () => {
    const r = readGatewayCookies({ headers: { cookie: 'a=1; __Host-latchkey_at=v1.A; latchkey_at=v1.B; __Secure-latchkey_rt=v1.C; latchkey_at=bad value; latchkey_login_abcdefgh=v1.D; other=x' } });
    assert.deepEqual(r.values.get('latchkey_at'), ['v1.A', 'v1.B']);
    assert.deepEqual(r.values.get('latchkey_rt'), ['v1.C']);
    assert.deepEqual(r.values.get('latchkey_login_abcdefgh'), ['v1.D']);
    assert.equal(r.rejected, 1);
  });
  test('a flood of one name is capped', () => {
    const r = readGatewayCookies({ headers: { cookie: Array.from({ length: 30 }, () => 'latchkey_rt=v1.x').join('; ') } });
    assert.equal(r.values.get('latchkey_rt')?.length, 8);
  });
  test('the upstream gets every cookie but the gateway\'s', () => {
    assert.equal(withoutGatewayCookies('a=1; __Host-latchkey_at=x; latchkey_rt=y; __Secure-latchkey_login_abcdefgh=z; latchkey_login=q; b=2'), 'a=1; b=2');
    assert.equal(withoutGatewayCookies('latchkey_at=x'), undefined);
  });
});

describe('privateCacheControl', () => {
  test('an answer that carries session cookies is private', async () => {
    const { privateCacheControl } = await import('../../../src/gateway/proxy.js');
    assert.equal(privateCacheControl(undefined), 'private');
    assert.equal(privateCacheControl('public, max-age=60, s-maxage=600'), 'private, max-age=60');
    assert.equal(privateCacheControl('no-store'), 'no-store');
    assert.equal(privateCacheControl('private, max-age=5'), 'private, max-age=5');
  });
});
