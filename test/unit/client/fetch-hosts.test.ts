/**
 * A source whose methods live on different hosts (HubSpot: a private-app token for
 * api.hubapi.com, the browser session for app.hubspot.com). A method whose credential does not
 * belong to the request's URL is passed over, never the reason a call or a probe fails: the
 * verdict and the operator action come from the methods that do apply.
 *
 * Here the bearer API is `http://127.0.0.1:<port>` and the session's site is
 * `http://localhost:<port>` (the same loopback server; the injected fetch sends `localhost` to
 * 127.0.0.1, so no resolver is involved).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openLatchkey, type Latchkey } from '../../../src/latchkey.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { UnauthorizedError } from '../../../src/client/fetch.js';
import { WrongDestinationError } from '../../../src/methods/method.js';
import { makeHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';
import { send, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
let siteOrigin: string;
before(async () => {
  api = await startLoopbackApi((req, res) => {
    if (req.headers['x-test-site'] === 'localhost') {
      // The session's site: cookie sid=s1 with the CSRF header from cookie csrf.
      const ok = req.headers.cookie === 'csrf=c1; sid=s1' && req.headers['x-csrf'] === 'c1';
      return ok ? send(res, 200, '{"ok":true}') : send(res, 401);
    }
    return req.headers.authorization === 'Bearer good' ? send(res, 200, '{"ok":true}') : send(res, 401);
  });
  siteOrigin = api.origin.replace('127.0.0.1', 'localhost');
});
after(async () => {
  await api.close();
});

/** Sends `localhost` to 127.0.0.1 and says which "site" was addressed (fetch sets Host itself). */
const viaLoopback: typeof fetch = (input, init) => {
  const url = new URL(input instanceof Request ? input.url : String(input));
  const headers = new Headers(init?.headers);
  if (url.hostname === 'localhost') {
    url.hostname = '127.0.0.1';
    headers.set('x-test-site', 'localhost');
  }
  return fetch(url, { ...init, headers });
};

async function open(t: { after(fn: () => Promise<void>): void }, probe: Record<string, unknown> | undefined, env: NodeJS.ProcessEnv): Promise<Latchkey> {
  const source: Record<string, unknown> = {
    methods: ['token', 'session'],
    token: { secret: 'env:PAT' },
    session: { origin: siteOrigin, csrfCookie: 'csrf', csrfHeader: 'X-CSRF', cookieHeader: 'env:COOKIES' },
  };
  if (probe) source.probe = probe;
  const h = await makeHome({ version: 1, sources: { hs: source } });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env, clock: new TestClock(), fetch: viaLoopback });
  t.after(() => lk.close());
  api.requests.length = 0;
  return lk;
}

const COOKIES = 'sid=s1; csrf=c1';

test('the session path is used on its own site, the token path on the API host', async (t) => {
  const lk = await open(t, undefined, { PAT: 'good', COOKIES });
  assert.equal((await lk.fetch('hs', api.url('/v3/details'))).status, 200);
  assert.equal(api.requests.at(-1)!.headers.authorization, 'Bearer good');
  assert.equal(api.requests.at(-1)!.headers.cookie, undefined);
  // The token is preferred but its header goes to any host; the session cookies only to theirs.
  const lk2 = await open(t, undefined, { COOKIES });
  assert.equal((await lk2.fetch('hs', `${siteOrigin}/api/x`)).status, 200);
  assert.equal(api.requests.at(-1)!.headers.cookie, 'csrf=c1; sid=s1');
});

test('token missing, a URL on the API host: the token\'s problem (replace_token), not a refusal of the session', async (t) => {
  const lk = await open(t, undefined, { COOKIES });
  await assert.rejects(lk.fetch('hs', api.url('/v3/details')), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError && !(err instanceof WrongDestinationError), String(err));
    assert.equal(err.operatorAction, 'replace_token');
    assert.match(err.message, /token: .*PAT/);
    assert.match(err.message, /session: not for this URL/);
    return true;
  });
  assert.equal(api.requests.length, 0, 'nothing was sent');
});

test('a token the API always rejects, the session on another site: two requests, then UnauthorizedError replace_token', async (t) => {
  const lk = await open(t, undefined, { PAT: 'dead', COOKIES });
  for (let call = 0; call < 2; call++) {
    api.requests.length = 0;
    await assert.rejects(lk.fetch('hs', api.url('/v3/details')), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError, String(err));
      assert.equal(err.operatorAction, 'replace_token');
      assert.equal(err.authPath, 'token');
      assert.match(err.fix ?? '', /PAT/);
      return true;
    });
    assert.equal(api.requests.length, 2, `call ${call}: exactly two requests`);
    assert.ok(api.requests.every((r) => r.headers.cookie === undefined), 'the session cookies never went to the API host');
  }
});

test('no method applies to the URL: the session\'s refusal (a usage error), nothing sent', async (t) => {
  const h = await makeHome({ version: 1, sources: { s: { session: { origin: siteOrigin, cookieHeader: 'env:COOKIES' } } } });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env: { COOKIES }, fetch: viaLoopback });
  t.after(() => lk.close());
  api.requests.length = 0;
  await assert.rejects(lk.fetch('s', api.url('/x')), (err: unknown) => {
    assert.ok(err instanceof WrongDestinationError);
    assert.equal(err.code, 'LK_USAGE');
    assert.match(err.message, /refusing to send them/);
    return true;
  });
  assert.equal(api.requests.length, 0);
});

test('probe.sessionUrl: each path is probed on its own host; the session path is reported when the token is missing', async (t) => {
  const probe = { url: api.url('/v3/details'), sessionUrl: `${siteOrigin}/api/check` };
  const withPat = await open(t, probe, { PAT: 'good', COOKIES });
  const ok = await withPat.probe('hs');
  assert.equal(ok.status, 'ok');
  assert.equal(ok.authPath, 'token');
  assert.equal(api.requests.at(-1)!.path, '/v3/details');

  const noPat = await open(t, probe, { COOKIES });
  const r = await noPat.probe('hs');
  assert.equal(r.status, 'ok', r.message);
  assert.equal(r.authPath, 'session');
  assert.equal(api.requests.at(-1)!.path, '/api/check');
  assert.equal(api.requests.at(-1)!.headers.authorization, undefined);
  assert.deepEqual(r.methodFailures?.map((f) => [f.method, f.operatorAction]), [['token', 'replace_token']]);

  const dead = await open(t, probe, { COOKIES: 'sid=s0; csrf=c0' });
  const d = await dead.probe('hs');
  assert.equal(d.status, 'action_required');
  assert.equal(d.operatorAction, 'replace_token', 'the preferred method\'s action comes first');
  assert.deepEqual(d.methodFailures?.map((f) => [f.method, f.operatorAction]), [['token', 'replace_token'], ['session', 'renew_session']]);
});

test('without probe.sessionUrl the session path is "not checked" (a config gap), never the verdict\'s cause', async (t) => {
  const probe = { url: api.url('/v3/details') };
  const noPat = await open(t, probe, { COOKIES });
  const r = await noPat.probe('hs');
  assert.equal(r.status, 'action_required');
  assert.equal(r.operatorAction, 'replace_token');
  assert.equal(r.authPath, 'token');
  const session = r.methodFailures?.find((f) => f.method === 'session');
  assert.equal(session?.operatorAction, 'fix_config');
  assert.match(session?.reason ?? '', /not checked: .*probe\.sessionUrl/);
  assert.ok(api.requests.every((q) => q.headers.cookie === undefined), 'no cookie went to the API host');

  const report = await noPat.preflight(['hs'], { useKeeperReport: false });
  assert.equal(report.exitCode, 4);
  assert.equal(report.results[0]!.operatorAction, 'replace_token');
});

test('an unavailable session names its problem once, without repeating the source', async (t) => {
  const lk = await open(t, { url: api.url('/v3/details'), sessionUrl: `${siteOrigin}/api/check` }, {});
  const r = await lk.probe('hs');
  assert.equal(r.status, 'action_required');
  assert.match(r.message, /^hs: token: .*; session: session\.cookieHeader: secret reference env:COOKIES/);
  assert.equal(r.message.match(/\bhs: /g)?.length, 1, r.message);
});
