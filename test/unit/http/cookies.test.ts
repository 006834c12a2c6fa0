import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { tabUrlMatcher, describeEndpoint } from '../../../src/methods/cdp.js';
import {
  applySetCookies,
  checkCookie,
  domainMatches,
  isExpiredSetCookie,
  MAX_COOKIE_BYTES,
  MAX_SET_COOKIE_HEADERS,
  parseCookieHeader,
  parseSetCookie,
  serializeCookieHeader,
  toSecretCookies,
} from '../../../src/http/cookies.js';
import { Secret } from '../../../src/core/secret.js';

const NOW = Date.parse('2026-05-13T12:00:00Z');
const URL_APP = new URL('https://app.hubspot.com/renew');

describe('parseSetCookie (RFC 6265 §5.2)', () => {
  test('name=value and attributes', () => {
    const r = parseSetCookie('csrf.app=abc123; Path=/; Domain=.hubspot.com; Secure; HttpOnly; SameSite=Lax; Max-Age=3600');
    assert.ok(r.ok);
    assert.deepEqual(r.cookie, { name: 'csrf.app', value: 'abc123', path: '/', domain: 'hubspot.com', secure: true, httpOnly: true, sameSite: 'Lax', maxAge: 3600 });
  });

  test('the value ends at the first ";" (the rest are attributes, unknown ones ignored)', () => {
    const r = parseSetCookie('a=b;c=d; Path=/x');
    assert.ok(r.ok);
    assert.equal(r.cookie.value, 'b');
    assert.equal(r.cookie.path, '/x');
  });

  test('"=" inside the value is kept; whitespace is trimmed; an empty value is allowed', () => {
    const a = parseSetCookie('  tok = a=b==  ; Path=/');
    assert.ok(a.ok);
    assert.deepEqual([a.cookie.name, a.cookie.value], ['tok', 'a=b==']);
    const e = parseSetCookie('gone=; Max-Age=0');
    assert.ok(e.ok);
    assert.equal(e.cookie.value, '');
    assert.equal(isExpiredSetCookie(e.cookie, NOW), true);
  });

  test('Expires in the past deletes; Max-Age wins over Expires', () => {
    const past = parseSetCookie('a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT');
    assert.ok(past.ok && isExpiredSetCookie(past.cookie, NOW));
    const both = parseSetCookie('a=1; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60');
    assert.ok(both.ok && !isExpiredSetCookie(both.cookie, NOW));
    const bad = parseSetCookie('a=1; Max-Age=soon');
    assert.ok(bad.ok && bad.cookie.maxAge === undefined);
  });

  test('hostile input is rejected by reason, and the value is never part of the result', () => {
    const cases: Array<[string, string]> = [
      ['novalue', 'invalid_name'],
      ['=value', 'invalid_name'],
      ['bad name=v', 'invalid_name'],
      ['na;me=v', 'invalid_name'],
      ['a=line1\r\nSet-Cookie: b=2', 'invalid_value'],
      ['a=x\ny', 'invalid_value'],
      ['a=nul\0byte', 'invalid_value'],
      ['a=del\x7f', 'invalid_value'],
      ['a=ünïcode', 'invalid_value'],
      [`a=${'x'.repeat(MAX_COOKIE_BYTES)}`, 'too_large'],
      [`a=${'x'.repeat(1_000_000)}`, 'too_large'],
    ];
    for (const [header, reason] of cases) {
      const r = parseSetCookie(header);
      assert.equal(r.ok, false, JSON.stringify(header.slice(0, 40)));
      assert.equal(!r.ok && r.reason, reason, JSON.stringify(header.slice(0, 40)));
      assert.ok(!JSON.stringify(r).includes('line1') && !JSON.stringify(r).includes('xxxx'));
    }
  });
});

describe('Cookie header', () => {
  test('parse: pairs, "Cookie:" prefix tolerated, bad pairs skipped by name', () => {
    const { cookies, rejected } = parseCookieHeader('Cookie: a=1; b = two ;junk; c=x\ty; =v;d=ok');
    assert.deepEqual([...cookies], [
      ['a', '1'],
      ['b', 'two'],
      ['d', 'ok'],
    ]);
    assert.deepEqual(
      rejected.map((r) => r.reason),
      ['invalid_name', 'invalid_value', 'invalid_name'],
    );
    assert.equal(rejected[1]!.name, 'c');
  });

  test('serialize: "a=1; b=2", unsafe pairs skipped', () => {
    const header = serializeCookieHeader([
      ['a', new Secret('1')],
      ['b', new Secret('x;y')],
      ['c', new Secret('2')],
      ['bad name', new Secret('3')],
    ]);
    assert.equal(header, 'a=1; c=2');
  });

  test('checkCookie', () => {
    assert.equal(checkCookie('hubspotapi-csrf', 'AbC-_.~+/='), undefined);
    assert.equal(checkCookie('a', 'with space, comma "quotes"'), undefined, 'browsers accept these, so do we');
    assert.equal(checkCookie('a', 'semi;colon'), 'invalid_value');
  });
});

describe('applySetCookies', () => {
  const jar = toSecretCookies([
    ['session', 's1'],
    ['csrf.app', 'old'],
  ]);

  test('updates, deletes, ignores unlisted and foreign-domain cookies', () => {
    const r = applySetCookies(
      jar,
      ['csrf.app=new; Path=/', 'session=; Max-Age=0', 'tracker=1', 'csrf.app2=x; Domain=evil.example', 'csrf.app=other; Domain=example.org'],
      URL_APP,
      { wanted: new Set(['session', 'csrf.app', 'csrf.app2']), now: NOW },
    );
    assert.deepEqual(r.changed, ['csrf.app']);
    assert.deepEqual(r.removed, ['session']);
    assert.deepEqual(
      r.rejected.map((x) => [x.name, x.reason]),
      [
        ['tracker', 'not_wanted'],
        ['csrf.app2', 'domain_mismatch'],
        ['csrf.app', 'domain_mismatch'],
      ],
    );
    assert.equal(r.jar.get('csrf.app')?.reveal(), 'new');
    assert.equal(r.jar.has('session'), false);
    assert.equal(jar.get('csrf.app')?.reveal(), 'old', 'the input jar is not modified');
  });

  test('a parent-domain cookie is accepted; an unchanged value is not a change', () => {
    const r = applySetCookies(jar, ['csrf.app=old', 'x=1; Domain=.hubspot.com'], URL_APP, { now: NOW });
    assert.deepEqual(r.changed, ['x']);
  });

  test('too many Set-Cookie headers: the extra ones are ignored, counted once', () => {
    const many = Array.from({ length: MAX_SET_COOKIE_HEADERS + 20 }, (_, i) => `c${i}=v`);
    const r = applySetCookies(new Map(), many, URL_APP, { now: NOW });
    assert.equal(r.changed.length, MAX_SET_COOKIE_HEADERS);
    assert.equal(r.rejected.filter((x) => x.reason === 'too_many').length, 1);
  });

  test('domainMatches (RFC 6265 §5.1.3)', () => {
    assert.equal(domainMatches('app.hubspot.com', 'hubspot.com'), true);
    assert.equal(domainMatches('app.hubspot.com', 'app.hubspot.com'), true);
    assert.equal(domainMatches('hubspot.com', 'app.hubspot.com'), false);
    assert.equal(domainMatches('evilhubspot.com', 'hubspot.com'), false);
    assert.equal(domainMatches('127.0.0.1', '0.0.1'), false, 'no suffix match on IP addresses');
    assert.equal(domainMatches('127.0.0.1', '127.0.0.1'), true);
  });
});

describe('CDP helpers', () => {
  test('tab URL patterns: * wildcards, everything else literal, anchored', () => {
    const m = tabUrlMatcher('https://app.hubspot.com/*');
    assert.equal(m('https://app.hubspot.com/contacts/123'), true);
    assert.equal(m('https://app.hubspot.com/'), true);
    assert.equal(m('https://app.hubspot.com.evil.example/'), false);
    assert.equal(m('http://app.hubspot.com/x'), false);
    assert.equal(m('https://appxhubspot.com/x'), false, '"." is literal');
    const q = tabUrlMatcher('http://127.0.0.1:8080/app?tab=(1)*');
    assert.equal(q('http://127.0.0.1:8080/app?tab=(1)&x=2'), true);
  });

  test('describeEndpoint names only the origin (a ws path is a capability)', () => {
    assert.equal(describeEndpoint('ws://127.0.0.1:9222/devtools/browser/6f1c-secret'), 'ws://127.0.0.1:9222');
    assert.equal(describeEndpoint('http://127.0.0.1:9222'), 'http://127.0.0.1:9222');
    assert.equal(describeEndpoint('not a url'), '(invalid endpoint URL)');
  });
});
