/**
 * Transparent refresh at the gateway against the real IdP, time moved by the injected clock:
 * an IdP failure is a 503 with Retry-After and the cookies kept; only a refused refresh token
 * (invalid_grant, confirmed once) ends the session and clears its cookies, and a request that was
 * already behind (its cookies of an older generation) never clears anything; /auth/me never
 * refreshes; minting a ws-ticket refreshes and hands out the rotated cookies.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Secret } from '../../src/core/secret.js';
import { sealKeyFromSecret } from '../../src/gateway/seal.js';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { FileStore } from '../../src/store/file-store.js';
import { closedPort } from '../helpers/closed-port.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { Jar, signIn, startUpstream, type Upstream } from '../helpers/gateway.js';
import { holdLock } from '../store/hold-lock.js';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let gw: RunningGateway;
let offset = 0;
const clock = { now: () => Date.now() + offset };

before(async () => {
  idp = await startIdp({
    accessTokenTtl: 60,
    redirectUris: ['http://127.0.0.1/auth/callback'],
    // A client the IdP gives no refresh token: access-token-only sessions.
    extraClients: [{ client_id: 'no-refresh', application_type: 'native', grant_types: ['authorization_code'], response_types: ['code'], redirect_uris: ['http://127.0.0.1/auth/callback'], token_endpoint_auth_method: 'none' }],
  });
  upstream = await startUpstream();
  home = await makeHome();
  gw = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, clock, confirmRefusalDelayMs: 10, sessionCacheMs: 0, log: () => undefined });
});
after(async () => {
  await gw.close();
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

async function call(path: string, jar: Jar, headers: Record<string, string> = {}, init: RequestInit = {}): Promise<Response> {
  return fetch(`${gw.url}${path}`, { redirect: 'manual', ...init, headers: { cookie: jar.header(), accept: 'application/json', ...headers }, signal: AbortSignal.timeout(20_000) });
}

const deletes = (res: Response): boolean => res.headers.getSetCookie().some((l) => /latchkey_(at|rt)=;/.test(l));

test('IdP down during a refresh: 503 with Retry-After, cookies kept; once it is back, the refresh goes through', async () => {
  offset = 0;
  const { jar } = await signIn(gw.url, { login: 'flaky' });
  // Due but still valid: a failing IdP does not stop the request (fail open while valid).
  offset += 45_000;
  idp.setFault({ kind: 'status', status: 503, times: 1 });
  assert.equal((await call('/api', jar)).status, 200);
  // Expired: now the same failure is a 503.
  offset += 45_000;
  idp.setFault({ kind: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' });
  try {
    const res = await call('/api', jar);
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal(deletes(res), false, 'cookies kept');
    assert.equal(((await res.json()) as { error: string }).error, 'temporarily_unavailable');
  } finally {
    idp.setFault(null);
  }
  offset += 31_000; // past the cool-down
  const ok = await call('/api', jar);
  assert.equal(ok.status, 200);
  assert.ok(ok.headers.getSetCookie().some((l) => l.startsWith('latchkey_at=v1.')));
  assert.equal(ok.headers.get('cache-control'), 'private', 'an answer carrying session cookies is never kept by a shared cache');
  assert.equal(idp.stats.revokedGrants, 0);
});

test('/auth/me never refreshes or sets a cookie, even when the access token is due', async () => {
  offset = 0;
  const { jar } = await signIn(gw.url, { login: 'reader' });
  offset += 45_000;
  const before = idp.stats.refreshRequests;
  const res = await call('/auth/me', jar);
  assert.equal(res.status, 200);
  assert.equal(((await res.json()) as { session: { refreshDue: boolean } }).session.refreshDue, true);
  assert.equal(res.headers.getSetCookie().length, 0);
  assert.equal(idp.stats.refreshRequests, before);
});

test('ws-ticket refreshes a due session and answers with the rotated cookies', async () => {
  offset = 0;
  const { jar } = await signIn(gw.url, { login: 'desk' });
  offset += 45_000;
  const before = idp.stats.refreshSuccesses;
  const res = await call('/auth/ws-ticket', new Jar(), { cookie: `latchkey_rt=${jar.cookies.get('latchkey_rt')}`, 'x-latchkey-csrf': '1' }, { method: 'POST' });
  assert.equal(res.status, 200);
  assert.equal(idp.stats.refreshSuccesses, before + 1);
  const names = res.headers.getSetCookie().map((l) => l.split('=')[0]);
  assert.ok(names.includes('latchkey_at') && names.includes('latchkey_rt'));
});

test('invalid_grant for the current generation ends the session: API 401 session_expired, page 302, cookies cleared', async () => {
  offset = 0;
  const { jar } = await signIn(gw.url, { login: 'revoked' });
  offset += 45_000;
  idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_grant', error_description: 'grant revoked' }, times: 2 });
  const res = await call('/api/thing', jar);
  idp.setFault(null);
  assert.equal(res.status, 401);
  assert.deepEqual(await res.json(), { error: 'session_expired', loginUrl: '/auth/login?next=%2Fapi%2Fthing' });
  assert.ok(deletes(res), 'the cookies of the ended session are cleared');
  const page = await call('/page', jar, { accept: 'text/html' });
  assert.equal(page.status, 302);
  assert.equal(page.headers.get('location'), '/auth/login?next=%2Fpage');
  assert.equal((await call('/auth/me', jar)).status, 401);
});

test('a request already behind (older generation) never clears the cookies when the session then ends', async () => {
  offset = 0;
  const { jar } = await signIn(gw.url, { login: 'racer' });
  const old = jar.clone();
  offset += 45_000;
  const first = await call('/api', jar);
  assert.equal(first.status, 200);
  jar.store(first); // the winner's browser now holds generation 2
  offset += 45_000; // generation 2 is due in turn, and the IdP refuses it
  idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_grant' }, times: 2 });
  const late = await call('/api', old);
  idp.setFault(null);
  assert.equal(late.status, 401);
  assert.equal(deletes(late), false, 'a request behind clears nothing');
});

test('an IdP that cannot be reached: /auth/login and /readyz answer 503 with Retry-After, /livez 200', async () => {
  const port = await closedPort();
  const h = await makeHome();
  const down = await startGateway({ issuer: `http://127.0.0.1:${port}`, clientId: 'x', upstream: upstream.url, home: h.home, log: () => undefined });
  try {
    const login = await fetch(`${down.url}/auth/login`, { redirect: 'manual' });
    assert.equal(login.status, 503);
    assert.equal(login.headers.get('retry-after'), '5');
    assert.equal((await fetch(`${down.url}/readyz`)).status, 503);
    assert.equal((await fetch(`${down.url}/livez`)).status, 200);
    assert.equal((await fetch(`${down.url}/api`, { headers: { accept: 'application/json' } })).status, 401);
  } finally {
    await down.close();
    await h.cleanup();
  }
});

test('an access token revoked at the IdP is noticed before it expires (introspection), and the revoked grant ends the session', async () => {
  const h = await makeHome();
  const confidential = await startGateway({ issuer: idp.issuer, clientId: 'basic-client', clientSecret: new Secret('basic-secret'), upstream: upstream.url, home: h.home, confirmRefusalDelayMs: 10, sessionCacheMs: 0, log: () => undefined });
  try {
    const { jar } = await signIn(confidential.url, { login: 'admin-revoked' });
    const ok = await fetch(`${confidential.url}/api`, { headers: { cookie: jar.header() } });
    assert.equal(ok.status, 200);
    // Find the session's refresh token the way an admin console would find the grant: here, from the sealed store entry.
    const key = sealKeyFromSecret(new Secret(await readFile(join(h.home, 'gateway.key'), 'utf8')));
    const sid = String(key.openJson(jar.cookies.get('latchkey_rt') as string, 'rt')?.s);
    const store = new FileStore({ path: join(h.home, 'store.json') });
    const entry = await store.get('sessions', sid);
    const rt = String(key.openJson(entry?.reveal() ?? '', `session:${sid}`)?.refreshToken);
    assert.equal(await idp.revokeGrantOf(rt), true);
    // The same access cookie, still far from expiry: the gateway asks the IdP once for this generation.
    // Cached "active" verdict for this process: a fresh gateway on the same home asks anew.
    const fresh = await startGateway({ issuer: idp.issuer, clientId: 'basic-client', clientSecret: new Secret('basic-secret'), upstream: upstream.url, home: h.home, confirmRefusalDelayMs: 10, sessionCacheMs: 0, log: () => undefined });
    try {
      const res = await fetch(`${fresh.url}/api`, { headers: { cookie: jar.header(), accept: 'application/json' } });
      assert.equal(res.status, 401);
      assert.equal(((await res.json()) as { error: string }).error, 'session_expired');
      assert.ok(deletes(res));
    } finally {
      await fresh.close();
    }
  } finally {
    await confidential.close();
    await h.cleanup();
  }
});

test('a sibling holding the session\'s lock past the bound: 503 with Retry-After and the cookies kept; once released, the refresh goes through', async () => {
  const quick = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, clock, lockTimeoutMs: 300, sessionCacheMs: 0, log: () => undefined });
  try {
    offset = 0;
    const { jar } = await signIn(quick.url, { login: 'locked' });
    offset += 61_000; // expired, not only due
    const key = sealKeyFromSecret(new Secret(await readFile(join(home.home, 'gateway.key'), 'utf8')));
    const sid = String(key.openJson(jar.cookies.get('latchkey_rt') as string, 'rt')?.s);
    const store = new FileStore({ path: join(home.home, 'store.json') });
    const lock = await holdLock(store, `session:${sid}`);
    const before = idp.stats.refreshRequests;
    const res = await fetch(`${quick.url}/api`, { headers: { cookie: jar.header(), accept: 'application/json' } });
    assert.equal(res.status, 503);
    assert.ok(Number(res.headers.get('retry-after')) >= 1);
    assert.equal(deletes(res), false);
    assert.equal(idp.stats.refreshRequests, before, 'nothing was sent while another held the lock');
    lock.release();
    await lock.done;
    offset += 31_000; // past the cool-down the timeout recorded
    const ok = await fetch(`${quick.url}/api`, { headers: { cookie: jar.header() } });
    assert.equal(ok.status, 200);
    assert.equal(idp.stats.revokedGrants, 0);
  } finally {
    await quick.close();
  }
});

test('invalid_client at refresh ends the session too (the only other refusal that does)', async () => {
  offset = 0;
  const { jar } = await signIn(gw.url, { login: 'client-refused' });
  offset += 61_000;
  idp.setFault({ kind: 'json', status: 401, body: { error: 'invalid_client' }, times: 1 });
  const res = await call('/api', jar);
  idp.setFault(null);
  assert.equal(res.status, 401);
  assert.equal(((await res.json()) as { error: string }).error, 'session_expired');
  assert.ok(deletes(res));
});

test('an IdP that issues no refresh token: only the access cookie is written, and the session ends with the access token', async () => {
  const h = await makeHome();
  const noRefresh = await startGateway({ issuer: idp.issuer, clientId: 'no-refresh', upstream: upstream.url, home: h.home, clock, sessionCacheMs: 0, log: () => undefined });
  try {
    offset = 0;
    const { jar } = await signIn(noRefresh.url, { login: 'short' });
    assert.ok(jar.cookies.has('latchkey_at'));
    assert.equal(jar.cookies.has('latchkey_rt'), false, 'no refresh cookie without a refresh token');
    assert.equal((await fetch(`${noRefresh.url}/api`, { headers: { cookie: jar.header() } })).status, 200);
    offset += 120_000;
    const res = await fetch(`${noRefresh.url}/api`, { headers: { cookie: jar.header(), accept: 'application/json' } });
    assert.equal(res.status, 401);
  } finally {
    await noRefresh.close();
    await h.cleanup();
  }
});
