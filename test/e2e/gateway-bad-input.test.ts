/**
 * Bad input at the gateway: oversized, duplicated, malformed, tampered cookies; forged and
 * replayed login transactions; a wrong state, a replayed code, an IdP error, a bad ID token;
 * header injection through `next`. Each gets a clear 4xx (never a 5xx), no stack trace and no
 * secret in the body or the log, and the valid session of someone else is never harmed.
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
let tampering: RunningGateway;
const logs: string[] = [];
const bodies: string[] = [];
let victim: Jar;

/** Changes the ID token's signature in token responses (a bad ID token from "the IdP"). */
const tamperingFetch: typeof fetch = async (input, init) => {
  const res = await fetch(input, init);
  const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
  if (!url.endsWith('/token') || res.status !== 200) return res;
  const body = (await res.json()) as Record<string, unknown>;
  if (typeof body.id_token === 'string') {
    const [h, p, sig = ''] = body.id_token.split('.');
    body.id_token = `${h}.${p}.${sig.slice(0, -4)}${sig.slice(-4) === 'AAAA' ? 'BBBB' : 'AAAA'}`;
  }
  return new Response(JSON.stringify(body), { status: 200, headers: res.headers });
};

before(async () => {
  idp = await startIdp({ accessTokenTtl: 600, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  const log = (level: string, event: string, fields?: Record<string, unknown>): void => void logs.push(JSON.stringify({ level, event, ...fields }));
  gw = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, log, publicPaths: ['/public'] });
  tampering = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, log, fetch: tamperingFetch });
  ({ jar: victim } = await signIn(gw.url, { login: 'victim' }));
});
after(async () => {
  await Promise.all([gw.close(), tampering.close()]);
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

async function call(path: string, cookie: string, init: RequestInit & { base?: string } = {}): Promise<Response> {
  const res = await fetch(`${init.base ?? gw.url}${path}`, { redirect: 'manual', ...init, headers: { cookie, accept: 'application/json', ...(init.headers as Record<string, string>) }, signal: AbortSignal.timeout(10_000) });
  const text = await res.clone().text();
  bodies.push(text);
  assert.ok(res.status < 500 || res.status === 503, `${path}: ${res.status} ${text}`);
  return res;
}

async function victimStillSignedIn(): Promise<void> {
  const res = await call('/auth/me', victim.header());
  assert.equal(res.status, 200, 'the valid session was not harmed');
  assert.equal(idp.stats.revokedGrants, 0);
}

/** Starts a login through the gateway: the login cookie jar and the authorization URL. */
async function startLogin(base = gw.url): Promise<{ jar: Jar; authorizationUrl: URL; state: string }> {
  const jar = new Jar();
  const res = await fetch(`${base}/auth/login`, { redirect: 'manual' });
  jar.store(res);
  const authorizationUrl = new URL(res.headers.get('location') ?? '');
  return { jar, authorizationUrl, state: authorizationUrl.searchParams.get('state') ?? '' };
}

test('oversized, duplicated, malformed and tampered cookies: 401 (or 431 for a huge header), the valid session untouched', async () => {
  const at = victim.cookies.get('latchkey_at') as string;
  assert.equal((await call('/api', `latchkey_at=v1.${'A'.repeat(5000)}`)).status, 401);
  const huge = await fetch(`${gw.url}/api`, { headers: { cookie: `x=${'A'.repeat(20_000)}` } });
  assert.equal(huge.status, 431);
  assert.equal((await call('/api', `latchkey_at=garbage; latchkey_at=${at}; latchkey_at=v1.AAAA`)).status, 200, 'a good value among duplicates is found');
  assert.equal((await call('/api', 'latchkey_at=%%%; latchkey_rt="x"; latchkey_at; =v1.x; __Host-latchkey_rt=v1.!!')).status, 401);
  const flipped = `${at.slice(0, 20)}${at[20] === 'A' ? 'B' : 'A'}${at.slice(21)}`;
  assert.equal((await call('/api', `latchkey_at=${flipped}`)).status, 401);
  // A refresh cookie presented as the access cookie does not open (sealed for another purpose).
  assert.equal((await call('/api', `latchkey_at=${victim.cookies.get('latchkey_rt')}`)).status, 401);
  const flood = Array.from({ length: 50 }, () => `latchkey_rt=v1.${'B'.repeat(40)}`).join('; ');
  assert.equal((await call('/api', flood)).status, 401);
  await victimStillSignedIn();
});

test('a forged login-transaction cookie, a wrong state, a missing state: 400', async () => {
  const forged = await call('/auth/callback?code=abc&state=AAAAAAAA.forged', 'latchkey_login_AAAAAAAA=v1.forgedforgedforgedforgedforgedforged');
  assert.equal(forged.status, 400);
  assert.equal(((await forged.json()) as { error: string }).error, 'login_expired');
  const { jar, state } = await startLogin();
  const [attempt] = state.split('.');
  const wrong = await call(`/auth/callback?code=abc&state=${attempt}.${'x'.repeat(32)}`, jar.header());
  assert.equal(wrong.status, 400);
  assert.equal((await call('/auth/callback?code=abc', jar.header())).status, 400);
  assert.equal((await call(`/auth/callback?code=abc&state=${state}&state=${state}`, jar.header())).status, 400);
  assert.equal((await call('/auth/callback?state=%0d%0aSet-Cookie:x', jar.header())).status, 400);
  await victimStillSignedIn();
});

test('a replayed callback (same login cookie, same code) is refused before the code reaches the IdP again', async () => {
  const { jar, authorizationUrl } = await startLogin();
  const callback = await authorizeAtIdp(authorizationUrl, 'replay');
  const first = await call(`/auth/callback${callback.search}`, jar.header());
  assert.equal(first.status, 302);
  const session = new Jar();
  session.store(first);
  const tokenRequests = idp.stats.tokenRequests;
  const again = await call(`/auth/callback${callback.search}`, jar.header());
  assert.equal(again.status, 400);
  assert.equal(((await again.json()) as { error: string }).error, 'login_replayed');
  // A code replayed inside a fresh login transaction of its own: refused too, and never sent.
  const other = await startLogin();
  const params = new URLSearchParams(callback.search);
  params.set('state', other.state);
  const injected = await call(`/auth/callback?${params}`, other.jar.header());
  assert.equal(injected.status, 400);
  assert.equal(((await injected.json()) as { error: string }).error, 'code_replayed');
  assert.equal(idp.stats.tokenRequests, tokenRequests, 'no code was sent to the IdP a second time');
  assert.equal((await call('/auth/me', session.header())).status, 200, 'the session of the first use lives');
  await victimStillSignedIn();
});

test('the IdP answering with an error, and a bad ID token: 400 naming the problem, nothing stored', async () => {
  const { jar, state } = await startLogin();
  const denied = await call(`/auth/callback?error=access_denied&error_description=the%20user%20said%20no&state=${encodeURIComponent(state)}&iss=${encodeURIComponent(idp.issuer)}`, jar.header());
  assert.equal(denied.status, 400);
  const body = (await denied.json()) as { error: string; message: string };
  assert.equal(body.error, 'access_denied');
  assert.match(body.message, /the user said no/);
  assert.equal(denied.headers.getSetCookie().filter((l) => /latchkey_(at|rt)=v1/.test(l)).length, 0);

  const t = await startLogin(tampering.url);
  const cb = await authorizeAtIdp(t.authorizationUrl, 'tampered');
  const bad = await call(`/auth/callback${cb.search}`, t.jar.header(), { base: tampering.url });
  assert.equal(bad.status, 400);
  assert.equal(((await bad.json()) as { error: string }).error, 'invalid_id_token');
  assert.equal(bad.headers.getSetCookie().filter((l) => /latchkey_(at|rt)=v1/.test(l)).length, 0);
  await victimStillSignedIn();
});

test('header injection and open redirects through next: 400; good next values are normalised', async () => {
  for (const next of ['/x\r\nSet-Cookie: a=b', '//evil.test', '/\\evil.test', 'https://evil.test/', '/%2F%2Fevil.test', '/%252F%252Fevil.test', '/auth/logout', '/a/../auth/me', 'javascript:alert(1)', '/%5Cevil.test']) {
    const res = await call(`/auth/login?next=${encodeURIComponent(next)}`, '');
    assert.equal(res.status, 400, next);
    assert.match(((await res.json()) as { message: string }).message, /^next /);
  }
  const ok = await call(`/auth/login?next=${encodeURIComponent('/a/./b/../c?d=1#e')}`, '');
  assert.equal(ok.status, 302);
});

/** A raw request (fetch would resolve dot segments before sending). */
function raw(path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(gw.url);
    const r = request({ host: u.hostname, port: u.port, path, headers: { accept: 'application/json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    r.on('error', reject);
    r.end();
  });
}

test('public paths: dot segments (raw, encoded, with ;params) never make a protected path public; absolute-form targets are refused', async () => {
  assert.equal(await raw('/public/file'), 200);
  for (const p of ['/public/../admin', '/public/%2e%2e/admin', '/public/%2E%2E/admin', '/public/..;/admin', '/public/./../admin', '/public\\..\\admin']) {
    assert.equal(await raw(p), 401, p);
  }
  assert.equal(await raw(`http://127.0.0.1:${new URL(gw.url).port}/public/file`), 400);
});

test('no stack trace, no token, no sealed value in any answer or log line', () => {
  const all = [...bodies, ...logs].join('\n');
  assert.doesNotMatch(all, /\n\s+at\s/);
  assert.doesNotMatch(all, /eyJ[A-Za-z0-9_-]{10,}/);
  assert.doesNotMatch(logs.join('\n'), /v1\.[A-Za-z0-9_-]{20,}/);
  for (const v of victim.cookies.values()) assert.ok(!all.includes(v));
});
