/**
 * The `session` method end to end: a real headless Chromium started with
 * `--remote-debugging-port`, a real local web app with a session cookie and a rotating CSRF
 * cookie, and Latchkey reading the signed-in tab's cookies over the DevTools Protocol.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { resolveConfig } from '../../src/config/load.js';
import type { SessionConfig } from '../../src/config/schema.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { Latchkey } from '../../src/latchkey.js';
import type { AuthMethod, PreparedAuth } from '../../src/methods/method.js';
import { createSessionMethod } from '../../src/methods/session.js';
import { homePaths } from '../../src/paths.js';
import { browserSkipReason, launchChromeWithCdp, type CdpChrome } from '../fixtures/browser.js';
import { CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, startSessionApp, type SessionApp } from '../fixtures/session-app.js';
import { makeHome, type TempHome } from '../helpers/home.js';

const SKIP = browserSkipReason();

async function openLk(home: TempHome, session: SessionConfig, env: NodeJS.ProcessEnv = {}): Promise<{ lk: Latchkey; method: AuthMethod }> {
  const config = resolveConfig({ version: 1, sources: { app: { session } } }, home.configPath);
  const lk = new Latchkey(config, { paths: homePaths(home.home), env });
  return { lk, method: createSessionMethod({ lk, source: lk.source('app') }) };
}

/** What lk.fetch does for one call: authorize, and on a 401 recover once and retry once. */
async function callWithRecovery(method: AuthMethod, url: string): Promise<{ res: Response; first: PreparedAuth; recovered: boolean }> {
  const first = await method.authorize({ url: new URL(url), method: 'GET' });
  const res = await fetch(url, { headers: first.headers });
  if (res.status !== 401) return { res, first, recovered: false };
  await res.body?.cancel();
  const recovered = await method.recover(first);
  assert.equal(recovered, true, 'recover() should say a retry is worth making');
  const again = await method.authorize({ url: new URL(url), method: 'GET' });
  return { res: await fetch(url, { headers: again.headers }), first, recovered };
}

async function expectRenewSession(p: Promise<unknown>, ...mustMention: RegExp[]): Promise<LatchkeyError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof LatchkeyError, `expected a LatchkeyError, got ${String(err)}`);
    assert.equal(err.operatorAction, 'renew_session', err.message);
    assert.equal(err.code, 'LK_SESSION');
    assert.equal(err.exitCode, 4);
    for (const re of mustMention) assert.match(err.message, re);
    return err;
  }
  assert.fail('expected renew_session');
}

/** Session cookies of a fresh login, taken from the app's Set-Cookie headers. */
async function loginWithoutBrowser(app: SessionApp): Promise<Record<string, string>> {
  const res = await fetch(app.loginUrl, { redirect: 'manual' });
  const out: Record<string, string> = {};
  for (const sc of res.headers.getSetCookie()) {
    const [pair] = sc.split(';');
    const eq = pair!.indexOf('=');
    out[pair!.slice(0, eq)] = pair!.slice(eq + 1);
  }
  return out;
}

async function listen(server: Server): Promise<string> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function trackSockets(server: Server): () => Promise<void> {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return () =>
    new Promise<void>((r) => {
      for (const s of sockets) s.destroy();
      server.close(() => r());
    });
}

describe('session over the DevTools Protocol (real Chromium)', { skip: SKIP }, () => {
  let app: SessionApp;
  let chrome: CdpChrome;
  let driver: Browser; // the "operator": their own connection to their own browser
  let tab: Page;

  before(async () => {
    app = await startSessionApp();
    chrome = await launchChromeWithCdp();
    driver = await chromium.connectOverCDP(chrome.cdpUrl);
    tab = await driver.contexts()[0]!.newPage();
    await tab.goto(app.loginUrl); // signs in; lands on /app
    assert.match(tab.url(), /\/app$/);
  });
  after(async () => {
    await driver?.close().catch(() => undefined);
    await chrome?.close();
    await app?.close();
  });

  const sessionConfig = (extra: Partial<SessionConfig> = {}): SessionConfig => ({
    origin: app.origin,
    csrfCookie: CSRF_COOKIE,
    csrfHeader: CSRF_HEADER,
    cdp: { endpoint: chrome.cdpUrl, tabUrl: `${app.origin}/app*`, timeoutMs: 5_000 },
    ...extra,
  });

  test('reads cookies over CDP, survives a CSRF rotation with exactly one reload and two API calls', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { lk, method } = await openLk(home, sessionConfig());
    assert.deepEqual(await method.available(), { ok: true });

    app.stats.reset();
    const first = await callWithRecovery(method, app.apiUrl);
    assert.equal(first.res.status, 200);
    assert.equal(first.recovered, false);
    assert.equal(first.first.headers[CSRF_HEADER]?.length, 43, 'the CSRF header carries the csrf.app value');
    assert.match(first.first.headers.Cookie ?? '', new RegExp(`(^|; )${SESSION_COOKIE}=`));
    assert.equal(app.stats.appLoads, 0, 'reading cookies does not reload the tab');

    // The cookies are cached in the store: a later process needs no browser.
    const rec = await lk.store.read('app');
    assert.deepEqual(Object.keys(rec?.session?.cookies ?? {}).sort(), [CSRF_COOKIE, SESSION_COOKIE].sort());
    assert.ok(!JSON.stringify(rec).includes(first.first.headers[CSRF_HEADER]!), 'secrets are redacted when a record is printed');

    app.rotateCsrf();
    app.stats.reset();
    const second = await callWithRecovery(method, app.apiUrl);
    assert.equal(second.res.status, 200);
    assert.equal(second.recovered, true);
    assert.equal(app.stats.appLoads, 1, 'exactly one reload of the signed-in tab');
    assert.equal(app.stats.apiCalls, 2, 'exactly two API calls for that fetch');
    assert.equal(app.stats.api401, 1);

    // A second process (new Latchkey on the same profile) uses the stored cookies; its CDP
    // endpoint is dead, proving it never touches the browser.
    const other = await openLk(home, sessionConfig({ cdp: { endpoint: 'http://127.0.0.1:9', tabUrl: `${app.origin}/app*`, timeoutMs: 1_000 } }));
    app.stats.reset();
    const third = await callWithRecovery(other.method, app.apiUrl);
    assert.equal(third.res.status, 200);
    assert.equal(app.stats.appLoads, 0);

    // Latchkey only disconnected: the operator's browser and tab are still there.
    const list = (await (await fetch(`${chrome.cdpUrl}/json/list`)).json()) as Array<{ type: string; url: string }>;
    assert.ok(list.some((p) => p.type === 'page' && p.url === app.appUrl), 'the signed-in tab is still open');
    assert.equal(tab.isClosed(), false);
  });

  test('through lk.fetch: token unavailable → session path; one reload and two API calls on a stale CSRF', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const config = resolveConfig(
      { version: 1, sources: { app: { methods: ['token', 'session'], token: { secret: 'env:APP_PAT_NOT_SET' }, session: sessionConfig() } } },
      home.configPath,
    );
    const lk = new Latchkey(config, { paths: homePaths(home.home), env: {} });
    assert.equal(await lk.authPath('app'), 'session', 'the token path is unavailable, the session is the fallback');
    const ok = await lk.fetch('app', app.apiUrl);
    assert.equal(ok.status, 200);
    await ok.body?.cancel();

    app.rotateCsrf();
    app.stats.reset();
    const res = await lk.fetch('app', app.apiUrl);
    assert.equal(res.status, 200);
    assert.equal(((await res.json()) as { results: unknown[] }).results.length, 2);
    assert.equal(app.stats.appLoads, 1, 'exactly one reload');
    assert.equal(app.stats.apiCalls, 2, 'exactly two API calls');

    // Cookies never go to another origin through lk.fetch either.
    await assert.rejects(lk.fetch('app', 'https://elsewhere.example/api'), /refusing to send them|session/);
  });

  test('concurrent 401s in one process share one reload', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, sessionConfig());
    const used = await method.authorize();
    app.rotateCsrf();
    app.stats.reset();
    const results = await Promise.all([method.recover(used), method.recover(used), method.recover(used)]);
    assert.deepEqual(results, [true, true, true]);
    assert.equal(app.stats.appLoads, 1);
    const res = await fetch(app.apiUrl, { headers: (await method.authorize()).headers });
    assert.equal(res.status, 200);
  });

  test('refuses to send the session cookies to another host', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, sessionConfig());
    await assert.rejects(method.authorize({ url: new URL('https://evil.example/api'), method: 'GET' }), (err: LatchkeyError) => {
      assert.equal(err.code, 'LK_USAGE');
      assert.match(err.message, /refusing to send them to https:\/\/evil\.example/);
      return true;
    });
  });

  test('the tab is gone → renew_session naming the endpoint and the tab pattern', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const pattern = `${app.origin}/app*`;
    // A second signed-in tab that we then close; the first stays for the other tests.
    const { method } = await openLk(home, sessionConfig({ cdp: { endpoint: chrome.cdpUrl, tabUrl: `${app.origin}/app?gone*`, timeoutMs: 5_000 } }));
    const extra = await driver.contexts()[0]!.newPage();
    await extra.goto(`${app.appUrl}?gone=1`);
    const used = await method.authorize();
    await extra.close();

    app.rotateCsrf();
    const err = await expectRenewSession(method.recover(used), /no open tab matches .*\/app\?gone\*/, new RegExp(`Chrome DevTools endpoint ${chrome.cdpUrl.replace(/[.]/g, '\\.')}`), /tab is gone/);
    assert.ok(!err.message.includes(used.headers[CSRF_HEADER]!), 'no cookie value in the message');
    assert.match(err.fix ?? '', /sign in at/);

    // Through lk.fetch: the second 401 is a typed error carrying renew_session.
    const config = resolveConfig({ version: 1, sources: { app: { session: sessionConfig({ cdp: { endpoint: chrome.cdpUrl, tabUrl: `${app.origin}/app?gone*`, timeoutMs: 5_000 } }) } } }, home.configPath);
    const lk = new Latchkey(config, { paths: homePaths(home.home), env: {} });
    app.stats.reset();
    await assert.rejects(lk.fetch('app', app.apiUrl), (e: LatchkeyError) => {
      assert.equal(e.operatorAction, 'renew_session');
      assert.equal(e.exitCode, 4);
      return true;
    });
    assert.ok(app.stats.apiCalls <= 2, `never more than two API calls (saw ${app.stats.apiCalls})`);

    // A fresh profile (nothing stored) cannot even authorize.
    const fresh = await makeHome();
    t.after(() => fresh.cleanup());
    const m2 = await openLk(fresh, sessionConfig({ cdp: { endpoint: chrome.cdpUrl, tabUrl: `${app.origin}/nothing-here/*`, timeoutMs: 5_000 } }));
    await expectRenewSession(m2.method.authorize(), /no open tab matches/);
    void pattern;
  });

  test('a tab that never finishes loading → bounded, renew_session', async (t) => {
    // First load completes (and sets the CSRF cookie); every later load never ends.
    let loads = 0;
    const server = createServer((req, res: ServerResponse) => {
      loads += 1;
      if (loads === 1) {
        res.writeHead(200, { 'content-type': 'text/html', 'set-cookie': ['sid=s1; Path=/', 'xsrf=x1; Path=/'] });
        res.end('<!doctype html><p>ready</p>');
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html' });
      res.write('<!doctype html><p>loading forever'); // never ended
    });
    const close = trackSockets(server);
    const origin = await listen(server);
    t.after(close);
    const page = await driver.contexts()[0]!.newPage();
    t.after(() => page.close().catch(() => undefined));
    await page.goto(`${origin}/slow`);

    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, {
      origin,
      csrfCookie: 'xsrf',
      csrfHeader: 'X-XSRF',
      cdp: { endpoint: chrome.cdpUrl, tabUrl: `${origin}/slow*`, timeoutMs: 1_500 },
    });
    const used = await method.authorize();
    assert.equal(used.headers['X-XSRF'], 'x1');
    const started = Date.now();
    await expectRenewSession(method.recover(used), /did not finish reloading within 1500 ms/, /\/slow\*/);
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 6_000, `bounded by the timeout (took ${elapsed} ms)`);
    assert.ok(loads >= 2, 'the tab was reloaded');
  });
});

describe('session over the DevTools Protocol: endpoints that are not Chrome', () => {
  test('an HTTP server answering garbage on /json/version → renew_session', async (t) => {
    const server = createServer((req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('<html>I am a printer</html>');
    });
    const close = trackSockets(server);
    const endpoint = await listen(server);
    t.after(close);
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, { origin: 'https://app.example', cdp: { endpoint, tabUrl: 'https://app.example/*', timeoutMs: 1_000 } });
    const started = Date.now();
    await expectRenewSession(method.authorize(), /not a Chrome DevTools endpoint/, new RegExp(endpoint.replace(/[.]/g, '\\.')));
    assert.ok(Date.now() - started < 3_000);
  });

  test('JSON without a webSocketDebuggerUrl, and a WebSocket URL that is not CDP → renew_session', async (t) => {
    for (const variant of ['no-ws-url', 'ws-not-cdp'] as const) {
      const server = createServer((req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        // ws-not-cdp: the WebSocket URL leads back to this plain HTTP server (we keep the configured host).
        res.end(variant === 'no-ws-url' ? JSON.stringify({ Browser: 'NotChrome/1.0' }) : JSON.stringify({ Browser: 'NotChrome/1.0', webSocketDebuggerUrl: 'ws://127.0.0.1:1/devtools/browser/x' }));
      });
      const close = trackSockets(server);
      const endpoint = await listen(server);
      t.after(close);
      const home = await makeHome();
      t.after(() => home.cleanup());
      const { method } = await openLk(home, { origin: 'https://app.example', cdp: { endpoint, tabUrl: 'https://app.example/*', timeoutMs: 1_000 } });
      const started = Date.now();
      await expectRenewSession(method.authorize(), new RegExp(`Chrome DevTools endpoint ${endpoint.replace(/[.]/g, '\\.')}`));
      assert.ok(Date.now() - started < 3_500, variant);
    }
  });

  test('concurrent 401s share one failed renewal (one visit to the endpoint, the same renew_session for all)', async (t) => {
    let hits = 0;
    const server = createServer((req, res) => {
      hits += 1;
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('not chrome');
    });
    const close = trackSockets(server);
    const endpoint = await listen(server);
    t.after(close);
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(
      home,
      { origin: 'https://app.example', csrfCookie: 'x', csrfHeader: 'X-X', cookieHeader: 'env:C', cdp: { endpoint, tabUrl: 'https://app.example/*', timeoutMs: 1_000 } },
      { C: 'sid=1; x=2' },
    );
    const used = await method.authorize();
    const results = await Promise.allSettled([method.recover(used), method.recover(used), method.recover(used)]);
    assert.ok(results.every((r) => r.status === 'rejected' && (r.reason as LatchkeyError).operatorAction === 'renew_session'));
    assert.equal(hits, 1);
  });

  test('an endpoint that accepts the connection and never answers → bounded, renew_session', async (t) => {
    const server = createServer(() => undefined); // never responds
    const close = trackSockets(server);
    const endpoint = await listen(server);
    t.after(close);
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, { origin: 'https://app.example', cdp: { endpoint, tabUrl: 'https://app.example/*', timeoutMs: 800 } });
    const started = Date.now();
    await expectRenewSession(method.authorize(), /did not answer \/json\/version within 800 ms/);
    assert.ok(Date.now() - started < 2_500);
  });

  test('an unreachable endpoint → renew_session', async (t) => {
    const server = createServer();
    const endpoint = await listen(server);
    await new Promise<void>((r) => server.close(() => r())); // the port is now closed
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, { origin: 'https://app.example', cdp: { endpoint, tabUrl: 'https://app.example/*', timeoutMs: 1_000 } });
    await expectRenewSession(method.authorize(), /is unreachable/, /--remote-debugging-port/);
  });
});

describe('session renewal over HTTP (renewUrl, no browser)', () => {
  let app: SessionApp;
  before(async () => {
    app = await startSessionApp();
  });
  after(async () => {
    await app.close();
  });

  test('cookieHeader + renewUrl: 401 → renewal → retry succeeds; stored layer used by the next process', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const cookies = await loginWithoutBrowser(app);
    const env = { APP_COOKIES: `${SESSION_COOKIE}=${cookies[SESSION_COOKIE]}; ${CSRF_COOKIE}=${cookies[CSRF_COOKIE]}` };
    const config: SessionConfig = { origin: app.origin, csrfCookie: CSRF_COOKIE, csrfHeader: CSRF_HEADER, cookieHeader: 'env:APP_COOKIES', renewUrl: app.renewUrl };
    const { lk, method } = await openLk(home, config, env);

    app.stats.reset();
    assert.equal((await callWithRecovery(method, app.apiUrl)).res.status, 200);
    assert.equal(app.stats.renewCalls, 0);

    app.rotateCsrf();
    app.stats.reset();
    const r = await callWithRecovery(method, app.apiUrl);
    assert.equal(r.res.status, 200);
    assert.equal(r.recovered, true);
    assert.equal(app.stats.renewCalls, 1);
    assert.equal(app.stats.apiCalls, 2);
    const rec = await lk.store.read('app');
    assert.deepEqual(Object.keys(rec?.session?.cookies ?? {}), [CSRF_COOKIE], 'only the re-issued cookie is stored over the header');

    const other = await openLk(home, config, env);
    app.stats.reset();
    assert.equal((await callWithRecovery(other.method, app.apiUrl)).res.status, 200);
    assert.equal(app.stats.renewCalls, 0);
    assert.equal(app.stats.apiCalls, 1);
  });

  test('a cookieHeader with only the session cookie: the renewal URL supplies the CSRF cookie', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const cookies = await loginWithoutBrowser(app);
    const env = { APP_COOKIES: `${SESSION_COOKIE}=${cookies[SESSION_COOKIE]}` };
    const { method } = await openLk(home, { origin: app.origin, csrfCookie: CSRF_COOKIE, csrfHeader: CSRF_HEADER, cookieHeader: 'env:APP_COOKIES', renewUrl: app.renewUrl }, env);
    app.stats.reset();
    assert.equal((await callWithRecovery(method, app.apiUrl)).res.status, 200);
    assert.equal(app.stats.renewCalls, 1);
  });

  test('an expired session: the renewal URL answers 401 → renew_session', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const cookies = await loginWithoutBrowser(app);
    const env = { APP_COOKIES: `${SESSION_COOKIE}=${cookies[SESSION_COOKIE]}; ${CSRF_COOKIE}=${cookies[CSRF_COOKIE]}` };
    const { method } = await openLk(home, { origin: app.origin, csrfCookie: CSRF_COOKIE, csrfHeader: CSRF_HEADER, cookieHeader: 'env:APP_COOKIES', renewUrl: app.renewUrl }, env);
    const used = await method.authorize();
    app.expireSession();
    const err = await expectRenewSession(method.recover(used), /renewal URL .*\/renew answered 401/);
    assert.ok(!err.message.includes(cookies[SESSION_COOKIE]!));
  });

  test('no renewal configured → renew_session explaining why', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const cookies = await loginWithoutBrowser(app);
    const env = { APP_COOKIES: `${SESSION_COOKIE}=${cookies[SESSION_COOKIE]}; ${CSRF_COOKIE}=${cookies[CSRF_COOKIE]}` };
    const { method } = await openLk(home, { origin: app.origin, csrfCookie: CSRF_COOKIE, csrfHeader: CSRF_HEADER, cookieHeader: 'env:APP_COOKIES' }, env);
    const used = await method.authorize();
    await expectRenewSession(method.recover(used), /neither session\.renewUrl nor session\.cdp/);
  });

  test('nothing to take cookies from → unavailable with renew_session', async (t) => {
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { method } = await openLk(home, { origin: app.origin });
    const a = await method.available();
    assert.equal(a.ok, false);
    assert.equal(a.ok === false && a.operatorAction, 'renew_session');
    await expectRenewSession(method.authorize(), /no session cookies/);
  });
});

describe('hostile Set-Cookie headers from the renewal URL', () => {
  const MARK = 'HOSTILE-MARKER-7f3a';

  test('values with ";", huge values and unlisted names are ignored; the good cookie is applied', async (t) => {
    const huge = 'h'.repeat(10_000); // over the 4096-byte cookie limit, under the HTTP header limit
    const server = createServer((req, res) => {
      res.writeHead(200, {
        'content-type': 'text/plain',
        'set-cookie': [
          `evil=${MARK}; Path=/`, // not on the list
          `sid=${huge}`, // huge: rejected
          `bad name=${MARK}`, // invalid name
          `=${MARK}`, // nameless
          `xsrf=fresh-xsrf;${MARK}=1; Path=/`, // ";" ends the value: the rest are attributes
          `other=${MARK}; Domain=evil.example`, // wrong domain
        ],
      });
      res.end('ok');
    });
    const close = trackSockets(server);
    const origin = await listen(server);
    t.after(close);
    const home = await makeHome();
    t.after(() => home.cleanup());
    const { lk, method } = await openLk(
      home,
      { origin, cookies: ['sid', 'other'], csrfCookie: 'xsrf', csrfHeader: 'X-XSRF', cookieHeader: 'env:C', renewUrl: `${origin}/renew` },
      { C: 'sid=s1; xsrf=old' },
    );
    const used = await method.authorize();
    assert.equal(await method.recover(used), true);
    const next = await method.authorize();
    assert.equal(next.headers['X-XSRF'], 'fresh-xsrf');
    assert.equal(next.headers.Cookie, 'sid=s1; xsrf=fresh-xsrf');
    const rec = await lk.store.read('app');
    const stored = Object.fromEntries(Object.entries(rec?.session?.cookies ?? {}).map(([k, v]) => [k, v.reveal()]));
    assert.deepEqual(stored, { xsrf: 'fresh-xsrf' });
    const raw = await (await import('node:fs/promises')).readFile(home.storePath, 'utf8');
    assert.ok(!raw.includes(MARK), 'nothing hostile reached the store');
  });

  test('raw responses with CR, LF, DEL or NUL inside a Set-Cookie are rejected without crashing', async (t) => {
    const { createServer: createTcp } = await import('node:net');
    const responses = [
      `Set-Cookie: xsrf=a\rInjected: ${MARK}\r\nSet-Cookie: sid=${MARK}\nX: y\r\n`,
      `Set-Cookie: xsrf=${MARK}\x7f\r\n`,
      `Set-Cookie: xsrf=${MARK}\x00z\r\n`,
      `Set-Cookie: xsrf=${MARK}\x01z\r\n`,
    ];
    for (const headers of responses) {
      const tcp = createTcp((sock) => {
        sock.once('data', () => {
          sock.end(`HTTP/1.1 200 OK\r\n${headers}Content-Length: 0\r\nConnection: close\r\n\r\n`, 'latin1');
        });
      });
      await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', () => r()));
      t.after(() => new Promise<void>((r) => tcp.close(() => r())));
      const origin = `http://127.0.0.1:${(tcp.address() as AddressInfo).port}`;
      const home = await makeHome();
      t.after(() => home.cleanup());
      const { lk, method } = await openLk(home, { origin, csrfCookie: 'xsrf', csrfHeader: 'X-XSRF', cookieHeader: 'env:C', renewUrl: `${origin}/renew`, timeoutMs: 2_000 }, { C: 'sid=s1; xsrf=old' });
      const used = await method.authorize();
      // Either the HTTP parser refuses the response, or the cookie is refused: no retry, no store write.
      const err = await expectRenewSession(method.recover(used), /renewal URL/);
      assert.ok(!err.message.includes(MARK));
      assert.equal(await lk.store.read('app'), undefined, 'nothing stored');
      const after = await method.authorize().catch(() => undefined);
      assert.ok(!after || !JSON.stringify(after.headers).includes(MARK));
    }
  });
});
