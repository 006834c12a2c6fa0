/**
 * Forward-auth behind real nginx (Debian's nginx-light, `auth_request`): nginx asks the
 * gateway's `/auth/check` before every request to the upstream and passes the identity headers
 * it answers with (`auth_request_set`). The IdP is the real oidc-provider; sign-in goes through
 * nginx to the gateway's own routes, so the cookies are the ones a browser would hold.
 *
 * - signed in: the upstream gets the request with the identity headers, forged ones replaced;
 * - not signed in (no cookie, forged identity headers, a tampered cookie): 401 from nginx, the
 *   upstream never sees the request;
 * - an expired access cookie with a live session still passes: the gateway refreshes in the
 *   subrequest, and since nginx drops that subrequest's Set-Cookie, the browser keeps its old
 *   cookies, which keep working (one refresh at the IdP, not one per request);
 * - logout through nginx ends it.
 *
 * Skips when nginx is missing, unless LATCHKEY_TEST_NGINX=1 (CI), where it fails.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { cookieAccess, type JarCookie } from '../../src/remote/cookie-jar.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { signIn } from '../helpers/browserless-login.js';
import { startUpstream, type Upstream } from '../helpers/gateway.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { nginxSkipReason, startNginx, type Nginx } from '../helpers/nginx.js';

const ACCESS_TTL_S = 4;

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string | undefined>;
}

describe('forward-auth behind real nginx', { skip: nginxSkipReason() }, () => {
  let idp: Idp;
  let upstream: Upstream;
  let home: TempHome;
  let gw: RunningGateway;
  let nginx: Nginx;

  before(async () => {
    idp = await startIdp({ accessTokenTtl: ACCESS_TTL_S, redirectUris: ['http://127.0.0.1/auth/callback'] });
    upstream = await startUpstream();
    home = await makeHome();
    gw = await startGateway({ issuer: idp.issuer, clientId: 'public-client', home: home.home, log: () => undefined });
    nginx = await startNginx({ gateway: gw.url, upstream: upstream.url });
  });

  after(async () => {
    await nginx?.close();
    await gw?.close();
    await upstream?.close();
    await idp?.close();
    await home?.cleanup();
  });

  async function cookieHeader(jar: Map<string, JarCookie>, path: string): Promise<string> {
    return (await cookieAccess(jar).forRequest(new URL(path, nginx.origin), Date.now())).map((c) => `${c.name}=${c.value}`).join('; ');
  }

  async function get(path: string, cookie: string, headers: Record<string, string> = {}): Promise<Response> {
    return fetch(`${nginx.origin}${path}`, { redirect: 'manual', headers: { ...(cookie ? { cookie } : {}), accept: 'application/json', ...headers }, signal: AbortSignal.timeout(15_000) });
  }

  async function signedIn(login: string): Promise<Map<string, JarCookie>> {
    const r = await signIn(`${nginx.origin}/auth/login?next=%2Fapp%2Fhome`, { login });
    assert.equal(r.finalStatus, 200, `sign-in through nginx ended at ${r.finalUrl} (${r.finalStatus}): ${nginx.log()}`);
    const echo = JSON.parse(r.finalBody) as Echo;
    assert.equal(echo.url, '/app/home', 'the sign-in returned to next, through nginx and forward-auth');
    return r.jar;
  }

  test('signed in: the upstream gets the request with the identity headers; forged ones are replaced', async () => {
    const jar = await signedIn('alice');
    upstream.seen.length = 0;
    const res = await get('/api/data?x=1', await cookieHeader(jar, '/api/data'), { 'x-forwarded-user': 'mallory', 'x-auth-request-email': 'mallory@evil.test' });
    assert.equal(res.status, 200, nginx.log());
    const echo = (await res.json()) as Echo;
    assert.equal(echo.url, '/api/data?x=1');
    assert.equal(echo.headers['x-forwarded-user'], 'alice');
    assert.equal(echo.headers['x-forwarded-email'], 'alice@example.test');
    assert.equal(echo.headers['x-auth-request-user'], 'alice');
    assert.equal(echo.headers['x-auth-request-email'], 'alice@example.test');
    assert.equal(upstream.seen.length, 1);
  });

  test('not signed in, forged identity headers, a tampered or foreign cookie: 401 from nginx, the upstream never asked', async () => {
    const jar = await signedIn('bob');
    const good = jar.get('latchkey_rt')?.value ?? '';
    const tampered = `${good.slice(0, -4)}${good.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
    upstream.seen.length = 0;
    const cases: Array<[string, string, Record<string, string>]> = [
      ['no cookie', '', {}],
      ['forged identity headers', '', { 'x-forwarded-user': 'bob', 'x-auth-request-user': 'bob' }],
      ['tampered refresh cookie', `latchkey_rt=${tampered}`, {}],
      ['a cookie from another purpose', `latchkey_rt=${jar.get('latchkey_at')?.value ?? 'x'}`, {}],
      ['garbage', 'latchkey_at=%%%; latchkey_rt=..', {}],
    ];
    for (const [what, cookie, headers] of cases) {
      const res = await get('/api/data', cookie, headers);
      assert.equal(res.status, 401, what);
      await res.body?.cancel();
    }
    assert.equal(upstream.seen.length, 0, 'nothing reached the upstream');
  });

  test('an expired access cookie with a live session still passes; the old cookies keep working (one refresh)', async () => {
    const jar = await signedIn('carol');
    const atExpires = jar.get('latchkey_at')?.expiresAt ?? Date.now();
    await new Promise((r) => setTimeout(r, Math.max(atExpires - Date.now(), ACCESS_TTL_S * 1000) + 300));
    const cookie = await cookieHeader(jar, '/api/data');
    assert.doesNotMatch(cookie, /latchkey_at=/, 'the browser no longer sends the lapsed access cookie');
    assert.match(cookie, /latchkey_rt=/);

    const refreshes = idp.stats.refreshSuccesses;
    const first = await get('/api/data', cookie);
    assert.equal(first.status, 200, nginx.log());
    assert.equal(((await first.json()) as Echo).headers['x-forwarded-user'], 'carol');
    assert.equal(idp.stats.refreshSuccesses, refreshes + 1, 'the subrequest refreshed the session');
    // nginx drops the subrequest's Set-Cookie: the browser still holds the previous generation.
    const second = await get('/api/data', cookie);
    assert.equal(second.status, 200);
    assert.equal(((await second.json()) as Echo).headers['x-forwarded-user'], 'carol');
    assert.equal(idp.stats.refreshSuccesses, refreshes + 1, 'no second refresh for the same session');
    assert.equal(idp.stats.revokedGrants, 0);
  });

  test('logout through nginx ends the session: the next request is 401', async () => {
    const jar = await signedIn('dave');
    const cookie = await cookieHeader(jar, '/auth/logout');
    const out = await fetch(`${nginx.origin}/auth/logout`, { method: 'POST', headers: { cookie, origin: nginx.origin, 'x-latchkey-csrf': '1' }, signal: AbortSignal.timeout(15_000) });
    assert.equal(out.status, 200, await out.clone().text());
    await out.body?.cancel();
    const res = await get('/api/data', cookie);
    assert.equal(res.status, 401);
    await res.body?.cancel();
  });
});
