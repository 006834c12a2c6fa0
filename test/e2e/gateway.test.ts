/**
 * The session gateway end to end against the real oidc-provider IdP and a real upstream: sign-in
 * (code + PKCE S256 + state + nonce, ID token checked against the JWKS), the proxied request with
 * identity headers and without the gateway's cookies, /auth/me, forward-auth, logout.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { authorizeAtIdp, Jar, signIn, startUpstream, type Upstream } from '../helpers/gateway.js';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let gw: RunningGateway;
const logs: string[] = [];

before(async () => {
  idp = await startIdp({ accessTokenTtl: 60, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  gw = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, upstreamCsrf: true,
    // This suite signs in many times from 127.0.0.1 (the limit itself: gateway-login-limit.test.ts).
    loginRateLimit: { perClientBurst: 100 },
    log: (level, event, fields) => logs.push(JSON.stringify({ level, event, ...fields })) });
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

test('two tabs sign in at once: each attempt has its own transaction cookie, both callbacks succeed; a fourth attempt retires the oldest', async () => {
  const jar = new Jar();
  const start = async (): Promise<URL> => {
    const res = await get('/auth/login?next=%2Ftab', jar);
    assert.equal(res.status, 302);
    return new URL(res.headers.get('location') ?? '');
  };
  const first = await start();
  const second = await start();
  assert.equal([...jar.cookies.keys()].filter((k) => k.startsWith('latchkey_login_')).length, 2);
  // The second tab finishes first, then the first one: neither overwrote the other.
  for (const url of [second, first]) {
    const cb = await authorizeAtIdp(url, 'tabs');
    const res = await get(`/auth/callback${cb.search}`, jar);
    assert.equal(res.status, 302, await res.text());
    assert.equal(res.headers.get('location'), '/tab');
  }
  assert.equal([...jar.cookies.keys()].filter((k) => k.startsWith('latchkey_login_')).length, 0, 'each callback deleted its own transaction cookie');
  const many = new Jar();
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${gw.url}/auth/login`, { redirect: 'manual', headers: { cookie: many.header() } });
    many.store(res);
  }
  assert.equal([...many.cookies.keys()].filter((k) => k.startsWith('latchkey_login_')).length, 3);
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

test('proxying: hop-by-hop headers (and those Connection names) dropped, keep-alive to the upstream, CSRF on state-changing requests when configured', async () => {
  const { jar } = await signIn(gw.url, { login: 'hops' });
  upstream.seen.length = 0;
  const u = new URL(gw.url);
  const status = await new Promise<number>((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path: '/hop', headers: { cookie: jar.header(), connection: 'keep-alive, x-private-hop', 'x-private-hop': 'secret', 'keep-alive': 'timeout=5', te: 'trailers', 'proxy-authorization': 'Basic eA==' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on('error', reject);
    r.end();
  });
  assert.equal(status, 200);
  const h = upstream.seen[0]?.headers ?? {};
  for (const name of ['x-private-hop', 'te', 'proxy-authorization', 'keep-alive']) assert.equal(h[name], undefined, name);
  for (let i = 0; i < 10; i++) assert.equal((await get(`/seq/${i}`, jar)).status, 200);
  const ports = new Set(upstream.seen.slice(1).map((s) => s.remotePort));
  assert.ok(ports.size <= 2, `10 sequential requests used ${ports.size} upstream connections`);

  const post = (headers: Record<string, string>): Promise<Response> => fetch(`${gw.url}/api/save`, { method: 'POST', headers: { cookie: jar.header(), 'content-type': 'application/json', ...headers }, body: '{"a":1}' });
  assert.equal((await post({})).status, 403);
  assert.equal((await post({ 'x-latchkey-csrf': '1', origin: 'https://evil.test' })).status, 403);
  const ok = await post({ 'x-latchkey-csrf': '1', origin: gw.url });
  assert.equal(ok.status, 200);
  assert.equal(((await ok.json()) as { body: string }).body, '{"a":1}');
});

test('/metrics, /livez and /readyz', async () => {
  const metrics = await (await fetch(`${gw.url}/metrics`)).text();
  assert.match(metrics, /latchkey_gateway_logins_total\{outcome="ok"\} \d+/);
  assert.match(metrics, /latchkey_gateway_requests_total/);
  assert.equal((await fetch(`${gw.url}/livez`)).status, 200);
  assert.equal((await fetch(`${gw.url}/readyz`)).status, 200);
  assert.equal((await fetch(`${gw.url}/auth/nothing`)).status, 404);
  assert.equal((await fetch(`${gw.url}/auth/logout`)).status, 405);
});

test('the log never holds a token, a cookie value or a session id', () => {
  const text = logs.join('\n');
  assert.doesNotMatch(text, /v1\.[A-Za-z0-9_-]{20,}/);
  assert.doesNotMatch(text, /eyJ[A-Za-z0-9_-]{10,}/);
});
