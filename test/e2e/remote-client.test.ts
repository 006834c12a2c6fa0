/**
 * The remote client (`latchkey/remote`) against the real gateway and the real IdP
 * (oidc-provider with refresh rotation and reuse detection), the seed's case first: the access
 * cookie lapsed and was dropped by the client's cookie store, the refresh cookie is there, and
 * the client must call that "connected", not "signed out".
 *
 * - access expired + refresh present → `connected`, the rotated cookies stored, one refresh at
 *   the IdP;
 * - five probes at once with the same stale cookies (windows waking from sleep) → all connected,
 *   one refresh;
 * - the grant revoked at the IdP (an admin ends the user's access) → `needsLogin`, the cookies
 *   the gateway cleared removed;
 * - the IdP's token endpoint failing (5xx) → `unreachable` (503 from the gateway), cookies kept;
 * - the gateway down → `unreachable`, cookies kept, never `needsLogin`;
 * - the same with Electron's `session.cookies` shape;
 * - signOut: the gateway ends the session (the refresh token revoked at the IdP, the end-session
 *   URL named), no session cookie is left, and a copy of the old cookies is refused;
 * - behind a TLS-terminating proxy under a prefix (`__Secure-` cookies at `Path=/dash`, the public
 *   `https://` origin as `Origin`): the same probe through the proxy.
 *
 * The access token lives 4 s at this IdP (the access cookie about 2 s: it lapses when the token
 * is due for refresh), so "expired" is real: the tests wait for it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { WebSocket } from 'ws';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { loadOrCreateKeyFile } from '../../src/gateway/seal.js';
import { SessionStore } from '../../src/gateway/session-store.js';
import { homePaths } from '../../src/paths.js';
import { checkConnection, hasLiveSession, signOut, type JarCookie } from '../../src/remote/index.js';
import { cookieAccess } from '../../src/remote/cookie-jar.js';
import { FileStore } from '../../src/store/file-store.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { signIn } from '../helpers/browserless-login.js';
import { signIn as signInThroughGateway } from '../helpers/gateway.js';
import { FakeElectronCookies } from '../helpers/electron-cookies.js';
import { startUpstream, type Upstream } from '../helpers/gateway.js';
import { makeHome, type TempHome } from '../helpers/home.js';

const ACCESS_TTL_S = 4;
/** The public origin of the TLS-terminating proxy in the prefix test. */
const PUBLIC_ORIGIN = 'https://app.example.test';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let gw: RunningGateway;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function startOurGateway(port = 0): Promise<RunningGateway> {
  return startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, port, log: () => undefined });
}

before(async () => {
  idp = await startIdp({ accessTokenTtl: ACCESS_TTL_S, redirectUris: ['http://127.0.0.1/auth/callback', `${PUBLIC_ORIGIN}/dash/auth/callback`] });
  upstream = await startUpstream();
  home = await makeHome();
  gw = await startOurGateway();
});

after(async () => {
  await gw.close();
  await upstream.close();
  await idp.close();
  await home.cleanup();
});

/** A signed-in jar for `login`, from the real authorization-code flow through the gateway. */
async function signedInJar(login: string): Promise<Map<string, JarCookie>> {
  const r = await signIn(`${gw.url}/auth/login?next=%2Fwhoami`, { login });
  assert.equal(r.finalStatus, 200, `sign-in ended at ${r.finalUrl}`);
  assert.ok(r.jar.has('latchkey_at') && r.jar.has('latchkey_rt'), `cookies after sign-in: ${[...r.jar.keys()].join(', ')}`);
  return r.jar;
}

/** Waits until the jar's access cookie has lapsed (its Max-Age ends before the token does) and the token itself has. */
async function waitForAccessExpiry(jar: Map<string, JarCookie>): Promise<void> {
  const at = jar.get('latchkey_at')?.expiresAt ?? Date.now();
  await sleep(Math.max(at - Date.now(), ACCESS_TTL_S * 1000) + 300);
}

/** The refresh token behind a session cookie, read from the store the way an operator could. */
async function refreshTokenOf(jar: Map<string, JarCookie>): Promise<string> {
  const key = await loadOrCreateKeyFile(home.home);
  const pointer = key.openJson(jar.get('latchkey_rt')?.value ?? '', 'rt');
  assert.ok(pointer && typeof pointer.s === 'string', 'the refresh cookie opens with the gateway key');
  const store = new FileStore({ path: homePaths(home.home).store });
  try {
    const session = await new SessionStore({ store, key, clock: { now: () => Date.now() }, refreshTtlMs: 86_400_000 }).load(pointer.s);
    assert.ok(session?.refreshToken, 'the session holds a refresh token');
    return session.refreshToken;
  } finally {
    await store.close();
  }
}

describe('the remote client against the real gateway', () => {
  test('access expired + refresh present → connected; the rotated cookies are kept; one refresh at the IdP', async () => {
    const jar = await signedInJar('alice');
    await waitForAccessExpiry(jar);
    // The seed's situation: the client's store no longer sends the access cookie.
    const sent = await cookieAccess(jar).forRequest(new URL(`${gw.url}/auth/ws-ticket`), Date.now());
    assert.deepEqual(sent.map((c) => c.name), ['latchkey_rt']);
    assert.equal(hasLiveSession(jar), true, 'the refresh cookie alone is a live session');

    const rtBefore = jar.get('latchkey_rt')?.value;
    const refreshesBefore = idp.stats.refreshSuccesses;
    const state = await checkConnection(gw.url, jar);
    assert.equal(state.status, 'connected', JSON.stringify(state));
    assert.ok(state.status === 'connected');
    assert.equal(state.cookiesRotated, true);
    assert.match(state.ticket.reveal(), /\S{20,}/);
    assert.ok(state.ttlSeconds > 0 && state.ttlSeconds <= 60);
    assert.equal(idp.stats.refreshSuccesses, refreshesBefore + 1);
    assert.notEqual(jar.get('latchkey_rt')?.value, rtBefore, 'the new generation replaced the refresh cookie');
    assert.ok((jar.get('latchkey_at')?.expiresAt ?? 0) > Date.now(), 'a fresh access cookie was stored');

    // The rotated cookies work: the upstream answers as alice without another refresh.
    const cookie = (await cookieAccess(jar).forRequest(new URL(`${gw.url}/whoami`), Date.now())).map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await fetch(`${gw.url}/whoami`, { headers: { cookie, accept: 'application/json' } });
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { headers: Record<string, string> }).headers['x-forwarded-user'], 'alice');
    assert.equal(idp.stats.refreshSuccesses, refreshesBefore + 1);
  });

  test('waking from sleep: 5 windows probe at once with the same stale cookies → all connected, one refresh, the jar left working', async () => {
    const jar = await signedInJar('wendy');
    await waitForAccessExpiry(jar);
    const before = idp.stats.refreshSuccesses;
    const revokedBefore = idp.stats.revokedGrants;
    const states = await Promise.all(Array.from({ length: 5 }, () => checkConnection(gw.url, jar)));
    assert.deepEqual(states.map((s) => s.status), ['connected', 'connected', 'connected', 'connected', 'connected'], JSON.stringify(states));
    assert.equal(idp.stats.refreshSuccesses, before + 1, 'one refresh for the five probes');
    assert.equal(idp.stats.revokedGrants, revokedBefore, 'no refresh token replayed');
    // Whichever answer's cookies were stored last, they name the live session.
    const again = await checkConnection(gw.url, jar);
    assert.equal(again.status, 'connected');
    assert.equal(idp.stats.refreshSuccesses, before + 1);
  });

  test('a live session with a fresh access cookie → connected without a refresh; the ticket opens a WebSocket once', async () => {
    const jar = await signedInJar('frank');
    const before = idp.stats.refreshRequests;
    const state = await checkConnection(`${gw.url}/`, jar);
    assert.ok(state.status === 'connected', JSON.stringify(state));
    assert.equal(idp.stats.refreshRequests, before);

    // The probe's ticket is a real one: it opens the upstream's WebSocket once, bound to the gateway's origin.
    const wsUrl = `${gw.url.replace(/^http/, 'ws')}/ws?ticket=${encodeURIComponent(state.ticket.reveal())}`;
    const echo = await new Promise<string>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { headers: { origin: gw.url } });
      ws.once('open', () => ws.send('ping'));
      ws.once('message', (data) => {
        resolve(String(data));
        ws.close();
      });
      ws.once('error', reject);
    });
    assert.equal(echo, 'echo:ping');
    const replay = await new Promise<number>((resolve) => {
      const ws = new WebSocket(wsUrl, { headers: { origin: gw.url } });
      ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.once('open', () => {
        ws.close();
        resolve(101);
      });
      ws.once('error', () => resolve(-1));
    });
    assert.equal(replay, 401, 'a ticket is single use');
  });

  test('the grant revoked at the IdP → needsLogin (session_expired); the cleared cookies are removed', async () => {
    const jar = await signedInJar('grace');
    assert.equal(await idp.revokeGrantOf(await refreshTokenOf(jar)), true);
    await waitForAccessExpiry(jar);
    const state = await checkConnection(gw.url, jar);
    assert.equal(state.status, 'needsLogin', JSON.stringify(state));
    assert.ok(state.status === 'needsLogin');
    assert.equal(state.reason, 'session_expired');
    assert.equal(new URL(state.loginUrl).origin, new URL(gw.url).origin);
    assert.match(new URL(state.loginUrl).pathname, /\/auth\/login$/);
    assert.equal(hasLiveSession(jar), false, 'the gateway deleted the session cookies');
    // And the next check does not even ask.
    assert.deepEqual(await checkConnection(gw.url, jar), { status: 'needsLogin', reason: 'no_session', loginUrl: `${gw.url}/auth/login` });
  });

  test('the IdP failing with 5xx → unreachable (the gateway answers 503), the cookies kept; after recovery → connected', async () => {
    const jar = await signedInJar('heidi');
    await waitForAccessExpiry(jar);
    const snapshot = JSON.stringify([...jar.values()]);
    idp.setFault({ kind: 'status', status: 502 });
    let retryAfter = 0;
    try {
      const state = await checkConnection(gw.url, jar);
      assert.equal(state.status, 'unreachable', JSON.stringify(state));
      assert.ok(state.status === 'unreachable');
      assert.equal(state.httpStatus, 503);
      assert.equal(state.reason, 'unavailable');
      assert.ok((state.retryAfterSeconds ?? 0) > 0, 'Retry-After passed on');
      retryAfter = state.retryAfterSeconds ?? 0;
      assert.equal(JSON.stringify([...jar.values()]), snapshot, 'cookies untouched');
    } finally {
      idp.setFault(null);
    }
    // A client honours Retry-After (the gateway backs off a failing IdP that long).
    await sleep(retryAfter * 1000 + 200);
    const again = await checkConnection(gw.url, jar);
    assert.equal(again.status, 'connected', JSON.stringify(again));
  });

  test('the gateway down → unreachable (never needsLogin), the cookies kept; back up → connected', async () => {
    const jar = await signedInJar('ivan');
    const port = Number(new URL(gw.url).port);
    await gw.close();
    try {
      const snapshot = JSON.stringify([...jar.values()]);
      const state = await checkConnection(gw.url, jar);
      assert.equal(state.status, 'unreachable', JSON.stringify(state));
      assert.ok(state.status === 'unreachable');
      assert.equal(state.reason, 'network');
      assert.match(state.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
      assert.equal(JSON.stringify([...jar.values()]), snapshot);
      assert.equal(hasLiveSession(jar), true);
    } finally {
      gw = await startOurGateway(port);
    }
    // The same home and key: the session survived the restart.
    const back = await checkConnection(gw.url, jar);
    assert.equal(back.status, 'connected', JSON.stringify(back));
  });

  test('Electron session.cookies: expired access + refresh → connected with the rotation stored; revoked → needsLogin', async () => {
    const jar = await signedInJar('judy');
    const electron = new FakeElectronCookies();
    for (const c of jar.values()) {
      await electron.set({ url: `${gw.url}/`, name: c.name, value: c.value, path: c.path ?? '/', httpOnly: true, sameSite: 'lax', ...(c.expiresAt !== undefined ? { expirationDate: c.expiresAt / 1000 } : {}) });
    }
    await waitForAccessExpiry(jar);
    const visible = await electron.get({ url: `${gw.url}/` });
    assert.deepEqual(visible.map((c) => c.name), ['latchkey_rt'], 'Electron no longer hands out the lapsed access cookie');
    assert.equal(hasLiveSession(visible), true);
    const state = await checkConnection(gw.url, electron);
    assert.equal(state.status, 'connected', JSON.stringify(state));
    const after = await electron.get({ url: `${gw.url}/` });
    assert.deepEqual(after.map((c) => c.name).sort(), ['latchkey_at', 'latchkey_rt']);
    assert.notEqual(after.find((c) => c.name === 'latchkey_rt')?.value, jar.get('latchkey_rt')?.value);

    // Revoke with the current refresh token (the rotated one), then the gateway ends the session.
    const current = new Map<string, JarCookie>(after.map((c) => [c.name, { name: c.name, value: c.value }]));
    assert.equal(await idp.revokeGrantOf(await refreshTokenOf(current)), true);
    await sleep(ACCESS_TTL_S * 1000 + 300);
    const ended = await checkConnection(gw.url, electron);
    assert.equal(ended.status, 'needsLogin', JSON.stringify(ended));
    assert.equal(hasLiveSession(await electron.get({ url: `${gw.url}/` })), false);
  });

  test('signOut: the gateway ends the session and revokes at the IdP; no session cookie left; copied cookies are refused', async () => {
    const jar = await signedInJar('mallory-free');
    const copy = new Map([...jar].map(([k, v]) => [k, { ...v }]));
    const revokedBefore = idp.stats.revocationEndpointRevokedGrants;
    const out = await signOut(gw.url, jar);
    assert.equal(out.gateway, 'ended', JSON.stringify(out));
    assert.equal(new URL(out.endSessionUrl ?? 'about:blank').origin, idp.issuer, 'RP-initiated logout at the IdP');
    assert.deepEqual(out.removed.sort(), ['latchkey_at', 'latchkey_rt']);
    assert.equal(hasLiveSession(jar), false);
    assert.equal(idp.stats.revocationEndpointRevokedGrants, revokedBefore + 1, 'the refresh token was revoked');
    const state = await checkConnection(gw.url, copy);
    assert.ok(state.status === 'needsLogin' && state.reason === 'session_expired', JSON.stringify(state));
  });

  test('behind a TLS proxy under /dash: __Secure- cookies at Path=/dash; expired access + refresh → connected through the proxy, the rotation stored', async () => {
    const behindProxy = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, trustedProxies: ['127.0.0.1/32', '::1/128'], log: () => undefined });
    try {
      const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example.test', 'x-forwarded-prefix': '/dash' };
      // The proxy: https://app.example.test/dash/* → the gateway, prefix stripped, forwarded headers added.
      const proxyFetch: typeof fetch = async (input, init) => {
        const u = new URL(input instanceof Request ? input.url : String(input));
        assert.equal(u.origin, PUBLIC_ORIGIN);
        assert.ok(u.pathname.startsWith('/dash/'), u.pathname);
        return fetch(`${behindProxy.url}${u.pathname.slice('/dash'.length)}${u.search}`, { ...init, headers: { ...(init?.headers as Record<string, string>), ...forwarded } });
      };
      const signedInThere = await signInThroughGateway(behindProxy.url, { headers: forwarded, login: 'kim' });
      const jar = new Map<string, JarCookie>();
      await cookieAccess(jar).apply(new URL(`${PUBLIC_ORIGIN}/dash/auth/callback`), signedInThere.jar.seen, Date.now());
      assert.deepEqual([...jar.keys()].filter((n) => n.includes('latchkey_') && !n.includes('login')).sort(), ['__Secure-latchkey_at', '__Secure-latchkey_rt']);
      const rt = jar.get('__Secure-latchkey_rt');
      assert.equal(rt?.path, '/dash');
      assert.equal(rt?.secure, true);

      await waitForAccessExpiry(new Map([['latchkey_at', jar.get('__Secure-latchkey_at')!]]));
      const state = await checkConnection(`${PUBLIC_ORIGIN}/dash`, jar, { fetch: proxyFetch });
      assert.equal(state.status, 'connected', JSON.stringify(state));
      assert.ok(state.status === 'connected' && state.cookiesRotated);
      assert.notEqual(jar.get('__Secure-latchkey_rt')?.value, rt?.value, 'the rotated refresh cookie replaced the old one');
      assert.equal(jar.get('__Secure-latchkey_rt')?.path, '/dash');
      assert.ok((jar.get('__Secure-latchkey_at')?.expiresAt ?? 0) > Date.now());
    } finally {
      await behindProxy.close();
    }
  });
});
