/**
 * Proves the e2e fixtures are the real thing: a real oidc-provider with rotation and reuse
 * detection, a real protected resource, faults only where asked, the session app's CSRF
 * behaviour, and real headless Chromium driving the login page and a CDP-attached browser.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium } from 'playwright-core';
import { launchBrowser, launchChromeWithCdp, skipUnlessBrowser } from '../fixtures/browser.js';
import { pkcePair, startIdp, TEST_CLIENTS, type Idp, type TokenResponse } from '../fixtures/idp.js';
import { startIdpProcess } from '../fixtures/idp-process.js';
import { CSRF_COOKIE, CSRF_HEADER, SESSION_COOKIE, startSessionApp, type SessionApp } from '../fixtures/session-app.js';

const T = 10_000;

/** A refresh through nothing but fetch, with the client's own authentication. */
async function refreshWithFetch(
  idp: Idp,
  refreshToken: string,
  clientId: keyof typeof TEST_CLIENTS = 'public-client',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const client = TEST_CLIENTS[clientId];
  const body = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken });
  const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded' };
  if (client.authMethod === 'client_secret_basic') {
    headers.authorization = `Basic ${Buffer.from(`${client.clientId}:${client.clientSecret}`).toString('base64')}`;
  } else {
    body.set('client_id', client.clientId);
    if (client.clientSecret) body.set('client_secret', client.clientSecret);
  }
  const res = await fetch(idp.tokenEndpoint, { method: 'POST', headers, body, signal: AbortSignal.timeout(T) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function callProtected(idp: Idp, accessToken: string): Promise<Response> {
  return fetch(idp.protectedUrl, { headers: { authorization: `Bearer ${accessToken}` }, signal: AbortSignal.timeout(T) });
}

/** Extracts the first form (action + every input name/value) from an HTML page. */
function parseForm(html: string, base: string): { action: string; fields: URLSearchParams } {
  const form = /<form\b[^>]*>([\s\S]*?)<\/form>/i.exec(html);
  assert.ok(form, `no form in page: ${html.slice(0, 300)}`);
  const action = /action="([^"]*)"/i.exec(form[0])?.[1] ?? base;
  const fields = new URLSearchParams();
  for (const m of form[1]?.matchAll(/<input\b[^>]*>/gi) ?? []) {
    const name = /name="([^"]*)"/i.exec(m[0])?.[1];
    const value = /value="([^"]*)"/i.exec(m[0])?.[1] ?? '';
    if (name) fields.set(name, value.replace(/&#(\d+);/g, (_s, n: string) => String.fromCharCode(Number(n))));
  }
  return { action: new URL(action, base).href, fields };
}

class Jar {
  readonly cookies = new Map<string, string>();
  store(res: Response): void {
    for (const c of res.headers.getSetCookie()) {
      const [pair = ''] = c.split(';');
      const eq = pair.indexOf('=');
      const value = pair.slice(eq + 1);
      if (/max-age=0|expires=thu, 01 jan 1970/i.test(c) || value === '') this.cookies.delete(pair.slice(0, eq));
      else this.cookies.set(pair.slice(0, eq), value);
    }
  }
  header(): string {
    return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
  }
}

describe('test IdP (real oidc-provider)', () => {
  let idp: Idp;
  before(async () => {
    idp = await startIdp();
  });
  after(async () => {
    await idp?.close();
  });

  test('discovery advertises the real endpoints', { timeout: 30_000 }, async () => {
    const res = await fetch(idp.discoveryUrl, { signal: AbortSignal.timeout(T) });
    assert.equal(res.status, 200);
    const d = (await res.json()) as Record<string, unknown>;
    assert.equal(d.issuer, idp.issuer);
    assert.equal(d.token_endpoint, idp.tokenEndpoint);
    assert.equal(d.authorization_endpoint, idp.authorizationEndpoint);
    assert.equal(d.device_authorization_endpoint, idp.deviceAuthorizationEndpoint);
    assert.equal(d.revocation_endpoint, idp.revocationEndpoint);
    assert.deepEqual(d.code_challenge_methods_supported, ['S256']);
    assert.ok((d.grant_types_supported as string[]).includes('refresh_token'));
  });

  test('mintGrant works for all three clients', { timeout: 30_000 }, async () => {
    for (const clientId of Object.keys(TEST_CLIENTS)) {
      const g = await idp.mintGrant({ clientId });
      assert.ok(g.access_token && g.refresh_token, clientId);
      assert.equal(g.token_type, 'Bearer');
      assert.equal(g.expires_in, 60);
      assert.deepEqual(g.scope.split(' ').sort(), ['api', 'offline_access', 'openid']);
      assert.ok(g.id_token, 'openid scope gives an id_token');
      const res = await callProtected(idp, g.access_token);
      assert.equal(res.status, 200);
      const me = (await res.json()) as Record<string, unknown>;
      assert.equal(me.ok, true);
      assert.equal(me.sub, 'alice');
      assert.equal(me.client_id, clientId);
      // a second grant for the same client is a different grant
      const other = await idp.mintGrant({ clientId, login: 'bob' });
      assert.notEqual(await idp.grantIdOf(other.refresh_token), await idp.grantIdOf(g.refresh_token));
    }
  });

  test('PKCE is required and the loopback redirect port is free', { timeout: 30_000 }, async () => {
    const base = new URL(
      idp.authorizationUrl({ redirectUri: 'http://127.0.0.1:1234/callback', state: 's', codeChallenge: pkcePair().challenge }),
    );
    base.searchParams.delete('code_challenge');
    base.searchParams.delete('code_challenge_method');
    const noPkce = await fetch(base, { redirect: 'manual', signal: AbortSignal.timeout(T) });
    assert.equal(noPkce.status, 303);
    assert.match(noPkce.headers.get('location') ?? '', /error=invalid_request/);
    const wrongPath = idp.authorizationUrl({
      redirectUri: 'http://127.0.0.1:1234/elsewhere',
      state: 's',
      codeChallenge: pkcePair().challenge,
    });
    const bad = await fetch(wrongPath, { redirect: 'manual', signal: AbortSignal.timeout(T) });
    assert.equal(bad.status, 400, 'unregistered redirect path is refused outright');
    for (const port of [1024, 65000]) {
      const g = await idp.mintGrant({ redirectUri: `http://127.0.0.1:${port}/callback` });
      assert.ok(g.refresh_token);
    }
  });

  test('refresh rotates; a replayed refresh token revokes the whole grant', { timeout: 30_000 }, async () => {
    const g = await idp.mintGrant();
    const grantId = await idp.grantIdOf(g.refresh_token);
    assert.ok(grantId);
    idp.stats.reset();

    const r1 = await refreshWithFetch(idp, g.refresh_token);
    assert.equal(r1.status, 200);
    const rotated = r1.body.refresh_token as string;
    assert.ok(rotated && rotated !== g.refresh_token, 'refresh token rotated');
    assert.notEqual(r1.body.access_token, g.access_token);
    assert.equal((await callProtected(idp, r1.body.access_token as string)).status, 200);

    const replay = await refreshWithFetch(idp, g.refresh_token);
    assert.equal(replay.status, 400);
    assert.equal(replay.body.error, 'invalid_grant');

    const afterReplay = await refreshWithFetch(idp, rotated);
    assert.equal(afterReplay.status, 400, 'the rotated token died with the grant');
    assert.equal(afterReplay.body.error, 'invalid_grant');
    assert.equal(await idp.hasGrant(grantId), false, 'the grant is gone at the IdP');
    assert.equal((await callProtected(idp, r1.body.access_token as string)).status, 401, 'its access tokens too');

    assert.equal(idp.stats.revokedGrants, 1);
    assert.equal(idp.stats.refreshRequests, 3);
    assert.equal(idp.stats.refreshSuccesses, 1);
    assert.equal(idp.stats.refreshFailures, 2);
  });

  test('confidential clients rotate too (basic and post auth)', { timeout: 30_000 }, async () => {
    for (const clientId of ['basic-client', 'post-client'] as const) {
      const g = await idp.mintGrant({ clientId });
      const r = await refreshWithFetch(idp, g.refresh_token, clientId);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.notEqual(r.body.refresh_token, g.refresh_token);
      const wrongClient = await refreshWithFetch(idp, r.body.refresh_token as string, 'public-client');
      assert.equal(wrongClient.status, 400);
    }
  });

  test('two racing refreshes with one token: at most one wins and the grant is revoked', { timeout: 30_000 }, async () => {
    const g = await idp.mintGrant();
    const grantId = await idp.grantIdOf(g.refresh_token);
    idp.stats.reset();
    const results = await Promise.all([refreshWithFetch(idp, g.refresh_token), refreshWithFetch(idp, g.refresh_token)]);
    const statuses = results.map((r) => r.status).sort();
    assert.deepEqual(statuses, [200, 400]);
    const winner = results.find((r) => r.status === 200);
    assert.equal((await refreshWithFetch(idp, winner?.body.refresh_token as string)).status, 400);
    assert.equal(await idp.hasGrant(grantId ?? ''), false);
    assert.equal(idp.stats.revokedGrants, 1);
  });

  test('revokeGrantOf and the revocation endpoint really revoke', { timeout: 30_000 }, async () => {
    idp.stats.reset();
    const g = await idp.mintGrant();
    assert.equal(await idp.revokeGrantOf(g.refresh_token), true);
    assert.equal((await refreshWithFetch(idp, g.refresh_token)).status, 400);
    assert.equal((await callProtected(idp, g.access_token)).status, 401);
    assert.equal(idp.stats.adminRevokedGrants, 1);
    assert.equal(idp.stats.revokedGrants, 0, 'admin revocation is not reuse detection');

    const h = await idp.mintGrant({ clientId: 'basic-client' });
    const rev = await idp.tokenRequest('basic-client', {});
    assert.equal(rev.status, 400, 'sanity: empty token request is refused');
    const res = await fetch(idp.revocationEndpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        authorization: `Basic ${Buffer.from('basic-client:basic-secret').toString('base64')}`,
      },
      body: new URLSearchParams({ token: h.refresh_token, token_type_hint: 'refresh_token' }),
      signal: AbortSignal.timeout(T),
    });
    assert.equal(res.status, 200);
    assert.equal((await refreshWithFetch(idp, h.refresh_token, 'basic-client')).status, 400);
    assert.equal(idp.stats.revocationEndpointRevokedGrants, 1);
  });

  test('protected resource rejects a missing or bogus token', { timeout: 30_000 }, async () => {
    const none = await fetch(idp.protectedUrl, { signal: AbortSignal.timeout(T) });
    assert.equal(none.status, 401);
    assert.equal(none.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    const bogus = await callProtected(idp, 'not-a-token');
    assert.equal(bogus.status, 401);
  });

  test('device flow: user-code page, login page, token', { timeout: 30_000 }, async () => {
    const start = await fetch(idp.deviceAuthorizationEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ client_id: 'public-client', scope: 'openid offline_access api' }),
      signal: AbortSignal.timeout(T),
    });
    assert.equal(start.status, 200);
    const da = (await start.json()) as { device_code: string; user_code: string; verification_uri: string };
    const pending = await idp.tokenRequest('public-client', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code });
    assert.equal((pending.body as { error?: string }).error, 'authorization_pending');

    const jar = new Jar();
    const go = async (url: string, body?: URLSearchParams): Promise<{ res: Response; text: string; url: string }> => {
      const res = await fetch(url, {
        method: body ? 'POST' : 'GET',
        redirect: 'manual',
        headers: { cookie: jar.header(), ...(body ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        body,
        signal: AbortSignal.timeout(T),
      });
      jar.store(res);
      return { res, text: await res.text(), url };
    };
    // user-code input page
    let step = await go(da.verification_uri);
    assert.equal(step.res.status, 200);
    let form = parseForm(step.text, step.url);
    form.fields.set('user_code', da.user_code);
    // confirm page
    step = await go(form.action, form.fields);
    assert.equal(step.res.status, 200, step.text);
    assert.match(step.text, /id="user-code"/);
    form = parseForm(step.text, step.url);
    step = await go(form.action, form.fields);
    // → login page (same interaction page as the code flow)
    for (let i = 0; i < 8 && step.res.status >= 300 && step.res.status < 400; i += 1) {
      step = await go(new URL(step.res.headers.get('location') ?? '', step.url).href);
    }
    assert.equal(step.res.status, 200);
    assert.match(step.text, /name="login"/);
    form = parseForm(step.text, step.url);
    form.fields.set('login', 'carol');
    step = await go(form.action, form.fields);
    for (let i = 0; i < 8 && step.res.status >= 300 && step.res.status < 400; i += 1) {
      step = await go(new URL(step.res.headers.get('location') ?? '', step.url).href);
    }
    assert.equal(step.res.status, 200);
    assert.match(step.text, /id="success"/);

    const tok = await idp.tokenRequest('public-client', { grant_type: 'urn:ietf:params:oauth:grant-type:device_code', device_code: da.device_code });
    assert.equal(tok.status, 200, JSON.stringify(tok.body));
    const t = tok.body as TokenResponse;
    assert.ok(t.refresh_token);
    const me = (await (await callProtected(idp, t.access_token)).json()) as { sub: string };
    assert.equal(me.sub, 'carol');
    assert.equal((await refreshWithFetch(idp, t.refresh_token)).status, 200);
  });

  describe('token endpoint faults', () => {
    let g: TokenResponse;
    before(async () => {
      g = await idp.mintGrant();
    });
    after(() => idp.setFault(null));

    const refresh = () => idp.tokenRequest('public-client', { grant_type: 'refresh_token', refresh_token: g.refresh_token });

    test('status 500 (default and JSON body), then recovery without burning the token', { timeout: 30_000 }, async () => {
      idp.stats.reset();
      idp.setFault({ kind: 'status', status: 500 });
      const r = await refresh();
      assert.equal(r.status, 500);
      assert.equal(r.body, 'Internal Server Error');
      idp.setFault({ kind: 'status', status: 503, body: '{"error":"temporarily_unavailable"}' });
      const j = await refresh();
      assert.equal(j.status, 503);
      assert.deepEqual(j.body, { error: 'temporarily_unavailable' });
      assert.equal(idp.stats.faultedRequests, 2);
      assert.equal(idp.stats.refreshFailures, 2);
      idp.setFault(null);
      const ok = await refresh();
      assert.equal(ok.status, 200, 'faulted requests never reached oidc-provider');
      g = { ...g, ...(ok.body as TokenResponse) };
    });

    test('malformed: 200 with a non-JSON body', { timeout: 30_000 }, async () => {
      idp.setFault({ kind: 'malformed' });
      const res = await fetch(idp.tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: g.refresh_token, client_id: 'public-client' }),
        signal: AbortSignal.timeout(T),
      });
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /application\/json/);
      const text = await res.text();
      assert.throws(() => JSON.parse(text));
    });

    test('huge: 200 with a 10 MiB body', { timeout: 30_000 }, async () => {
      idp.setFault({ kind: 'huge' });
      const res = await fetch(idp.tokenEndpoint, { method: 'POST', body: 'grant_type=refresh_token', signal: AbortSignal.timeout(T) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-length'), String(10 * 1024 * 1024));
      const buf = await res.arrayBuffer();
      assert.equal(buf.byteLength, 10 * 1024 * 1024);
    });

    test('json: any body and status (a fake invalid_grant does not kill the real grant)', { timeout: 30_000 }, async () => {
      idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_grant', error_description: 'injected' } });
      const r = await refresh();
      assert.equal(r.status, 400);
      assert.deepEqual(r.body, { error: 'invalid_grant', error_description: 'injected' });
      idp.setFault({ kind: 'json', body: { access_token: 'x', token_type: 'Bearer' } });
      const r2 = await refresh();
      assert.equal(r2.status, 200);
      assert.deepEqual(r2.body, { access_token: 'x', token_type: 'Bearer' });
      idp.setFault(null);
      const ok = await refresh();
      assert.equal(ok.status, 200);
      g = { ...g, ...(ok.body as TokenResponse) };
    });

    test('times: the fault applies to the next n requests only', { timeout: 30_000 }, async () => {
      idp.setFault({ kind: 'status', status: 502, times: 2 });
      assert.equal((await refresh()).status, 502);
      assert.equal((await refresh()).status, 502);
      const ok = await refresh();
      assert.equal(ok.status, 200);
      g = { ...g, ...(ok.body as TokenResponse) };
    });

    test('stall: the request is accepted and never answered', { timeout: 30_000 }, async () => {
      idp.stats.reset();
      idp.setFault({ kind: 'stall' });
      const started = Date.now();
      await assert.rejects(
        fetch(idp.tokenEndpoint, { method: 'POST', body: 'grant_type=refresh_token', signal: AbortSignal.timeout(400) }),
        (err: Error) => err.name === 'TimeoutError',
      );
      assert.ok(Date.now() - started >= 350);
      assert.equal(idp.stats.tokenRequests, 1);
      assert.equal(idp.stats.faultedRequests, 1);
      idp.setFault(null);
    });

    test('close() does not hang on a stalled request', { timeout: 30_000 }, async () => {
      const other = await startIdp();
      other.setFault({ kind: 'stall' });
      const pendingFetch = fetch(other.tokenEndpoint, { method: 'POST', body: 'x=1', signal: AbortSignal.timeout(20_000) }).then(
        () => 'answered',
        () => 'failed',
      );
      for (let i = 0; i < 100 && other.stats.tokenRequests === 0; i += 1) await sleep(20);
      assert.equal(other.stats.tokenRequests, 1);
      const t0 = Date.now();
      await other.close();
      assert.ok(Date.now() - t0 < 2_000, 'closed promptly');
      assert.equal(await pendingFetch, 'failed');
    });
  });
});

describe('test IdP with a 2 s access token', () => {
  let idp: Idp;
  before(async () => {
    // 2 s, not 1: oidc-provider counts expiry from a whole-second clock, so a 1 s token can be
    // dead a moment after it is minted (a flaky first call on a loaded machine); a 2 s one lives
    // at least 1 s.
    idp = await startIdp({ accessTokenTtl: 2 });
  });
  after(async () => {
    await idp?.close();
  });

  test('the protected resource accepts a valid token and rejects an expired one', { timeout: 30_000 }, async () => {
    const g = await idp.mintGrant();
    assert.equal(g.expires_in, 2);
    idp.stats.reset();
    assert.equal((await callProtected(idp, g.access_token)).status, 200);
    await sleep(2_100);
    const expired = await callProtected(idp, g.access_token);
    assert.equal(expired.status, 401);
    assert.equal(expired.headers.get('www-authenticate'), 'Bearer error="invalid_token"');
    const r = await refreshWithFetch(idp, g.refresh_token);
    assert.equal(r.status, 200);
    assert.equal((await callProtected(idp, r.body.access_token as string)).status, 200);
    assert.equal(idp.stats.protectedOk, 2);
    assert.equal(idp.stats.protectedUnauthorized, 1);
  });
});

describe('test IdP as a separate process (idp-server)', () => {
  test('prints its endpoints, serves the control API, stops on SIGTERM', { timeout: 60_000 }, async () => {
    const proc = await startIdpProcess({ accessTtl: 2 });
    try {
      assert.match(proc.info.issuer, /^http:\/\/127\.0\.0\.1:\d+$/);
      assert.equal(proc.info.controlUrl, `${proc.info.issuer}/__control`);
      const g = await proc.mintGrant({ clientId: 'basic-client' });
      assert.equal(g.expires_in, 2);
      const res = await fetch(proc.info.tokenEndpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/x-www-form-urlencoded',
          authorization: `Basic ${Buffer.from('basic-client:basic-secret').toString('base64')}`,
        },
        body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: g.refresh_token }),
        signal: AbortSignal.timeout(T),
      });
      assert.equal(res.status, 200);
      const t = (await res.json()) as TokenResponse;
      const me = await fetch(proc.info.protectedUrl, { headers: { authorization: `Bearer ${t.access_token}` }, signal: AbortSignal.timeout(T) });
      assert.equal(me.status, 200);
      const s = await proc.stats();
      assert.equal(s.refreshSuccesses, 1);
      assert.equal(s.protectedOk, 1);
      await proc.setFault({ kind: 'status', status: 500, times: 1 });
      const faulted = await fetch(proc.info.tokenEndpoint, { method: 'POST', body: 'grant_type=refresh_token', signal: AbortSignal.timeout(T) });
      assert.equal(faulted.status, 500);
      await proc.resetStats();
      assert.equal((await proc.stats()).tokenRequests, 0);
      assert.equal(await proc.revokeGrantOf(t.refresh_token), true);
    } finally {
      await proc.close();
    }
  });
});

describe('session app (HubSpot-like cookie + CSRF)', () => {
  let app: SessionApp;
  before(async () => {
    app = await startSessionApp();
  });
  after(async () => {
    await app?.close();
  });

  test('stale CSRF gives 401; a renew or a reload fixes it; an expired session does not', { timeout: 30_000 }, async () => {
    const jar = new Jar();
    const get = async (url: string, headers: Record<string, string> = {}): Promise<Response> => {
      const res = await fetch(url, { redirect: 'manual', headers: { cookie: jar.header(), ...headers }, signal: AbortSignal.timeout(T) });
      jar.store(res);
      return res;
    };
    const login = await get(app.loginUrl);
    assert.equal(login.status, 302);
    assert.equal(login.headers.get('location'), '/app');
    const setCookies = login.headers.getSetCookie();
    assert.ok(setCookies.some((c) => c.startsWith(`${SESSION_COOKIE}=`) && /HttpOnly/i.test(c)));
    assert.ok(setCookies.some((c) => c.startsWith(`${CSRF_COOKIE}=`) && !/HttpOnly/i.test(c)));
    const page = await get(app.appUrl);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /Signed in/);

    const api = () => get(app.apiUrl, { [CSRF_HEADER]: jar.cookies.get(CSRF_COOKIE) ?? '' });
    assert.equal((await api()).status, 200);
    assert.equal((await get(app.apiUrl)).status, 401, 'no CSRF header');

    app.rotateCsrf();
    const stale = await api();
    assert.equal(stale.status, 401);
    assert.equal(((await stale.json()) as { category: string }).category, 'UNAUTHORIZED');
    const renew = await get(app.renewUrl);
    assert.equal(renew.status, 200);
    assert.equal((await api()).status, 200, 'renew re-issued csrf.app');

    app.rotateCsrf();
    assert.equal((await api()).status, 401);
    await (await get(app.appUrl)).text();
    assert.equal((await api()).status, 200, 'a reload of /app re-issued csrf.app');

    app.expireSession();
    assert.equal((await api()).status, 401);
    const bounced = await get(app.appUrl);
    assert.equal(bounced.status, 302);
    assert.equal(bounced.headers.get('location'), '/login');
    assert.deepEqual(bounced.headers.getSetCookie(), []);
    assert.equal((await get(app.renewUrl)).status, 401);
    assert.equal(app.stats.renewCalls, 2);
    assert.ok(app.stats.api401 >= 4);
  });
});

describe('real headless Chromium', () => {
  let idp: Idp;
  let app: SessionApp;
  before(async () => {
    idp = await startIdp();
    app = await startSessionApp();
  });
  after(async () => {
    await idp?.close();
    await app?.close();
  });

  test('logs in on the IdP login page and lands on the loopback redirect with a code', { timeout: 90_000 }, async (t) => {
    if (!skipUnlessBrowser(t)) return;
    const browser = await launchBrowser();
    try {
      const page = await browser.newPage();
      const redirectUri = `http://127.0.0.1:${randomInt(20000, 60000)}/callback`;
      const { verifier, challenge } = pkcePair();
      let resolveCallback: (url: string) => void = () => undefined;
      const callback = new Promise<string>((resolve) => {
        resolveCallback = resolve;
      });
      await page.route(`${redirectUri}**`, async (route) => {
        resolveCallback(route.request().url());
        await route.fulfill({ status: 200, contentType: 'text/plain', body: 'signed in' });
      });
      await page.goto(idp.authorizationUrl({ redirectUri, state: 'st8', codeChallenge: challenge }), { timeout: 20_000 });
      await page.fill('input[name="login"]', 'dora', { timeout: 20_000 });
      await page.click('#submit', { timeout: 20_000 });
      const landed = new URL(
        await Promise.race([
          callback,
          sleep(20_000, undefined, { ref: false }).then(() => {
            throw new Error('no redirect to the loopback callback within 20 s');
          }),
        ]),
      );
      assert.equal(landed.searchParams.get('state'), 'st8');
      assert.equal(landed.searchParams.get('iss'), idp.issuer);
      const code = landed.searchParams.get('code');
      assert.ok(code);
      const tok = await idp.tokenRequest('public-client', {
        grant_type: 'authorization_code',
        code,
        redirect_uri: redirectUri,
        code_verifier: verifier,
      });
      assert.equal(tok.status, 200, JSON.stringify(tok.body));
      const me = (await (await callProtected(idp, (tok.body as TokenResponse).access_token)).json()) as { sub: string };
      assert.equal(me.sub, 'dora');
    } finally {
      await browser.close();
    }
  });

  test('launchChromeWithCdp + connectOverCDP: open the session app and read its cookies', { timeout: 90_000 }, async (t) => {
    if (!skipUnlessBrowser(t)) return;
    const chrome = await launchChromeWithCdp();
    try {
      assert.match(chrome.cdpUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
      const version = (await (await fetch(`${chrome.cdpUrl}/json/version`, { signal: AbortSignal.timeout(T) })).json()) as {
        webSocketDebuggerUrl: string;
      };
      assert.equal(version.webSocketDebuggerUrl, chrome.wsEndpoint);
      const browser = await chromium.connectOverCDP(chrome.cdpUrl, { timeout: 20_000 });
      try {
        const context = browser.contexts()[0] ?? (await browser.newContext());
        const page = context.pages()[0] ?? (await context.newPage());
        await page.goto(app.loginUrl, { timeout: 20_000 });
        assert.equal(new URL(page.url()).pathname, '/app');
        const cookies = await context.cookies(app.origin);
        const session = cookies.find((c) => c.name === SESSION_COOKIE);
        const csrf = cookies.find((c) => c.name === CSRF_COOKIE);
        assert.ok(session?.httpOnly, 'session cookie is HttpOnly');
        assert.ok(csrf && !csrf.httpOnly, 'csrf.app is readable');
        assert.equal(csrf.value, app.currentCsrf(session.value));
        const callApi = () => page.evaluate(() => (window as unknown as { callApi(): Promise<{ status: number }> }).callApi());
        assert.equal((await callApi()).status, 200);
        app.rotateCsrf();
        assert.equal((await callApi()).status, 401);
        await page.reload({ timeout: 20_000 });
        assert.equal((await callApi()).status, 200, 'reloading the signed-in tab renews csrf.app');
      } finally {
        await browser.close();
      }
    } finally {
      await chrome.close();
    }
  });
});
