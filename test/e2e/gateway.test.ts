/**
 * The session gateway end to end against the real oidc-provider IdP and a real upstream: sign-in
 * (code + PKCE S256 + state + nonce, ID token checked against the JWKS), the proxied request with
 * identity headers and without the gateway's cookies, /auth/me, forward-auth, logout.
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
let gw: RunningGateway;
const logs: string[] = [];

before(async () => {
  idp = await startIdp({ accessTokenTtl: 60, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  gw = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, log: (level, event, fields) => logs.push(JSON.stringify({ level, event, ...fields })) });
});
after(async () => {
  await gw.close();
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

async function get(path: string, jar: Jar, headers: Record<string, string> = {}): Promise<Response> {
  const res = await fetch(`${gw.url}${path}`, { redirect: 'manual', headers: { cookie: jar.header(), ...headers }, signal: AbortSignal.timeout(10_000) });
  jar.store(res);
  return res;
}

test('sign-in: PKCE S256, state, nonce; the callback sets sealed access and refresh cookies and returns to next', async () => {
  const { jar, location, authorizationUrl } = await signIn(gw.url, { next: '/app/page?x=1' });
  const p = authorizationUrl.searchParams;
  assert.equal(p.get('code_challenge_method'), 'S256');
  assert.match(p.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.ok((p.get('nonce') ?? '').length >= 32);
  assert.match(p.get('state') ?? '', /^[A-Za-z0-9_-]{8}\.[A-Za-z0-9_-]{32}$/);
  assert.equal(p.get('redirect_uri'), `${gw.url}/auth/callback`);
  assert.equal(p.get('scope'), 'openid email profile offline_access');
  assert.equal(location, '/app/page?x=1');
  assert.ok(jar.cookies.has('latchkey_at'));
  assert.ok(jar.cookies.has('latchkey_rt'));
  // Sealed: no token, no readable session id in the cookie.
  for (const v of jar.cookies.values()) assert.match(v, /^v1\.[A-Za-z0-9_-]+$/);
  const setAt = jar.seen.find((l) => l.startsWith('latchkey_at='));
  assert.match(setAt ?? '', /; Path=\/; Max-Age=\d+; HttpOnly; SameSite=Lax$/);
});

test('a signed-in request reaches the upstream with identity headers, without the gateway cookies or forged identity headers', async () => {
  const { jar } = await signIn(gw.url, { login: 'bob' });
  upstream.seen.length = 0;
  const res = await get('/api/data?q=1', jar, { 'x-forwarded-user': 'mallory', 'x-auth-request-email': 'mallory@evil.test', cookie: `${jar.header()}; app=keep` });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { url: string; headers: Record<string, string> };
  assert.equal(body.url, '/api/data?q=1');
  assert.equal(body.headers['x-forwarded-user'], 'bob');
  assert.equal(body.headers['x-auth-request-user'], 'bob');
  assert.equal(body.headers['x-forwarded-email'], 'bob@example.test');
  assert.equal(body.headers['x-auth-request-email'], 'bob@example.test');
  assert.equal(body.headers.cookie, 'app=keep');
});

test('no session: an API call gets 401 session_expired with a login URL, a page load a 302 to the login', async () => {
  const jar = new Jar();
  const api = await get('/api/x', jar, { accept: 'application/json' });
  assert.equal(api.status, 401);
  assert.deepEqual(await api.json(), { error: 'session_expired', loginUrl: '/auth/login?next=%2Fapi%2Fx' });
  const page = await get('/page', jar, { accept: 'text/html,application/xhtml+xml' });
  assert.equal(page.status, 302);
  assert.equal(page.headers.get('location'), '/auth/login?next=%2Fpage');
});

test('/auth/me tells who and until when, and never sets a cookie', async () => {
  const { jar } = await signIn(gw.url, { login: 'carol' });
  const res = await get('/auth/me', jar);
  assert.equal(res.status, 200);
  assert.equal(res.headers.getSetCookie().length, 0);
  const me = (await res.json()) as { user: { sub: string; email: string }; session: { expiresAt: string } };
  assert.equal(me.user.sub, 'carol');
  assert.equal(me.user.email, 'carol@example.test');
  assert.ok(Date.parse(me.session.expiresAt) > Date.now());
});

test('/auth/check answers forward-auth: 200 with identity headers, 401 without a session', async () => {
  const { jar } = await signIn(gw.url, { login: 'dave' });
  const ok = await get('/auth/check', jar);
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('x-forwarded-user'), 'dave');
  assert.equal(ok.headers.get('x-auth-request-email'), 'dave@example.test');
  const no = await get('/auth/check', new Jar(), { 'x-original-uri': '/dash' });
  assert.equal(no.status, 401);
  assert.deepEqual(await no.json(), { error: 'session_expired', loginUrl: '/auth/login?next=%2Fdash' });
});

test('logout: CSRF header required; revokes the refresh token, deletes every cookie variant, names the end-session URL', async () => {
  const { jar } = await signIn(gw.url, { login: 'erin' });
  const refused = await fetch(`${gw.url}/auth/logout`, { method: 'POST', headers: { cookie: jar.header() } });
  assert.equal(refused.status, 403);
  const crossSite = await fetch(`${gw.url}/auth/logout`, { method: 'POST', headers: { cookie: jar.header(), 'x-latchkey-csrf': '1', origin: 'https://evil.test' } });
  assert.equal(crossSite.status, 403);
  assert.equal((await get('/auth/me', jar)).status, 200);
  const before = idp.stats.revocationEndpointRevokedGrants;
  const res = await fetch(`${gw.url}/auth/logout`, { method: 'POST', headers: { cookie: jar.header(), 'x-latchkey-csrf': '1', origin: gw.url } });
  assert.equal(res.status, 200);
  const body = (await res.json()) as { loggedOut: boolean; endSessionUrl?: string };
  assert.equal(body.loggedOut, true);
  const end = new URL(body.endSessionUrl ?? '');
  assert.equal(end.origin, idp.issuer);
  assert.ok((end.searchParams.get('id_token_hint') ?? '').split('.').length === 3);
  assert.equal(idp.stats.revocationEndpointRevokedGrants, before + 1);
  const deletions = res.headers.getSetCookie();
  for (const name of ['__Host-latchkey_at', '__Secure-latchkey_at', 'latchkey_at', '__Host-latchkey_rt', '__Secure-latchkey_rt', 'latchkey_rt']) {
    assert.ok(deletions.some((d) => d.startsWith(`${name}=;`) && d.includes('Max-Age=0')), `deletes ${name}`);
  }
  // The copied cookies of the ended session no longer work.
  assert.equal((await get('/auth/me', jar)).status, 401);
  jar.store(res);
  assert.equal(jar.cookies.size, 0);
});

test('the log never holds a token, a cookie value or a session id', () => {
  const text = logs.join('\n');
  assert.doesNotMatch(text, /v1\.[A-Za-z0-9_-]{20,}/);
  assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}/);
});
