/**
 * `probe.expectJson`: a dead credential that an API answers with a success status (Slack's
 * HTTP 200 `{"ok": false, "error": "invalid_auth"}`, a GraphQL error, a session's sign-in
 * page) is not healthy.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openLatchkey, type Latchkey } from '../../../src/latchkey.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { jsonContains } from '../../../src/client/probe.js';
import { presets } from '../../../src/config/presets.js';
import { makeHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';
import { send, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
before(async () => {
  api = await startLoopbackApi((req, res) => {
    const auth = req.headers.authorization ?? '';
    const good = auth === 'Bearer good' || auth === 'Bearer oauth-at' || req.headers.cookie === 'sid=live';
    switch (req.path) {
      case '/api/auth.test':
        // Slack: every answer is 200; the body says whether the token works.
        return send(res, 200, good ? '{"ok":true,"url":"https://x.slack.com/","user_id":"U1"}' : '{"ok":false,"error":"invalid_auth"}');
      case '/graphql':
        return good ? send(res, 200, '{"data":{"viewer":{"id":"u1"}}}') : send(res, 400, '{"errors":[{"message":"Authentication required"}]}');
      case '/app/api':
        // A session API that answers a dead session with its sign-in page, status 200.
        return good ? send(res, 200, '{"portalId":1}') : send(res, 200, '<!doctype html><title>Sign in</title>', { 'content-type': 'text/html' });
      case '/text':
        return send(res, 200, 'OK', { 'content-type': 'text/plain' });
      case '/huge':
        return send(res, 200, `{"pad":"${'x'.repeat(1024 * 1024 + 10)}","ok":true}`);
      default:
        return send(res, 404);
    }
  });
});
after(async () => {
  await api.close();
});

async function profile(t: { after(fn: () => Promise<void>): void }, sources: Record<string, unknown>, env: NodeJS.ProcessEnv = { GOOD: 'good', BAD: 'bad' }): Promise<Latchkey> {
  const h = await makeHome({ version: 1, sources });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env, clock: new TestClock() });
  t.after(() => lk.close());
  api.requests.length = 0;
  return lk;
}

const slackProbe = () => ({ url: api.url('/api/auth.test'), method: 'POST', expectStatus: 200, expectJson: { ok: true } });

test('Slack-style 200 {"ok": false}: action_required with the method\'s action and the error code; {"ok": true}: ok', async (t) => {
  const lk = await profile(t, {
    live: { token: { secret: 'env:GOOD' }, probe: slackProbe() },
    dead: { token: { secret: 'env:BAD' }, probe: slackProbe() },
    statusOnly: { token: { secret: 'env:BAD' }, probe: { url: api.url('/api/auth.test'), method: 'POST' } },
  });
  const live = await lk.probe('live');
  assert.equal(live.status, 'ok', live.message);
  const dead = await lk.probe('dead');
  assert.equal(dead.status, 'action_required');
  assert.equal(dead.operatorAction, 'replace_token');
  assert.equal(dead.httpStatus, 200);
  assert.match(dead.message, /probe answered 200 but its JSON does not contain \{"ok":true\} \(error: invalid_auth\)/);
  assert.ok(dead.fix);
  // Without expectJson the status alone decides (the behaviour expectJson exists to fix).
  assert.equal((await lk.probe('statusOnly')).status, 'ok');
  // lk.fetch itself is untouched by the probe's body check: the caller gets the 200.
  assert.equal((await lk.fetch('dead', api.url('/api/auth.test'), { method: 'POST' })).status, 200);
  const report = await lk.preflight(['live', 'dead'], { useKeeperReport: false });
  assert.equal(report.exitCode, 4);
});

test('a body check that fails on the preferred method falls back to the next (and lists why)', async (t) => {
  const lk = await profile(t, {
    s: { methods: ['token', 'oauth'], token: { secret: 'env:BAD' }, oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' }, probe: slackProbe() },
  });
  await lk.installGrant('s', { access_token: 'oauth-at', refresh_token: 'rt', expires_in: 3600 });
  const r = await lk.probe('s');
  assert.equal(r.status, 'ok');
  assert.equal(r.authPath, 'oauth');
  assert.deepEqual(r.methodFailures?.map((f) => [f.method, f.operatorAction]), [['token', 'replace_token']]);
  assert.equal(api.requests.length, 2, 'one probe request per method: no recovery for a body mismatch');
});

test('expectJson true: a sign-in page (HTML, status 200) is renew_session with the session\'s sign-in URL; JSON is ok', async (t) => {
  const session = (cookie: string) => ({
    session: { origin: api.origin, cookieHeader: `env:${cookie}`, loginUrl: 'https://app.example.com/login' },
    probe: { url: api.url('/app/api'), expectJson: true },
  });
  const lk = await profile(t, { live: session('LIVE'), dead: session('DEAD') }, { LIVE: 'sid=live', DEAD: 'sid=dead' });
  assert.equal((await lk.probe('live')).status, 'ok');
  const dead = await lk.probe('dead');
  assert.equal(dead.status, 'action_required');
  assert.equal(dead.operatorAction, 'renew_session');
  assert.equal(dead.authPath, 'session');
  assert.match(dead.message, /an HTML page instead of JSON \(a sign-in page\?\)/);
  assert.match(dead.fix ?? '', /sign in at https:\/\/app\.example\.com\/login/);
  assert.ok(!dead.message.includes('Sign in</title>'), 'no page content in the message');
});

test('GraphQL (Linear-style): 400 or 200 without data.viewer is a rejected credential, not a config error', async (t) => {
  const probe = { url: api.url('/graphql'), method: 'POST', expectStatus: [200, 400], body: '{"query":"{ viewer { id } }"}', expectJson: { data: { viewer: {} } } };
  const lk = await profile(t, { live: { token: { secret: 'env:GOOD' }, probe }, dead: { token: { secret: 'env:BAD' }, probe } });
  assert.equal((await lk.probe('live')).status, 'ok');
  const dead = await lk.probe('dead');
  assert.equal(dead.status, 'action_required');
  assert.equal(dead.operatorAction, 'replace_token');
  assert.equal(dead.httpStatus, 400);
});

test('non-JSON and oversized answers do not meet expectJson; the reason says which', async (t) => {
  const lk = await profile(t, {
    text: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/text'), expectJson: true } },
    huge: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/huge'), expectJson: { ok: true } } },
  });
  const text = await lk.probe('text');
  assert.equal(text.status, 'action_required');
  assert.match(text.message, /not JSON \(text\/plain\)/);
  const huge = await lk.probe('huge');
  assert.equal(huge.status, 'action_required');
  assert.match(huge.message, /larger than 1048576 bytes/);
});

test('config: expectJson must be true or an object, and a HEAD probe cannot have it', async (t) => {
  for (const probe of [
    { url: 'https://api.example.com/x', method: 'HEAD', expectJson: true },
    { url: 'https://api.example.com/x', expectJson: false },
    { url: 'https://api.example.com/x', expectJson: 'ok' },
    { url: 'https://api.example.com/x', sessionUrl: 'not a url' },
  ]) {
    const h = await makeHome({ version: 1, sources: { s: { token: { secret: 'env:GOOD' }, probe } } });
    t.after(() => h.cleanup());
    await assert.rejects(openLatchkey({ home: h.home, env: {} }), (err: unknown) => {
      assert.ok(err instanceof LatchkeyError);
      assert.equal(err.code, 'LK_CONFIG_INVALID');
      assert.match(err.message, /probe/);
      return true;
    }, JSON.stringify(probe));
  }
});

test('jsonContains: objects as a subset (recursively), everything else by equality', () => {
  assert.equal(jsonContains({ ok: true, user: 'u' }, { ok: true }), true);
  assert.equal(jsonContains({ ok: false }, { ok: true }), false);
  assert.equal(jsonContains({}, { ok: true }), false);
  assert.equal(jsonContains({ ok: 'true' }, { ok: true }), false, 'no coercion');
  assert.equal(jsonContains({ data: { viewer: { id: 'x' } } }, { data: { viewer: {} } }), true);
  assert.equal(jsonContains({ data: { viewer: null } }, { data: { viewer: {} } }), false);
  assert.equal(jsonContains({ data: null }, { data: { viewer: {} } }), false);
  assert.equal(jsonContains([1, 2], [1, 2]), true);
  assert.equal(jsonContains([1, 2, 3], [1, 2]), false);
  assert.equal(jsonContains('x', {}), false);
  assert.equal(jsonContains(Object.create({ ok: true }), { ok: true }), false, 'own members only');
});

test('presets: Slack requires {"ok": true}; Linear requires data.viewer and takes a 400 as an answer', () => {
  assert.deepEqual(presets.slack!.probe?.expectJson, { ok: true });
  assert.deepEqual(presets.linear!.probe?.expectJson, { data: { viewer: {} } });
  assert.deepEqual(presets.linear!.probe?.expectStatus, [200, 400]);
});
