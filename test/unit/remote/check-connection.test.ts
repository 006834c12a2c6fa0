/**
 * checkConnection's verdicts for every kind of answer, against a loopback HTTP server that
 * answers what a gateway (or something in its place) might. The real gateway and IdP are in
 * test/e2e/remote-client.test.ts; here each answer is chosen to pin one rule:
 * 401 `session_expired` is the only way to `needsLogin` after a request; network errors,
 * timeouts, 5xx and 503 are `unreachable`; the rotated cookies are kept.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { checkConnection } from '../../../src/remote/check-connection.js';
import { gatewayBaseUrl, parseRetryAfter } from '../../../src/remote/gateway-request.js';
import type { JarCookie } from '../../../src/remote/cookie-jar.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { closedPort } from '../../helpers/closed-port.js';
import { FakeElectronCookies } from '../../helpers/electron-cookies.js';
import { jsonAnswer, startLoopbackApi, type ApiHandler, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
const json = jsonAnswer;

function liveJar(): Map<string, JarCookie> {
  return new Map([
    ['latchkey_rt', { name: 'latchkey_rt', value: 'RT0', path: '/', expiresAt: Date.now() + 3_600_000 }],
    ['unrelated', { name: 'unrelated', value: 'u', path: '/' }],
  ]);
}

before(async () => {
  api = await startLoopbackApi((_req, res) => res.end());
});

after(() => api.close());

describe('checkConnection', () => {
  test('connected: POSTs to <base>auth/ws-ticket with the cookies, same Origin and the CSRF header; stores the rotated cookies', async () => {
    api.requests.length = 0;
    api.handler = json(200, { ticket: 'T-123', ttlSeconds: 30 }, {
      'set-cookie': ['latchkey_at=AT1; Path=/; Max-Age=900; HttpOnly; SameSite=Lax', 'latchkey_rt=RT1; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax'],
    });
    const jar = liveJar();
    const state = await checkConnection(`${api.origin}/dash`, jar);
    assert.equal(state.status, 'connected');
    assert.ok(state.status === 'connected');
    assert.equal(state.ticket.reveal(), 'T-123');
    assert.equal(state.ttlSeconds, 30);
    assert.equal(state.cookiesRotated, true);
    assert.equal(jar.get('latchkey_rt')?.value, 'RT1');
    assert.equal(jar.get('latchkey_at')?.value, 'AT1');
    const req = api.requests[0]!;
    assert.equal(req.method, 'POST');
    assert.equal(req.path, '/dash/auth/ws-ticket');
    assert.equal(req.headers.origin, api.origin);
    assert.equal(req.headers['x-latchkey-csrf'], '1');
    assert.equal(req.headers.cookie, 'latchkey_rt=RT0; unrelated=u');
    // the ticket is a secret: printing the verdict never shows it
    assert.equal(JSON.stringify(state).includes('T-123'), false);
    assert.equal(inspect(state).includes('T-123'), false);
  });

  test('connected without Set-Cookie: cookiesRotated false', async () => {
    api.handler = json(200, { ticket: 't', ttlSeconds: 30 });
    const state = await checkConnection(api.origin, liveJar());
    assert.ok(state.status === 'connected' && state.cookiesRotated === false);
  });

  test('no live session cookie: needsLogin/no_session without any request', async () => {
    api.requests.length = 0;
    const jar = new Map<string, JarCookie>([
      ['latchkey_at', { name: 'latchkey_at', value: 'x', expiresAt: Date.now() - 1 }],
      ['latchkey_login_x', { name: 'latchkey_login_x', value: 'y' }],
    ]);
    const state = await checkConnection(`${api.origin}/dash/`, jar);
    assert.deepEqual(state, { status: 'needsLogin', reason: 'no_session', loginUrl: `${api.origin}/dash/auth/login` });
    assert.equal(api.requests.length, 0);
  });

  test('401 session_expired: needsLogin with the gateway\'s loginUrl, cleared cookies removed', async () => {
    api.handler = json(401, { error: 'session_expired', loginUrl: '/auth/login?next=%2F' }, { 'set-cookie': ['latchkey_rt=; Path=/; Max-Age=0', 'latchkey_at=; Path=/; Max-Age=0'] });
    const jar = liveJar();
    const state = await checkConnection(api.origin, jar);
    assert.deepEqual(state, { status: 'needsLogin', reason: 'session_expired', loginUrl: `${api.origin}/auth/login?next=%2F` });
    assert.deepEqual([...jar.keys()], ['unrelated']);
  });

  test('401 session_expired with a loginUrl on another origin: the gateway\'s own login route instead', async () => {
    api.handler = json(401, { error: 'session_expired', loginUrl: 'https://evil.test/phish' });
    const state = await checkConnection(api.origin, liveJar());
    assert.ok(state.status === 'needsLogin');
    assert.equal(state.loginUrl, `${api.origin}/auth/login`);
  });

  test('503 with Retry-After (IdP trouble): unreachable, cookies kept', async () => {
    api.handler = json(503, { error: 'idp_unavailable' }, { 'retry-after': '7' });
    const jar = liveJar();
    const state = await checkConnection(api.origin, jar);
    assert.deepEqual(state, { status: 'unreachable', reason: 'unavailable', httpStatus: 503, retryAfterSeconds: 7, message: `127.0.0.1:${new URL(api.origin).port} is temporarily unavailable (503): idp_unavailable` });
    assert.equal(jar.get('latchkey_rt')?.value, 'RT0');
  });

  test('500, 502, 504 and non-JSON 5xx: unreachable/server_error; 429: rate_limited', async () => {
    for (const status of [500, 502, 504]) {
      api.handler = (_req, res) => {
        res.writeHead(status, { 'content-type': 'text/html' });
        res.end('<h1>Bad Gateway</h1>');
      };
      const state = await checkConnection(api.origin, liveJar());
      assert.ok(state.status === 'unreachable' && state.reason === 'server_error' && state.httpStatus === status, JSON.stringify(state));
    }
    api.handler = json(429, { error: 'slow_down' }, { 'retry-after': '2' });
    const s429 = await checkConnection(api.origin, liveJar());
    assert.ok(s429.status === 'unreachable' && s429.reason === 'rate_limited' && s429.retryAfterSeconds === 2);
  });

  test('connection refused: unreachable/network naming host:port, never needsLogin', async () => {
    const port = await closedPort();
    const jar = liveJar();
    const state = await checkConnection(`http://127.0.0.1:${port}/`, jar);
    assert.equal(state.status, 'unreachable');
    assert.ok(state.status === 'unreachable' && state.reason === 'network');
    assert.match(state.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.equal(jar.get('latchkey_rt')?.value, 'RT0');
  });

  test('answers a Latchkey gateway does not give: rejected (not needsLogin, not unreachable)', async () => {
    const cases: Array<[ApiHandler, number]> = [
      [json(404, { error: 'not_found' }), 404],
      [json(403, { error: 'origin_mismatch' }), 403],
      [json(401, { error: 'invalid_token' }, { 'www-authenticate': 'Basic' }), 401],
      [json(200, { hello: 'world' }), 200],
      [(_req, res) => { res.writeHead(200, { 'content-type': 'text/html' }); res.end('<html>'); }, 200],
      [(_req, res) => { res.writeHead(302, { location: '/auth/login' }); res.end(); }, 302],
      [json(200, { ticket: 't', ttlSeconds: -1 }), 200],
    ];
    for (const [a, status] of cases) {
      api.handler = a;
      const state = await checkConnection(api.origin, liveJar());
      assert.ok(state.status === 'rejected' && state.httpStatus === status, JSON.stringify(state));
    }
  });

  test('a gateway that never answers: unreachable/timeout; the caller\'s abort: unreachable/aborted', async () => {
    // its own server, so the held requests cannot disturb the shared one's keep-alive sockets
    const silent = createServer(() => undefined);
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const silentOrigin = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
    try {
      const t = await checkConnection(silentOrigin, liveJar(), { timeoutMs: 200 });
      assert.ok(t.status === 'unreachable' && t.reason === 'timeout', JSON.stringify(t));
      const ac = new AbortController();
      const pending = checkConnection(silentOrigin, liveJar(), { signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      const a = await pending;
      assert.ok(a.status === 'unreachable' && a.reason === 'aborted', JSON.stringify(a));
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((r) => silent.close(() => r()));
    }
  });

  test('an oversized JSON answer is not parsed', async () => {
    api.handler = json(200, { ticket: 'x'.repeat(20_000), ttlSeconds: 30 });
    const state = await checkConnection(api.origin, liveJar());
    assert.equal(state.status, 'rejected');
  });

  test('works with Electron session.cookies: sends its cookies, stores the rotation in seconds', async () => {
    api.requests.length = 0;
    const el = new FakeElectronCookies();
    await el.set({ url: `${api.origin}/`, name: 'latchkey_rt', value: 'RT0', path: '/', httpOnly: true, expirationDate: Date.now() / 1000 + 3600 });
    api.handler = json(200, { ticket: 't', ttlSeconds: 30 }, { 'set-cookie': ['latchkey_at=AT1; Path=/; Max-Age=900; HttpOnly; SameSite=Lax', 'latchkey_rt=RT1; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax'] });
    const state = await checkConnection(api.origin, el);
    assert.ok(state.status === 'connected' && state.cookiesRotated);
    assert.equal(api.requests[0]?.headers.cookie, 'latchkey_rt=RT0');
    const rt = (await el.get({ url: `${api.origin}/` })).find((c) => c.name === 'latchkey_rt');
    assert.equal(rt?.value, 'RT1');
    assert.ok(rt?.expirationDate !== undefined && Math.abs(rt.expirationDate - (Date.now() / 1000 + 86400)) < 60);
  });
});

describe('gatewayBaseUrl and Retry-After', () => {
  test('base URL: trailing slash added, hash dropped; bad ones are LK_USAGE / LK_INSECURE_ENDPOINT', () => {
    assert.equal(gatewayBaseUrl('https://example.com/dash').href, 'https://example.com/dash/');
    assert.equal(gatewayBaseUrl('https://example.com#x').href, 'https://example.com/');
    assert.equal(gatewayBaseUrl('http://localhost:9119').href, 'http://localhost:9119/');
    const code = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        assert.ok(e instanceof LatchkeyError);
        return e.code;
      }
      return 'no error';
    };
    assert.equal(code(() => gatewayBaseUrl('not a url')), 'LK_USAGE');
    assert.equal(code(() => gatewayBaseUrl('ftp://example.com/')), 'LK_USAGE');
    assert.equal(code(() => gatewayBaseUrl('https://u:p@example.com/')), 'LK_USAGE');
    assert.equal(code(() => gatewayBaseUrl('https://example.com/?a=1')), 'LK_USAGE');
    assert.equal(code(() => gatewayBaseUrl('http://example.com/')), 'LK_INSECURE_ENDPOINT');
    assert.equal(gatewayBaseUrl('http://example.com/', { allowInsecureHttp: true }).href, 'http://example.com/');
  });

  test('checkConnection rejects a bad URL before touching the cookies', async () => {
    await assert.rejects(checkConnection('http://example.com/', liveJar()), (e: unknown) => e instanceof LatchkeyError && e.code === 'LK_INSECURE_ENDPOINT');
  });

  test('Retry-After: seconds or an HTTP date; junk ignored', () => {
    const now = Date.parse('2026-11-30T09:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120);
    assert.equal(parseRetryAfter('Mon, 30 Nov 2026 09:00:30 GMT', now), 30);
    assert.equal(parseRetryAfter('Mon, 30 Nov 2026 08:00:00 GMT', now), 0);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter('-5', now), undefined);
    assert.equal(parseRetryAfter(null, now), undefined);
  });
});
