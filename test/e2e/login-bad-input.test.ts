/**
 * Hostile or garbage input at every step of a browser login, against the real IdP. Each case
 * asserts a clear message, exit code 4 (action required), that an existing grant in store.json
 * is byte-for-byte untouched, and that no secret (code, verifier, token) appears in the error,
 * its inspected form, or the page the browser is shown.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, test } from 'node:test';
import { LatchkeyError } from '../../src/core/errors.js';
import { openLatchkey } from '../../src/latchkey.js';
import { loginWithAuthorizationCode } from '../../src/login/authorization-code.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { assertNoSecrets, authorizeOverHttp, recordingFetch, storeBytes } from './login-support.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp.close();
});

const SCOPE = 'openid offline_access api';

interface Page {
  status: number;
  html: string;
  location: string | null;
}

interface AuthRequest {
  url: URL;
  redirectUri: string;
  state: string;
  nonce: string;
  /** Secrets the test itself handled (e.g. the code in a callback it forged). */
  secrets: Set<string>;
}

/** A profile with a source that knows only its issuer, and an existing grant in the store. */
async function homeWithGrant(): Promise<{ h: TempHome; grantSecrets: string[] }> {
  const h = await makeHome({ version: 1, sources: { idp: { oauth: { issuer: idp.issuer, clientId: 'public-client', scope: SCOPE } } } });
  const lk = await openLatchkey({ home: h.home, env: {} });
  const grant = await idp.mintGrant({ scope: SCOPE });
  await lk.installGrant('idp', grant);
  await lk.close();
  return { h, grantSecrets: [grant.access_token, grant.refresh_token] };
}

async function fetchPage(url: string | URL): Promise<Page> {
  const res = await fetch(url, { redirect: 'manual', signal: AbortSignal.timeout(20_000) });
  return { status: res.status, html: await res.text(), location: res.headers.get('location') };
}

/**
 * Runs a login whose authorization response is produced by `deliver` (the browser's part,
 * played by the test), expects it to fail, and checks the invariants every failure keeps.
 */
async function failedLogin(
  t: { after(fn: () => unknown): void },
  deliver: (req: AuthRequest) => Promise<Page | undefined>,
  options: { timeoutMs?: number } = {},
): Promise<{ err: LatchkeyError; page: Page | undefined }> {
  const { h, grantSecrets } = await homeWithGrant();
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  assert.ok(before, 'the existing grant is stored');
  const rec = recordingFetch();
  const lk = await openLatchkey({ home: h.home, env: {}, fetch: rec.fetch });
  let delivered: Promise<Page | undefined> = Promise.resolve(undefined);
  const own = new Set<string>();
  const err = await loginWithAuthorizationCode(lk, 'idp', {
    timeoutMs: options.timeoutMs ?? 20_000,
    onUrl: (href, info) => {
      const url = new URL(href);
      delivered = deliver({ url, redirectUri: info.redirectUri, state: url.searchParams.get('state')!, nonce: url.searchParams.get('nonce')!, secrets: own });
      delivered.catch(() => undefined);
    },
  }).then(
    () => assert.fail('the login should have failed'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof LatchkeyError, `expected a LatchkeyError, got ${String(err)}`);
  const page = await delivered;
  assert.deepEqual(await storeBytes(h.storePath), before, 'store.json is byte-for-byte untouched');
  assert.equal(err.exitCode, 4, `exit code 4 for: ${err.message}`);
  assert.equal(err.code, 'LK_LOGIN_FAILED');
  assert.match(err.message, /nothing was stored/);
  assert.equal(err.fix, 'latchkey login idp');
  assertNoSecrets([...rec.secrets, ...own, ...grantSecrets], err.message, err.fix, err, page?.html ?? '');
  // The existing grant still works.
  const again = await openLatchkey({ home: h.home, env: {} });
  assert.equal(await again.token('idp'), (JSON.parse(before.toString('utf8')) as { sources: { idp: { grant: { accessToken: string } } } }).sources.idp.grant.accessToken);
  await again.close();
  await lk.close();
  return { err, page };
}

/** Drives the real login and returns the callback URL the IdP redirected to (not yet delivered). */
async function realCallback(req: AuthRequest): Promise<URL> {
  const cb = await authorizeOverHttp(req.url.href);
  const code = cb.searchParams.get('code');
  if (code) req.secrets.add(code);
  return cb;
}

test('wrong state on the callback: rejected, error page, grant untouched', async (t) => {
  const { err, page } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    cb.searchParams.set('state', 'forged-state-value');
    return fetchPage(cb);
  });
  assert.match(err.message, /state that does not belong to this login/);
  assert.equal(page?.status, 400);
  assert.match(page?.html ?? '', /Sign-in failed/);
  assert.equal(page?.location, null, 'the error page never redirects');
});

test('missing state on the callback: rejected', async (t) => {
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    cb.searchParams.delete('state');
    return fetchPage(cb);
  });
  assert.match(err.message, /no state parameter/);
});

test('missing code on the callback: rejected', async (t) => {
  const { err, page } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    cb.searchParams.delete('code');
    return fetchPage(cb);
  });
  assert.match(err.message, /has no authorization code/);
  assert.equal(page?.status, 400);
});

test('two codes on the callback: rejected', async (t) => {
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    cb.searchParams.append('code', 'second-code-value');
    return fetchPage(cb);
  });
  assert.match(err.message, /authorization response is invalid|more than one/);
});

test('error redirect (access_denied with a description): rejected with the IdP reason, escape sequences neutralised', async (t) => {
  const { err, page } = await failedLogin(t, async (req) => {
    const cb = new URL(req.redirectUri);
    cb.searchParams.set('error', 'access_denied');
    cb.searchParams.set('error_description', 'The user declined \u001b[31mred\u001b[0m <script>alert(1)</script>');
    cb.searchParams.set('state', req.state);
    cb.searchParams.set('iss', idp.issuer);
    return fetchPage(cb);
  });
  assert.match(err.message, /the sign-in was denied \(access_denied: The user declined/);
  assert.ok(!err.message.includes('\u001b'), 'no terminal escape sequence reaches the terminal');
  assert.ok(!(page?.html ?? '').includes('<script>alert(1)'), 'the page escapes the description');
});

test('error redirect with a different error code: rejected', async (t) => {
  const { err } = await failedLogin(t, async (req) => {
    const cb = new URL(req.redirectUri);
    cb.search = new URLSearchParams({ error: 'invalid_scope', state: req.state, iss: idp.issuer }).toString();
    return fetchPage(cb);
  });
  assert.match(err.message, /the IdP returned an error \(invalid_scope\)/);
});

test('an authorization response from another issuer (RFC 9207 mix-up): rejected', async (t) => {
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    cb.searchParams.set('iss', 'https://evil.example');
    return fetchPage(cb);
  });
  assert.match(err.message, /names a different issuer/);
});

test('malformed token response (not JSON): rejected, grant untouched', async (t) => {
  t.after(() => idp.setFault(null));
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    idp.setFault({ kind: 'malformed', times: 1 });
    return fetchPage(cb);
  });
  assert.match(err.message, /exchanging the authorization code failed: the token endpoint's answer is not a valid token response/);
});

test('token response with canary tokens but an ID token that is not a JWT: rejected, canaries never printed', async (t) => {
  t.after(() => idp.setFault(null));
  const canary = { access_token: 'CANARY-access-7f3a9c1e', refresh_token: 'CANARY-refresh-2b8d4e6f', id_token: 'CANARY-not-a-jwt-5e1d', token_type: 'Bearer', expires_in: 60 };
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    for (const v of Object.values(canary)) if (typeof v === 'string' && v.startsWith('CANARY')) req.secrets.add(v);
    idp.setFault({ kind: 'json', body: canary, times: 1 });
    return fetchPage(cb);
  });
  assert.match(err.message, /not a valid token response/);
});

test('token response without the ID token an openid login requires: rejected', async (t) => {
  t.after(() => idp.setFault(null));
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    req.secrets.add('CANARY-access-no-idtoken');
    idp.setFault({ kind: 'json', body: { access_token: 'CANARY-access-no-idtoken', token_type: 'Bearer' }, times: 1 });
    return fetchPage(cb);
  });
  assert.match(err.message, /id_token/);
});

test('token endpoint refuses the code (invalid_grant): rejected with the reason', async (t) => {
  t.after(() => idp.setFault(null));
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    idp.setFault({ kind: 'status', status: 400, body: JSON.stringify({ error: 'invalid_grant', error_description: 'code expired' }), times: 1 });
    return fetchPage(cb);
  });
  assert.match(err.message, /the IdP refused it: invalid_grant: code expired \(HTTP 400\)/);
});

test('token endpoint refuses the code with HTTP 200 and an error body (GitHub-style): rejected with the reason', async (t) => {
  t.after(() => idp.setFault(null));
  const { err } = await failedLogin(t, async (req) => {
    const cb = await realCallback(req);
    idp.setFault({ kind: 'status', status: 200, body: JSON.stringify({ error: 'bad_verification_code', error_description: 'The code passed is incorrect or expired.' }), times: 1 });
    return fetchPage(cb);
  });
  assert.match(err.message, /the IdP refused it: bad_verification_code: The code passed is incorrect or expired\. \(HTTP 200\)/);
});

/**
 * A nonce mismatch from the real IdP: an attacker who saw this login's authorization URL makes
 * their own authorization request with the same PKCE challenge and redirect URI but their own
 * nonce, signs in, and injects the resulting code into this login's callback (with the right
 * state). PKCE passes (same challenge, Latchkey holds the verifier), so only the ID token's
 * nonce reveals the code was not issued for this login.
 */
test('nonce mismatch (a code from another authorization request, injected with the right state): rejected', async (t) => {
  const { err, page } = await failedLogin(t, async (req) => {
    const attackerRequest = new URL(req.url);
    attackerRequest.searchParams.set('nonce', 'attacker-chosen-nonce-0123456789abcdef');
    const cb = await authorizeOverHttp(attackerRequest.href, 'mallory');
    const code = cb.searchParams.get('code');
    assert.ok(code);
    req.secrets.add(code);
    assert.equal(cb.searchParams.get('state'), req.state);
    return fetchPage(cb);
  });
  assert.match(err.message, /the ID token's nonce does not match this login/);
  assert.equal(page?.status, 400);
});

test('login timeout: a clear error naming the timeout, exit 4, grant untouched', async (t) => {
  const started = Date.now();
  const { err } = await failedLogin(t, async () => undefined, { timeoutMs: 1_000 });
  assert.match(err.message, /login timed out after 1 s waiting for the browser to return to http:\/\/127\.0\.0\.1:\d+\/callback/);
  assert.ok(Date.now() - started < 10_000);
});

test('an aborted login (signal): cancelled, loopback closed, grant untouched', async (t) => {
  const { h } = await homeWithGrant();
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const lk = await openLatchkey({ home: h.home, env: {} });
  const ac = new AbortController();
  let redirectUri = '';
  const err = await loginWithAuthorizationCode(lk, 'idp', {
    signal: ac.signal,
    onUrl: (_u, info) => {
      redirectUri = info.redirectUri;
      setTimeout(() => ac.abort(), 50);
    },
  }).catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.match(err.message, /login cancelled/);
  assert.deepEqual(await storeBytes(h.storePath), before);
  await assert.rejects(fetch(redirectUri, { signal: AbortSignal.timeout(2_000) }), 'the loopback server is closed');
  await lk.close();
});

test('a browser launcher that fails stops the login at once', async (t) => {
  const { h } = await homeWithGrant();
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const lk = await openLatchkey({ home: h.home, env: {} });
  const err = await loginWithAuthorizationCode(lk, 'idp', { timeoutMs: 30_000, openUrl: async () => Promise.reject(new Error('no display')) }).catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.match(err.message, /could not open the browser: no display/);
  assert.deepEqual(await storeBytes(h.storePath), before);
  await lk.close();
});

/** A raw HTTP request (so the Host header and method can be anything). */
function rawRequest(port: number, path: string, opts: { method?: string; host?: string } = {}): Promise<Page> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers: { host: opts.host ?? `127.0.0.1:${port}` } }, (res) => {
      let html = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (html += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, html, location: res.headers.location ?? null }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('the loopback server ignores everything but GET /callback; no `next` can redirect the browser', async (t) => {
  const { h } = await homeWithGrant();
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const lk = await openLatchkey({ home: h.home, env: {} });
  let probes: Page[] = [];
  let final: Page | undefined;
  let browserDone: Promise<void> = Promise.resolve();
  const result = await loginWithAuthorizationCode(lk, 'idp', {
    timeoutMs: 20_000,
    onUrl: (href, info) => {
      const port = Number(new URL(info.redirectUri).port);
      browserDone = (async () => {
        const state = new URL(href).searchParams.get('state')!;
        probes = [
          await rawRequest(port, `/?next=https://evil.example/&state=${state}&code=x`),
          await rawRequest(port, `/callback/../evil?state=${state}&code=x`),
          await rawRequest(port, `/callbackx?state=${state}&code=x`),
          await rawRequest(port, '/favicon.ico'),
          await rawRequest(port, `/callback?state=${state}&code=x`, { method: 'POST' }),
          await rawRequest(port, `/callback?state=${state}&code=x`, { host: 'evil.example' }),
          await rawRequest(port, `/callback?state=${state}&code=x`, { host: `localhost:${port}` }),
        ];
        const cb = await authorizeOverHttp(href);
        cb.searchParams.set('next', 'https://evil.example/steal');
        cb.searchParams.set('redirect', 'https://evil.example/steal');
        final = await fetchPage(cb);
      })();
    },
  });
  await browserDone;
  assert.deepEqual(
    probes.map((p) => p.status),
    [404, 404, 404, 404, 405, 400, 400],
  );
  for (const p of probes) assert.equal(p.location, null);
  assert.equal(result.hasRefreshToken, true, 'the login still completed with the real callback');
  assert.ok(final);
  assert.equal(final.status, 200);
  assert.equal(final.location, null, 'no redirect anywhere');
  assert.match(final.html, /Signed in/);
  assert.ok(!final.html.includes('evil.example'), 'the page does not echo the next parameter');
  assert.notDeepEqual(await storeBytes(h.storePath), before, 'the new grant replaced the old one');
  // After the login the callback is closed: a late second callback cannot reach anything.
  await lk.close();
});
