import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openLatchkey, type Latchkey } from '../../../src/latchkey.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { exitCodeFor, readKeeperReport } from '../../../src/client/preflight.js';
import type { ProbeResult } from '../../../src/client/probe-types.js';
import { methodRegistry } from '../../../src/methods/index.js';
import { makeHome, type TempHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';
import { send, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
before(async () => {
  api = await startLoopbackApi((req, res) => {
    const auth = req.headers.authorization ?? '';
    const good = auth === 'Bearer good' || auth === 'Bearer oauth-at';
    switch (req.path) {
      case '/ok':
        return good ? send(res, 200, '{"ok":true}') : send(res, 401);
      case '/html':
        return send(res, good ? 200 : 401, '<!doctype html><html><body>Sign in</body></html>', { 'content-type': 'text/html' });
      case '/no-content':
        return good ? send(res, 204) : send(res, 401);
      case '/forbidden':
        return send(res, 403, '{"message":"missing scope"}');
      case '/busy':
        return send(res, 503);
      case '/slow-down':
        return send(res, 429, '', { 'retry-after': '5' });
      case '/stall':
        return undefined;
      case '/huge-header':
        // A hostile upstream: a response header far above what the HTTP parser accepts.
        res.writeHead(200, { 'x-junk': 'j'.repeat(100_000) });
        return res.end('{}');
      default:
        return send(res, 404);
    }
  });
});
after(async () => {
  await api.close();
});

interface Ctx {
  lk: Latchkey;
  h: TempHome;
  clock: TestClock;
}

async function profile(t: { after(fn: () => Promise<void>): void }, sources: Record<string, unknown>, env: NodeJS.ProcessEnv = { GOOD: 'good', BAD: 'bad' }): Promise<Ctx> {
  const h = await makeHome({ version: 1, sources });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const lk = await openLatchkey({ home: h.home, env, clock });
  t.after(() => lk.close());
  api.requests.length = 0;
  return { lk, h, clock };
}

const tokenSource = (path: string, env = 'GOOD', extra: Record<string, unknown> = {}) => ({ token: { secret: `env:${env}` }, probe: { url: api.url(path), ...extra } });
const oauthConfig = { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' };

test('probe: 2xx -> ok, with the auth path, latency and the HTTP status', async (t) => {
  const { lk } = await profile(t, { a: tokenSource('/ok') });
  const r = await lk.probe('a');
  assert.equal(r.status, 'ok');
  assert.equal(r.authPath, 'token');
  assert.equal(r.operatorAction, null);
  assert.equal(r.fix, null);
  assert.equal(r.httpStatus, 200);
  assert.equal(typeof r.latencyMs, 'number');
  assert.ok(Date.parse(r.checkedAt) > 0);
  assert.equal(api.requests[0]!.headers.authorization, 'Bearer good');
});

test('probe: configured headers and a POST body are sent (Notion-Version, a GraphQL query), the auth header still wins', async (t) => {
  const { lk } = await profile(t, {
    gql: tokenSource('/ok', 'GOOD', { method: 'POST', headers: { 'Notion-Version': '2022-06-28', 'Content-Type': 'application/json' }, body: '{"query":"{ viewer { id } }"}' }),
  });
  assert.equal((await lk.probe('gql')).status, 'ok');
  const req = api.requests[0]!;
  assert.equal(req.method, 'POST');
  assert.equal(req.headers['notion-version'], '2022-06-28');
  assert.equal(req.body, '{"query":"{ viewer { id } }"}');
  assert.equal(req.headers.authorization, 'Bearer good');
});

test('probe: an HTML page is judged by its status alone (200 -> ok, 401 -> action_required)', async (t) => {
  const { lk } = await profile(t, { ok: tokenSource('/html'), bad: tokenSource('/html', 'BAD') });
  assert.equal((await lk.probe('ok')).status, 'ok');
  const bad = await lk.probe('bad');
  assert.equal(bad.status, 'action_required');
  assert.equal(bad.operatorAction, 'replace_token');
});

test('probe: expectStatus (a number or a list) replaces the 2xx default', async (t) => {
  const { lk } = await profile(t, {
    one: tokenSource('/no-content', 'GOOD', { expectStatus: 204 }),
    list: tokenSource('/forbidden', 'GOOD', { expectStatus: [200, 403] }),
    wrong: tokenSource('/ok', 'GOOD', { expectStatus: 204 }),
  });
  assert.equal((await lk.probe('one')).status, 'ok');
  assert.equal((await lk.probe('list')).status, 'ok');
  const wrong = await lk.probe('wrong');
  assert.equal(wrong.status, 'action_required');
  assert.equal(wrong.operatorAction, 'fix_config');
  assert.match(wrong.message, /answered 200, expected 204/);
});

test('probe: 401 after the one recovery -> action_required with the method\'s action and its exact fix', async (t) => {
  const { lk } = await profile(t, { a: tokenSource('/ok', 'BAD') });
  const r = await lk.probe('a');
  assert.equal(r.status, 'action_required');
  assert.equal(r.operatorAction, 'replace_token');
  assert.match(r.fix ?? '', /^export BAD=<the new value>/);
  assert.equal(r.httpStatus, 401);
  assert.equal(api.requests.length, 2, 'one recovery, one retry');
  assert.ok(!r.message.includes('bad '), 'no secret in the message');
});

test('probe: 403 -> action_required (the credential lacks access)', async (t) => {
  const { lk } = await profile(t, { a: tokenSource('/forbidden') });
  const r = await lk.probe('a');
  assert.equal(r.status, 'action_required');
  assert.equal(r.operatorAction, 'replace_token');
  assert.match(r.message, /403/);
});

test('probe: 5xx and 429 -> degraded (transient, exit 3, no person needed)', async (t) => {
  const { lk } = await profile(t, { busy: tokenSource('/busy'), limited: tokenSource('/slow-down') });
  for (const name of ['busy', 'limited']) {
    const r = await lk.probe(name);
    assert.equal(r.status, 'degraded', name);
    assert.equal(r.operatorAction, null);
    assert.equal(exitCodeFor([r]), 3);
  }
});

test('probe: 404 -> action_required fix_config (the probe is wrong)', async (t) => {
  const { lk } = await profile(t, { a: tokenSource('/nope') });
  const r = await lk.probe('a');
  assert.equal(r.status, 'action_required');
  assert.equal(r.operatorAction, 'fix_config');
  assert.match(r.message, /sources\.a\.probe/);
});

/** A loopback port nobody listens on. */
async function closedPort(): Promise<number> {
  const probe = await startLoopbackApi();
  const port = Number(new URL(probe.origin).port);
  await probe.close();
  return port;
}

test('probe: connection refused -> unreachable, check_network', async (t) => {
  const { lk } = await profile(t, { a: { token: { secret: 'env:GOOD' }, probe: { url: `http://127.0.0.1:${await closedPort()}/x` } } });
  const r = await lk.probe('a');
  assert.equal(r.status, 'unreachable');
  assert.equal(r.operatorAction, 'check_network');
  assert.match(r.message, /ECONNREFUSED/);
});

test('probe: a hostile oversized response header -> unreachable, no crash', async (t) => {
  const { lk } = await profile(t, { a: tokenSource('/huge-header') });
  const r = await lk.probe('a');
  assert.equal(r.status, 'unreachable');
  assert.match(r.message, /network error/);
});

test('probe: a stalled server is cut off at the timeout (unreachable, "no answer within N ms")', async (t) => {
  const { lk } = await profile(t, { a: tokenSource('/stall', 'GOOD', { timeoutMs: 5000 }) });
  const started = performance.now();
  const r = await lk.probe('a', { timeoutMs: 300 });
  const took = performance.now() - started;
  assert.equal(r.status, 'unreachable');
  assert.equal(r.message, 'a: no answer within 300 ms');
  assert.ok(took < 350, `returned after ${took} ms`);
  // The source's own probe.timeoutMs applies when the caller gives none.
  const { lk: lk2 } = await profile(t, { b: tokenSource('/stall', 'GOOD', { timeoutMs: 200 }) });
  assert.equal((await lk2.probe('b')).message, 'b: no answer within 200 ms');
});

test('probe: expiring credentials (PAT within 7 days; oauth without refresh token within the hour)', async (t) => {
  const soon = new Date(Date.now() + 2 * 86_400_000).toISOString();
  const { lk } = await profile(t, {
    pat: { token: { secret: 'env:GOOD', expiresAt: soon }, probe: { url: api.url('/ok') } },
    o: { oauth: oauthConfig, probe: { url: api.url('/ok') } },
  });
  const pat = await lk.probe('pat');
  assert.equal(pat.status, 'expiring');
  assert.equal(pat.operatorAction, 'replace_token');
  assert.equal(pat.expiresAt, soon);
  assert.equal(exitCodeFor([pat]), 0, 'expiring is still healthy');
  await lk.installGrant('o', { access_token: 'oauth-at', expires_in: 1200 });
  const o = await lk.probe('o');
  assert.equal(o.status, 'expiring');
  assert.equal(o.operatorAction, 'relogin');
  assert.equal(o.authPath, 'oauth');
});

test('probe: the preferred method fails, the next works -> ok via the fallback, failures listed', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:BAD' }, oauth: oauthConfig, methods: ['token', 'oauth'], probe: { url: api.url('/ok') } } });
  await lk.installGrant('s', { access_token: 'oauth-at', refresh_token: 'rt', expires_in: 3600 });
  const r = await lk.probe('s');
  assert.equal(r.status, 'ok');
  assert.equal(r.authPath, 'oauth');
  assert.deepEqual(
    r.methodFailures?.map((f) => [f.method, f.operatorAction]),
    [['token', 'replace_token']],
  );
  assert.match(r.message, /token not usable/);
  // lk.fetch now goes straight to oauth (the token was just rejected).
  assert.equal(await lk.authPath('s'), 'oauth');
});

test('no probe configured: a no-network credential check', async (t) => {
  const past = new Date(Date.now() - 60_000).toISOString();
  const { lk, h } = await profile(t, {
    pat: { token: { secret: 'env:GOOD' } },
    missing: { token: { secret: 'env:MISSING' } },
    expired: { token: { secret: 'env:GOOD', expiresAt: past } },
    nogrant: { oauth: oauthConfig },
    revoked: { oauth: oauthConfig },
    fine: { oauth: oauthConfig },
  });
  await lk.installGrant('revoked', { access_token: 'a', refresh_token: 'r', expires_in: 3600 });
  await lk.installGrant('fine', { access_token: 'a', refresh_token: 'r', expires_in: 3600 });
  const doc = JSON.parse(await readFile(h.storePath, 'utf8'));
  doc.sources.revoked.grant.revoked = { at: Date.now(), reason: 'invalid_grant' };
  await writeFile(h.storePath, JSON.stringify(doc));
  const verdict = async (s: string) => {
    const r = await lk.probe(s);
    return [r.status, r.operatorAction];
  };
  assert.deepEqual(await verdict('pat'), ['ok', null]);
  assert.match((await lk.probe('pat')).message, /not verified against the API/);
  assert.deepEqual(await verdict('missing'), ['action_required', 'replace_token']);
  assert.deepEqual(await verdict('expired'), ['action_required', 'replace_token']);
  assert.deepEqual(await verdict('nogrant'), ['action_required', 'relogin']);
  assert.deepEqual(await verdict('revoked'), ['action_required', 'reauthorize']);
  assert.deepEqual(await verdict('fine'), ['ok', null]);
  assert.equal((await lk.probe('revoked')).fix, 'latchkey import revoked --grant <file>   (or, to sign in here: latchkey add revoked --authorization-endpoint <url>, then latchkey login revoked)', 'no authorization endpoint, no issuer: login cannot run');
  assert.equal(api.requests.length, 0, 'no network');
});

test('a session method that is not installed -> renew_session, "session method not installed"', async (t) => {
  const installed = methodRegistry.session;
  methodRegistry.session = undefined;
  t.after(() => {
    methodRegistry.session = installed;
  });
  const { lk } = await profile(t, { hs: { session: { origin: 'https://app.example.com' }, probe: { url: api.url('/ok') } } });
  const r = await lk.probe('hs');
  assert.equal(r.status, 'action_required');
  assert.equal(r.operatorAction, 'renew_session');
  assert.equal(r.authPath, 'session');
  assert.match(r.message, /session method not installed/);
});

test('preflight: all in parallel within the budget; a stalled source is unreachable, never a hang; 4 wins over 3', async (t) => {
  const { lk } = await profile(t, {
    ok: tokenSource('/ok'),
    dead: tokenSource('/ok', 'BAD'),
    stalled: tokenSource('/stall'),
    stalled2: tokenSource('/stall'),
  });
  const started = performance.now();
  const report = await lk.preflight(['ok', 'dead', 'stalled', 'stalled2'], { budgetMs: 400 });
  const took = performance.now() - started;
  assert.ok(took < 450, `took ${took} ms`);
  const by = new Map(report.results.map((r) => [r.source, r]));
  assert.deepEqual(
    report.results.map((r) => r.source),
    ['ok', 'dead', 'stalled', 'stalled2'],
  );
  assert.equal(by.get('ok')!.status, 'ok');
  assert.equal(by.get('dead')!.status, 'action_required');
  assert.equal(by.get('stalled')!.status, 'unreachable');
  assert.equal(by.get('stalled')!.message, 'stalled: no answer within 400 ms');
  assert.equal(report.exitCode, 4);
  assert.equal(report.ok, false);
  assert.equal(report.from, 'live');
});

test('preflight: exit 3 for unreachable only, 0 for ok/expiring; no sources = every configured one', async (t) => {
  const { lk } = await profile(t, { ok: tokenSource('/ok'), stalled: tokenSource('/stall') });
  const r3 = await lk.preflight(['ok', 'stalled'], { budgetMs: 200 });
  assert.equal(r3.exitCode, 3);
  const r0 = await lk.preflight(['ok']);
  assert.equal(r0.exitCode, 0);
  assert.equal(r0.ok, true);
  const all = await lk.preflight([], { budgetMs: 200 });
  assert.deepEqual(
    all.results.map((r) => r.source),
    ['ok', 'stalled'],
  );
});

test('preflight: the budget may count from an earlier start (the CLI: the process start), never from a later one', async (t) => {
  const { lk } = await profile(t, { stalled: tokenSource('/stall') });
  // 10 minutes of budget that began 10 minutes minus 100 ms ago: the stalled probe is cut by the
  // budget's end, not by its own probe timeout (whose message would differ).
  const report = await lk.preflight(['stalled'], { budgetMs: 600_000, budgetStartedAt: performance.now() - 600_000 + 100 });
  assert.equal(report.results[0]!.status, 'unreachable');
  assert.equal(report.results[0]!.message, 'stalled: no answer within 600000 ms');
  for (const budgetStartedAt of [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY]) {
    await assert.rejects(lk.preflight(['stalled'], { budgetMs: 100, budgetStartedAt }), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_USAGE');
  }
});

test('preflight: bad input (unknown source, bad budget) is a usage error before any probe', async (t) => {
  const { lk } = await profile(t, { ok: tokenSource('/ok') });
  await assert.rejects(lk.preflight(['ok', 'nope']), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_UNKNOWN_SOURCE');
  for (const budgetMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
    await assert.rejects(lk.preflight(['ok'], { budgetMs }), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_USAGE');
  }
  assert.equal(api.requests.length, 0);
});

test('preflight: a caller\'s signal cancels the probes', async (t) => {
  const { lk } = await profile(t, { stalled: tokenSource('/stall') });
  const started = performance.now();
  const report = await lk.preflight(['stalled'], { budgetMs: 5000, signal: AbortSignal.timeout(150) });
  assert.ok(performance.now() - started < 500);
  assert.equal(report.results[0]!.status, 'unreachable');
});

function healthEntry(status: string, extra: Record<string, unknown> = {}) {
  return { status, authPath: 'token', operatorAction: null, fix: null, message: `keeper says ${status}`, expiresAt: null, lastOkAt: null, consecutiveFailures: 0, latencyMs: 12, history: [], ...extra };
}

async function writeHealth(h: TempHome, body: unknown): Promise<void> {
  await writeFile(join(h.home, 'health.json'), JSON.stringify(body));
}

test('keeper report: fresh and healthy -> used as is, no probe; --live / useKeeperReport:false probes', async (t) => {
  const { lk, h } = await profile(t, { a: tokenSource('/ok'), b: tokenSource('/ok') });
  await writeHealth(h, { generatedAt: new Date().toISOString(), intervalSeconds: 300, sources: { a: healthEntry('ok'), b: healthEntry('expiring', { operatorAction: 'replace_token' }) } });
  const cached = await lk.preflight(['a', 'b']);
  assert.equal(cached.from, 'keeper');
  assert.equal(cached.exitCode, 0);
  assert.equal(cached.results[0]!.message, 'keeper says ok');
  assert.equal(cached.results[1]!.operatorAction, 'replace_token');
  assert.equal(api.requests.length, 0);
  const live = await lk.preflight(['a', 'b'], { useKeeperReport: false });
  assert.equal(live.from, 'live');
  assert.equal(api.requests.length, 2);
});

test('keeper report: a cached failure is re-checked live (the operator may just have fixed it)', async (t) => {
  const { lk, h } = await profile(t, { a: tokenSource('/ok'), b: tokenSource('/ok') });
  await writeHealth(h, { generatedAt: Date.now(), sources: { a: healthEntry('ok'), b: healthEntry('action_required', { operatorAction: 'replace_token' }) } });
  const report = await lk.preflight(['a', 'b']);
  assert.equal(report.results[0]!.from, 'keeper');
  assert.equal(report.results[1]!.from, 'live');
  assert.equal(report.results[1]!.status, 'ok');
  assert.equal(report.from, 'live');
  assert.equal(api.requests.length, 1);
});

test('keeper report: stale, from the future, malformed or missing a source -> probed live', async (t) => {
  const { lk, h } = await profile(t, { a: tokenSource('/ok'), b: tokenSource('/ok') });
  const cases: [string, unknown][] = [
    ['stale (older than 2 intervals)', { generatedAt: Date.now() - 601_000, intervalSeconds: 300, sources: { a: healthEntry('ok'), b: healthEntry('ok') } }],
    ['stale with its own interval', { generatedAt: Date.now() - 21_000, intervalSeconds: 10, sources: { a: healthEntry('ok'), b: healthEntry('ok') } }],
    ['from the future', { generatedAt: Date.now() + 3_600_000, sources: { a: healthEntry('ok'), b: healthEntry('ok') } }],
    ['unknown status', { generatedAt: Date.now(), sources: { a: healthEntry('fine'), b: healthEntry('ok') } }],
    ['no generatedAt', { sources: { a: healthEntry('ok'), b: healthEntry('ok') } }],
    ['not an object', [1, 2, 3]],
  ];
  for (const [why, body] of cases) {
    await writeHealth(h, body);
    api.requests.length = 0;
    const report = await lk.preflight(['a', 'b']);
    assert.equal(report.exitCode, 0, why);
    assert.ok(api.requests.length >= 1, `${why}: probed live`);
  }
  await writeFile(join(h.home, 'health.json'), '{not json');
  assert.equal(await readKeeperReport(join(h.home, 'health.json'), Date.now()), undefined);
  // Fresh but only one of the two sources: the other is probed.
  await writeHealth(h, { generatedAt: Date.now(), sources: { a: healthEntry('ok') } });
  api.requests.length = 0;
  const partial = await lk.preflight(['a', 'b']);
  assert.equal(api.requests.length, 1);
  assert.deepEqual(
    partial.results.map((r) => r.from),
    ['keeper', 'live'],
  );
});

test('exitCodeFor: 4 wins over 3, 3 over 0', () => {
  const r = (status: ProbeResult['status']) => ({ status }) as ProbeResult;
  assert.equal(exitCodeFor([]), 0);
  assert.equal(exitCodeFor([r('ok'), r('expiring')]), 0);
  assert.equal(exitCodeFor([r('ok'), r('degraded')]), 3);
  assert.equal(exitCodeFor([r('unreachable'), r('action_required'), r('degraded')]), 4);
});
