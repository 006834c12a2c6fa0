/**
 * The whole round trip in real headless Chromium (playwright-core, Debian's /usr/bin/chromium):
 * a page load on the gateway with no session → the gateway's login → the real oidc-provider's
 * login/consent page, filled and submitted → the callback → the upstream's page, through the
 * proxy, as the signed-in user; then from that page a ws-ticket minted with `fetch` (the
 * browser's own Origin and cookies, the CSRF header) and a WebSocket opened through the gateway
 * to the upstream with it; then logout, after which the browser holds no session cookie and a
 * page load goes back to the IdP.
 *
 * Skips when Chromium is missing, unless LATCHKEY_TEST_BROWSER=1 (CI), where it fails.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startGateway, type RunningGateway } from '../../src/gateway/server.js';
import { browserSkipReason, launchBrowser, skipUnlessBrowser } from '../fixtures/browser.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { startUpstream, type Upstream } from '../helpers/gateway.js';
import { makeHome, type TempHome } from '../helpers/home.js';

let idp: Idp;
let upstream: Upstream;
let home: TempHome;
let gw: RunningGateway;

before(async () => {
  idp = await startIdp({ accessTokenTtl: 300, redirectUris: ['http://127.0.0.1/auth/callback'] });
  upstream = await startUpstream();
  home = await makeHome();
  gw = await startGateway({ issuer: idp.issuer, clientId: 'public-client', upstream: upstream.url, home: home.home, log: () => undefined });
});

after(async () => {
  await gw?.close();
  await upstream?.close();
  await idp?.close();
  await home?.cleanup();
});

interface Echo {
  url: string;
  headers: Record<string, string | undefined>;
}

test('Chromium: login at the IdP through the gateway, the upstream page and its WebSocket through the proxy, logout ends it', { skip: browserSkipReason(), timeout: 120_000 }, async (t) => {
  if (!skipUnlessBrowser(t)) return;
  const browser = await launchBrowser();
  try {
    const context = await browser.newContext();
    const page = await context.newPage();

    // 1. No session: the page load goes to the gateway's login, then to the IdP's login page.
    await page.goto(`${gw.url}/app/dashboard?tab=1`);
    assert.equal(new URL(page.url()).origin, idp.issuer, `expected the IdP's login page, at ${page.url()}`);
    assert.match(await page.textContent('#client') ?? '', /public-client/);

    // 2. Sign in (the fixture's page is login and consent in one form).
    await page.fill('input[name=login]', 'alice');
    await Promise.all([page.waitForURL(`${gw.url}/app/dashboard?tab=1`), page.click('#submit')]);
    const echo = JSON.parse((await page.textContent('body')) ?? '{}') as Echo;
    assert.equal(echo.url, '/app/dashboard?tab=1', 'back where the user started, through the proxy');
    assert.equal(echo.headers['x-forwarded-user'], 'alice');
    assert.equal(echo.headers['x-forwarded-email'], 'alice@example.test');
    assert.doesNotMatch(echo.headers.cookie ?? '', /latchkey_/, 'the gateway cookies never reach the upstream');

    const cookies = await context.cookies(gw.url);
    const names = cookies.map((c) => c.name).sort();
    assert.ok(names.includes('latchkey_at') && names.includes('latchkey_rt'), `browser cookies: ${names.join(', ')}`);
    for (const c of cookies.filter((c) => c.name.startsWith('latchkey_'))) {
      assert.equal(c.httpOnly, true, `${c.name} is HttpOnly`);
      assert.equal(c.sameSite, 'Lax', `${c.name} is SameSite=Lax`);
    }
    assert.ok(!names.some((n) => n.startsWith('latchkey_login')), 'the login transaction cookie is gone after the callback');

    // 3. From the page: mint a ticket (the browser adds Origin and the cookies), open the WebSocket.
    upstream.sockets.length = 0;
    const ws = await page.evaluate(async () => {
      const r = await fetch('/auth/ws-ticket', { method: 'POST', headers: { 'X-Latchkey-CSRF': '1' } });
      const body = (await r.json()) as { ticket: string; ttlSeconds: number };
      const url = `${location.origin.replace(/^http/, 'ws')}/ws?ticket=${encodeURIComponent(body.ticket)}&room=7`;
      const echo = await new Promise<string>((resolve, reject) => {
        const s = new WebSocket(url);
        s.onopen = () => s.send('hello from the page');
        s.onmessage = (e) => {
          resolve(String(e.data));
          s.close();
        };
        s.onerror = () => reject(new Error('websocket error'));
      });
      // The same ticket a second time: refused (single use).
      const replay = await new Promise<string>((resolve) => {
        const s = new WebSocket(url);
        s.onopen = () => {
          s.close();
          resolve('opened');
        };
        s.onerror = () => resolve('refused');
      });
      return { status: r.status, ttlSeconds: body.ttlSeconds, echo, replay };
    });
    assert.equal(ws.status, 200);
    assert.ok(ws.ttlSeconds > 0);
    assert.equal(ws.echo, 'echo:hello from the page');
    assert.equal(ws.replay, 'refused');
    assert.equal(upstream.sockets.length, 1, 'one WebSocket reached the upstream');
    const socket = upstream.sockets[0]!;
    assert.equal(socket.url, '/ws?room=7', 'the ticket is removed before the upgrade goes upstream');
    assert.equal(socket.headers['x-forwarded-user'], 'alice');
    assert.doesNotMatch(String(socket.headers.cookie ?? ''), /latchkey_/);

    // 4. Logout from the page: every session cookie deleted, the session over.
    const out = await page.evaluate(async () => {
      const r = await fetch('/auth/logout', { method: 'POST', headers: { 'X-Latchkey-CSRF': '1' } });
      const me = await fetch('/auth/me');
      return { status: r.status, me: me.status };
    });
    assert.equal(out.status, 200);
    assert.equal(out.me, 401);
    const left = (await context.cookies(gw.url)).filter((c) => c.name.startsWith('latchkey_'));
    assert.deepEqual(left.map((c) => c.name), []);
    await page.goto(`${gw.url}/app/dashboard`);
    assert.equal(new URL(page.url()).origin, idp.issuer, 'signed out: a page load goes back to the IdP');
    await context.close();
  } finally {
    await browser.close();
  }
});
