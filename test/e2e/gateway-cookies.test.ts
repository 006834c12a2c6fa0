/**
 * The cookie matrix, end to end through sign-in against the real IdP: loopback HTTP (bare names),
 * HTTPS direct behind a trusted proxy (`__Host-`, Path=/), HTTPS behind a prefix (`__Secure-`,
 * Path=<prefix>), forwarded headers from an untrusted peer ignored; every variant is read, and
 * logout deletes every variant with matching attributes.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { Jar, signIn, startUpstream, type Upstream } from '../helpers/gateway.js';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let trusted: RunningGateway;
let untrusted: RunningGateway;

const HTTPS = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.test' };
const PREFIXED = { ...HTTPS, 'x-forwarded-prefix': '/dash' };

before(async () => {
  idp = await startIdp({
    accessTokenTtl: 600,
    redirectUris: ['http://127.0.0.1/auth/callback', 'https://app.example.test/auth/callback', 'https://app.example.test/dash/auth/callback'],
  });
  upstream = await startUpstream();
  home = await makeHome();
  const common = { issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, log: () => undefined };
  trusted = await startGateway({ ...common, trustedProxies: ['127.0.0.1/32', '::1/128'] });
  untrusted = await startGateway(common);
});
after(async () => {
  await Promise.all([trusted.close(), untrusted.close()]);
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

function setCookieLines(jar: Jar, name: string): string[] {
  return jar.seen.filter((l) => l.startsWith(`${name}=`) && !l.includes('Max-Age=0'));
}

async function call(gw: RunningGateway, path: string, cookie: string, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<Response> {
  return fetch(`${gw.url}${path}`, { redirect: 'manual', ...init, headers: { cookie, accept: 'application/json', ...headers }, signal: AbortSignal.timeout(10_000) });
}

test('loopback HTTP: bare names, Path=/, no Secure, HttpOnly, SameSite=Lax', async () => {
  const { jar } = await signIn(untrusted.url);
  for (const name of ['latchkey_at', 'latchkey_rt']) {
    const [line] = setCookieLines(jar, name);
    assert.match(line ?? '', /; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/, name);
  }
  assert.ok(jar.seen.some((l) => /^latchkey_login_[A-Za-z0-9_-]{8}=v1\./.test(l) && l.includes('Max-Age=600')), 'the login-transaction cookie, one per attempt');
});

test('HTTPS direct (trusted X-Forwarded-Proto/-Host): __Host- names, Path=/, Secure; redirect URI on the public origin', async () => {
  const { jar, authorizationUrl, location } = await signIn(trusted.url, { headers: HTTPS, next: '/home' });
  assert.equal(authorizationUrl.searchParams.get('redirect_uri'), 'https://app.example.test/auth/callback');
  assert.equal(location, '/home');
  for (const name of ['__Host-latchkey_at', '__Host-latchkey_rt']) {
    const [line] = setCookieLines(jar, name);
    assert.match(line ?? '', /; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/, name);
  }
  assert.ok(jar.seen.some((l) => /^__Host-latchkey_login_[A-Za-z0-9_-]{8}=v1\..*; Path=\/; .*Secure$/.test(l)));
  const res = await call(trusted, '/api', jar.header(), HTTPS);
  assert.equal(res.status, 200);
  const seen = (await res.json()) as { headers: Record<string, string> };
  assert.equal(seen.headers['x-forwarded-proto'], 'https');
  assert.equal(seen.headers['x-forwarded-host'], 'app.example.test');
  assert.equal(seen.headers.cookie, undefined, 'no gateway cookie reaches the upstream');
});

test('HTTPS behind a prefix: __Secure- names with Path=/dash; redirects and login URLs carry the prefix', async () => {
  const { jar, authorizationUrl, location } = await signIn(trusted.url, { headers: PREFIXED, next: '/reports' });
  assert.equal(authorizationUrl.searchParams.get('redirect_uri'), 'https://app.example.test/dash/auth/callback');
  assert.equal(location, '/dash/reports');
  for (const name of ['__Secure-latchkey_at', '__Secure-latchkey_rt']) {
    const [line] = setCookieLines(jar, name);
    assert.match(line ?? '', /; Path=\/dash; Max-Age=\d+; HttpOnly; SameSite=Lax; Secure$/, name);
  }
  assert.equal((await call(trusted, '/api', jar.header(), PREFIXED)).status, 200);
  const anon = await call(trusted, '/reports', '', PREFIXED);
  assert.deepEqual(await anon.json(), { error: 'session_expired', loginUrl: '/dash/auth/login?next=%2Freports' });
});

test('forwarded headers from an untrusted peer are ignored: bare names, the real origin, no prefix', async () => {
  const { jar, authorizationUrl, location } = await signIn(untrusted.url, { headers: { ...PREFIXED, 'x-forwarded-for': '203.0.113.9' }, next: '/x' });
  assert.equal(authorizationUrl.searchParams.get('redirect_uri'), `${untrusted.url}/auth/callback`);
  assert.equal(location, '/x');
  assert.ok(setCookieLines(jar, 'latchkey_at')[0]?.includes('; Path=/;'));
  assert.equal(setCookieLines(jar, '__Host-latchkey_at').length + setCookieLines(jar, '__Secure-latchkey_at').length, 0);
  const res = await call(untrusted, '/api', jar.header(), { ...PREFIXED, 'x-forwarded-for': '203.0.113.9' });
  const seen = (await res.json()) as { headers: Record<string, string> };
  assert.equal(seen.headers['x-forwarded-proto'], 'http');
  assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
  assert.equal(seen.headers['x-forwarded-prefix'], undefined);
});

test('a bad X-Forwarded-Prefix or Host from a trusted proxy is a 400, never a 5xx', async () => {
  for (const prefix of ['//evil.test', '/a/../b', '/a b', '/%2e%2e', 'dash', '/a\\b']) {
    const res = await call(trusted, '/api', '', { ...HTTPS, 'x-forwarded-prefix': prefix });
    assert.equal(res.status, 400, prefix);
    assert.match(await res.text(), /X-Forwarded-Prefix/);
  }
  const badHost = await call(trusted, '/api', '', { 'x-forwarded-host': 'evil.test/path' });
  assert.equal(badHost.status, 400);
  const badProto = await call(trusted, '/api', '', { 'x-forwarded-proto': 'gopher' });
  assert.equal(badProto.status, 400);
});

test('every variant is read: a session cookie under any of the three names authenticates', async () => {
  const { jar } = await signIn(untrusted.url);
  const at = jar.cookies.get('latchkey_at') as string;
  const rt = jar.cookies.get('latchkey_rt') as string;
  for (const prefix of ['', '__Host-', '__Secure-']) {
    assert.equal((await call(untrusted, '/api', `${prefix}latchkey_at=${at}`)).status, 200, `${prefix}latchkey_at`);
    const viaRt = await call(untrusted, '/api', `${prefix}latchkey_rt=${rt}`);
    assert.equal(viaRt.status, 200, `${prefix}latchkey_rt`);
    // Only the refresh cookie came: the access cookie is handed out again (same shape as this request).
    assert.ok(viaRt.headers.getSetCookie().some((l) => l.startsWith('latchkey_at=v1.')));
  }
});

test('logout deletes every variant with matching attributes (prefix shape)', async () => {
  const { jar } = await signIn(trusted.url, { headers: PREFIXED });
  const res = await call(trusted, '/auth/logout', jar.header(), { ...PREFIXED, 'x-latchkey-csrf': '1', origin: 'https://app.example.test' }, { method: 'POST' });
  assert.equal(res.status, 200);
  const lines = res.headers.getSetCookie();
  for (const base of ['latchkey_at', 'latchkey_rt']) {
    const expected = [
      `__Host-${base}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure`,
      `__Secure-${base}=; Path=/dash; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure`,
      `__Secure-${base}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure`,
      `${base}=; Path=/dash; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure`,
      `${base}=; Path=/; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax; Secure`,
    ];
    for (const e of expected) assert.ok(lines.includes(e), `missing: ${e}`);
  }
  // A cross-origin logout (the public origin is the forwarded one) is refused.
  const forged = await call(trusted, '/auth/logout', jar.header(), { ...PREFIXED, 'x-latchkey-csrf': '1', origin: trusted.url }, { method: 'POST' });
  assert.equal(forged.status, 403);
});
