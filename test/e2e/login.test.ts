/**
 * `latchkey login` end to end against the real oidc-provider IdP: authorization code + PKCE
 * through a loopback redirect, in real headless Chromium and over plain HTTP, library and CLI.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { openLatchkey, type Latchkey } from '../../src/latchkey.js';
import { loginWithAuthorizationCode } from '../../src/login/authorization-code.js';
import { launchBrowser, skipUnlessBrowser } from '../fixtures/browser.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { assertNoSecrets, authorizeOverHttp, captureStream, recordingFetch } from './login-support.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp.close();
});

interface StoredGrantJson {
  accessToken: string;
  refreshToken?: string;
  expiresAt?: number;
  issuer?: string;
  clientId?: string;
  tokenEndpoint?: string;
}

async function storedGrant(h: TempHome, source = 'idp'): Promise<StoredGrantJson | undefined> {
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')) as { sources: Record<string, { grant?: StoredGrantJson }> };
  return doc.sources[source]?.grant;
}


/** A profile whose source knows only the issuer: the endpoints are discovered at login time. */
async function issuerOnlyHome(oauth: Record<string, unknown> = {}): Promise<TempHome> {
  return makeHome({ version: 1, sources: { idp: { oauth: { issuer: idp.issuer, clientId: 'public-client', scope: 'openid offline_access api', ...oauth } } } });
}

test('login in real headless Chromium: code + PKCE + nonce via discovery, grant stored, token works, a refresh rotates it', { timeout: 90_000 }, async (t) => {
  if (!skipUnlessBrowser(t)) return;
  const h = await issuerOnlyHome();
  t.after(() => h.cleanup());
  const rec = recordingFetch();
  const lk = await openLatchkey({ home: h.home, env: {}, fetch: rec.fetch });
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage();
  let authUrl: URL | undefined;

  const result = await loginWithAuthorizationCode(lk, 'idp', {
    timeoutMs: 60_000,
    onUrl: (url) => {
      authUrl = new URL(url);
    },
    openUrl: async (url) => {
      await page.goto(url);
      await page.fill('input[name=login]', 'alice');
      await page.click('#submit');
    },
  });

  // The authorization request: PKCE S256, state, nonce, loopback redirect on 127.0.0.1 with a port.
  assert.ok(authUrl);
  assert.equal(authUrl.origin + authUrl.pathname, `${idp.issuer}/auth`);
  const p = authUrl.searchParams;
  assert.equal(p.get('code_challenge_method'), 'S256');
  assert.match(p.get('code_challenge') ?? '', /^[A-Za-z0-9_-]{43}$/);
  assert.ok((p.get('state') ?? '').length >= 32 && (p.get('nonce') ?? '').length >= 32);
  assert.match(p.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d{2,5}\/callback$/);
  assert.equal(p.get('scope'), 'openid offline_access api');

  // The browser lands on the loopback's fixed success page.
  await page.waitForSelector('#title');
  assert.equal(await page.textContent('#title'), 'Signed in');
  assert.match(page.url(), /^http:\/\/127\.0\.0\.1:\d+\/callback\?/);

  assert.equal(result.flow, 'authorization_code');
  assert.equal(result.hasRefreshToken, true);
  assert.equal(result.issuer, idp.issuer, 'the ID token was validated against the discovered issuer');
  const stored = await storedGrant(h);
  assert.ok(stored?.refreshToken);
  assert.equal(stored.issuer, idp.issuer);
  assert.equal(stored.clientId, 'public-client');
  assert.equal(stored.tokenEndpoint, `${idp.issuer}/token`);

  const token = await lk.token('idp');
  assert.equal(token, stored.accessToken);
  assert.equal(await idp.protectedStatus(token), 200);

  idp.stats.reset();
  const fresh = await lk.engine.refreshNow('idp');
  assert.notEqual(fresh, token);
  assert.equal(idp.stats.refreshSuccesses, 1, 'refreshed through the real IdP');
  const rotated = await storedGrant(h);
  assert.ok(rotated?.refreshToken && rotated.refreshToken !== stored.refreshToken, 'the refresh token rotated');
  assert.equal(await idp.protectedStatus(fresh), 200);
  assertNoSecrets(rec.secrets, JSON.stringify(result));
  await lk.close();
});

for (const [clientId, auth, secret] of [
  ['basic-client', 'client_secret_basic', 'basic-secret'],
  ['post-client', 'client_secret_post', 'post-secret'],
] as const) {
  test(`login with configured endpoints (no discovery, no openid) and a confidential client (${auth})`, { timeout: 30_000 }, async (t) => {
    const h = await makeHome({
      version: 1,
      sources: {
        idp: {
          oauth: {
            authorizationEndpoint: idp.authorizationEndpoint,
            tokenEndpoint: idp.tokenEndpoint,
            clientId,
            clientSecret: 'env:IDP_CLIENT_SECRET',
            clientAuth: auth,
            scope: 'offline_access api',
            authorizationParams: { prompt: 'consent', ui_locales: 'en' },
          },
        },
      },
    });
    t.after(() => h.cleanup());
    const rec = recordingFetch();
    const lk = await openLatchkey({ home: h.home, env: { IDP_CLIENT_SECRET: secret }, fetch: rec.fetch });
    let page = '';
    const result = await loginWithAuthorizationCode(lk, 'idp', {
      timeoutMs: 20_000,
      onUrl: (url) => {
        const u = new URL(url);
        assert.equal(u.searchParams.get('nonce'), null, 'no nonce without openid');
        assert.equal(u.searchParams.get('prompt'), 'consent', 'authorizationParams are sent');
        assert.equal(u.searchParams.get('ui_locales'), 'en');
        void authorizeOverHttp(url).then(async (cb) => {
          const res = await fetch(cb);
          page = await res.text();
        });
      },
    });
    assert.equal(result.hasRefreshToken, true);
    assert.equal(result.issuer, undefined, 'no ID token, no issuer');
    const stored = await storedGrant(h);
    assert.equal(stored?.clientId, clientId);
    assert.equal(await idp.protectedStatus(await lk.token('idp')), 200);
    const fresh = await lk.engine.refreshNow('idp');
    assert.equal(await idp.protectedStatus(fresh), 200, 'refresh with the client secret works');
    await waitFor(() => page !== '');
    assert.match(page, /Signed in/);
    assertNoSecrets([...rec.secrets, secret], JSON.stringify(result), page);
    await lk.close();
  });
}

test('a token response with Slack\'s token_type "bot" is accepted (sent as Bearer); an unknown token type is refused', { timeout: 30_000 }, async (t) => {
  const h = await makeHome({
    version: 1,
    sources: { idp: { oauth: { authorizationEndpoint: idp.authorizationEndpoint, tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client', scope: 'offline_access api' } } },
  });
  t.after(() => h.cleanup());
  t.after(() => idp.setFault(null));
  const lk = await openLatchkey({ home: h.home, env: {} });
  const login = () =>
    loginWithAuthorizationCode(lk, 'idp', {
      timeoutMs: 20_000,
      onUrl: (url) =>
        void authorizeOverHttp(url).then((cb) => {
          idp.setFault({ kind: 'json', body: { ok: true, access_token: 'xoxb-bot-token', token_type: type, refresh_token: 'xoxe-1-refresh', expires_in: 43_200 }, times: 1 });
          return fetch(cb);
        }),
    });
  let type = 'bot';
  const result = await login();
  assert.equal(result.hasRefreshToken, true);
  assert.equal((await storedGrant(h))?.accessToken, 'xoxb-bot-token');
  type = 'mac';
  await assert.rejects(login(), /token_type|not usable/);
  assert.equal((await storedGrant(h))?.accessToken, 'xoxb-bot-token', 'the grant is untouched');
  await lk.close();
});

test('login replaces an existing grant for the source, under its lock', { timeout: 30_000 }, async (t) => {
  const h = await issuerOnlyHome();
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env: {} });
  const old = await idp.mintGrant({ scope: 'openid offline_access api' });
  await lk.installGrant('idp', old);
  await loginWithAuthorizationCode(lk, 'idp', { timeoutMs: 20_000, onUrl: (url) => void authorizeOverHttp(url).then((cb) => fetch(cb)) });
  const stored = await storedGrant(h);
  assert.ok(stored && stored.accessToken !== old.access_token && stored.refreshToken !== old.refresh_token);
  assert.equal(await lk.token('idp'), stored.accessToken);
  await lk.close();
});

test('CLI: latchkey login --no-browser prints the URL on stderr, waits, stores the grant, prints one line without the token', { timeout: 30_000 }, async (t) => {
  const h = await issuerOnlyHome();
  t.after(() => h.cleanup());
  let driven = false;
  let callbackPage = '';
  const stderr = captureStream((all) => {
    const m = /(http:\/\/127\.0\.0\.1:\d+\/auth\?\S+)/.exec(all);
    if (m?.[1] && !driven) {
      driven = true;
      void authorizeOverHttp(m[1]).then(async (cb) => {
        callbackPage = await (await fetch(cb)).text();
      });
    }
  });
  const stdout = captureStream();
  const code = await main(['login', 'idp', '--no-browser', '--timeout', '20'], { stdout, stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home } });
  assert.equal(code, 0, stderr.text());
  assert.match(stderr.text(), /To sign in to "idp", open this URL in a browser/);
  assert.match(stdout.text(), /^logged in to "idp" \(browser, authorization code \+ PKCE; refresh token: yes; access token expires \S+; scope "[^"]*"\)\n$/);
  await waitFor(() => callbackPage !== '');
  const stored = await storedGrant(h);
  assert.ok(stored?.refreshToken);
  assertNoSecrets([stored.accessToken, stored.refreshToken], stdout.text(), stderr.text(), callbackPage);
  const lk: Latchkey = await openLatchkey({ home: h.home, env: {} });
  assert.equal(await idp.protectedStatus(await lk.token('idp')), 200);
  await lk.close();
});

test('CLI: a login nobody completes times out with exit 4, the reason and the fix', { timeout: 30_000 }, async (t) => {
  const h = await issuerOnlyHome();
  t.after(() => h.cleanup());
  const stdout = captureStream();
  const stderr = captureStream();
  const code = await main(['login', 'idp', '--timeout', '1'], { stdout, stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home } });
  assert.equal(code, 4, stderr.text());
  assert.match(stderr.text(), /open this URL in a browser/, 'stdout is not a terminal: no browser, the URL is printed');
  assert.match(stderr.text(), /latchkey: login timed out after 1 s waiting for the browser to return to http:\/\/127\.0\.0\.1:\d+\/callback; nothing was stored/);
  assert.match(stderr.text(), /fix: latchkey login idp/);
  assert.equal(stdout.text(), '');
});

test('CLI: login and logout have --help; bad arguments are usage errors (exit 1)', async (t) => {
  const h = await issuerOnlyHome();
  t.after(() => h.cleanup());
  for (const cmd of ['login', 'logout']) {
    const out = captureStream();
    assert.equal(await main([cmd, '--help'], { stdout: out, stderr: captureStream(), stdin: process.stdin, env: {} }), 0);
    assert.match(out.text(), /Usage: latchkey/);
  }
  const cases: Array<[string[], RegExp]> = [
    [['login'], /expected exactly one source name/],
    [['login', 'idp', '--timeout', 'soon'], /--timeout takes a number of seconds/],
    [['login', 'idp', '--timeout=-5'], /--timeout takes a number of seconds/],
    [['login', 'idp', '--device', '--timeout', '5'], /device login ends when its code expires/],
    [['login', 'nope', '--no-browser'], /unknown source "nope"/],
    [['logout', 'a', 'b'], /expected exactly one source name/],
  ];
  for (const [args, message] of cases) {
    const err = captureStream();
    const code = await main(args, { stdout: captureStream(), stderr: err, stdin: process.stdin, env: { LATCHKEY_HOME: h.home } });
    assert.equal(code, 1, `${args.join(' ')}: ${err.text()}`);
    assert.match(err.text(), message);
  }
});

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const start = Date.now();
  while (!cond()) {
    if (Date.now() - start > timeoutMs) throw new Error('waitFor: timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}
