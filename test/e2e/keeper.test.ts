import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { TestClock } from '../helpers/lk.js';
import { send, startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';
import { openLatchkey } from '../../src/latchkey.js';
import { Keeper } from '../../src/keeper/keeper.js';
import { jsonLineLog } from '../../src/keeper/log.js';
import type { HealthReport } from '../../src/keeper/health-report.js';
import { KeeperProcess } from './keeper-support.js';

/**
 * The keeper against the real IdP (oidc-provider with rotating refresh tokens and reuse
 * detection) and, for the process-level behaviour, as the real `latchkey keeper` process.
 */

let idp: Idp;
let api: LoopbackApi;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
  api = await startLoopbackApi((req, res) => {
    const path = req.path.split('?')[0];
    if (path === '/slow') {
      setTimeout(() => send(res, 200, '{"ok":true}'), 1500);
      return;
    }
    send(res, 200, '{"ok":true}');
  });
});
after(async () => {
  await api.close();
  await idp.close();
});

function idpSource(): Record<string, unknown> {
  // With an authorization endpoint, `latchkey login` can run: it is the fix a revoked grant gets.
  return { oauth: { tokenEndpoint: idp.tokenEndpoint, authorizationEndpoint: idp.authorizationEndpoint, clientId: 'public-client' }, probe: { url: idp.protectedUrl } };
}

async function homeWith(sources: Record<string, unknown>, keeper: Record<string, unknown> = {}): Promise<TempHome> {
  return makeHome({ version: 1, sources, keeper: { probeTimeoutMs: 5000, ...keeper } });
}

/** Logs in (the real code + PKCE flow) and installs the grant; returns the first refresh token. */
async function login(h: TempHome, source = 'idp', clock?: TestClock): Promise<string> {
  const grant = await idp.mintGrant();
  const lk = await openLatchkey({ home: h.home, env: {}, ...(clock ? { clock } : {}) });
  await lk.installGrant(source, grant);
  await lk.close();
  return grant.refresh_token;
}

async function report(h: TempHome): Promise<HealthReport> {
  return JSON.parse(await readFile(join(h.home, 'health.json'), 'utf8')) as HealthReport;
}

function keeperIn(h: TempHome, clock: TestClock): Promise<Keeper> {
  return Keeper.open({ open: { home: h.home, env: {}, clock }, log: jsonLineLog({ write: () => true }, clock), intervalSeconds: 60 });
}

test('refresh-ahead happens at ⅔ of the access token lifetime (not before), through the real IdP', async (t) => {
  const h = await homeWith({ idp: idpSource() });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  await login(h, 'idp', clock);
  const k = await keeperIn(h, clock);
  t.after(() => k.stop());
  idp.stats.reset();
  clock.advance(30_000); // half of 60 s
  await k.runCycle();
  assert.equal(idp.stats.refreshRequests, 0, 'no refresh at ½ of the lifetime');
  assert.equal(k.report.sources.idp?.status, 'ok');
  clock.advance(9_000); // 39 s
  await k.runCycle();
  assert.equal(idp.stats.refreshRequests, 0, 'none at 39 s either');
  clock.advance(2_000); // 41 s: past ⅔
  await k.runCycle();
  assert.equal(idp.stats.refreshRequests, 1, 'one refresh past ⅔ of the lifetime');
  assert.equal(idp.stats.refreshSuccesses, 1);
  assert.equal(k.sourceStates.idp?.lastRefreshOutcome, 'refreshed');
  assert.equal(k.report.sources.idp?.status, 'ok', 'the probe used the fresh token');
  clock.advance(1_000);
  await k.runCycle();
  assert.equal(idp.stats.refreshRequests, 1, 'the new token is not due yet');
  assert.match(await k.metrics.render(), /latchkey_refreshes_total\{source="idp",outcome="refreshed"\} 1/);
  assert.equal(idp.stats.revokedGrants, 0, 'reuse detection never tripped');
});

test('a grant without expiry is still refreshed once a day, so an idle rotating refresh token never ages out', async (t) => {
  const h = await homeWith({ idp: idpSource() });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const grant = await idp.mintGrant();
  const lk = await openLatchkey({ home: h.home, env: {}, clock });
  await lk.installGrant('idp', { access_token: grant.access_token, refresh_token: grant.refresh_token }); // no expires_in
  await lk.close();
  const k = await keeperIn(h, clock);
  t.after(() => k.stop());
  idp.stats.reset();
  clock.advance(23 * 3_600_000);
  await k.runCycle();
  assert.equal(idp.stats.refreshRequests, 0);
  clock.advance(3_600_000 + 1000);
  await k.runCycle();
  assert.equal(idp.stats.refreshRequests, 1, 'daily refresh');
  assert.equal(k.report.sources.idp?.status, 'ok');
});

test('a grant revoked at the IdP turns action_required with `latchkey login <source>` in one cycle, and the IdP is not hammered', async (t) => {
  const h = await homeWith({ idp: idpSource(), other: { token: { secret: 'env:NOPE_UNSET_TOKEN' } } });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const rt = await login(h, 'idp', clock);
  const k = await keeperIn(h, clock);
  t.after(() => k.stop());
  await k.runCycle();
  assert.equal(k.report.sources.idp?.status, 'ok');
  assert.ok(await idp.revokeGrantOf(rt));
  idp.stats.reset();
  const s = await k.runCycle();
  const src = k.report.sources.idp!;
  assert.equal(src.status, 'action_required');
  assert.equal(src.fix, 'latchkey login idp');
  assert.equal(src.operatorAction, 'reauthorize');
  assert.deepEqual(
    s.changes.filter((c) => c.source === 'idp').map((c) => `${c.from}->${c.to}`),
    ['ok->action_required'],
  );
  const calls = idp.stats.refreshRequests;
  assert.ok(calls <= 2, 'one refresh attempt (and its confirmation) found the grant dead');
  for (let i = 0; i < 5; i++) await k.runCycle();
  assert.equal(idp.stats.refreshRequests, calls, 'a revoked grant is never sent to the IdP again');
  assert.equal(idp.stats.revokedGrants, 0, 'no reuse detection involved');
  // A fresh login is noticed at once, backoff or not.
  await login(h, 'idp', clock);
  await k.runCycle();
  assert.equal(k.report.sources.idp?.status, 'ok', 'back to ok right after the new login');
});

test('two keepers on one LATCHKEY_HOME never both probe: the second refuses; with --standby it waits and takes over', async (t) => {
  const h = await homeWith({ ok: { token: { secret: 'env:TOK' }, probe: { url: api.url('/ok') } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, TOK: 't' };
  const first = KeeperProcess.start(['--interval', '1', '--port', '0'], env);
  t.after(() => first.kill());
  await first.waitFor((e) => e.event === 'cycle');
  const second = KeeperProcess.start(['--interval', '1', '--port', '0'], env);
  const r2 = await second.exited;
  assert.equal(r2.code, 1);
  assert.match(second.stderr, new RegExp(`another keeper is already running for this LATCHKEY_HOME \\(pid ${first.child.pid} on this host`));
  assert.equal(second.count('cycle'), 0, 'the refused keeper never probed');
  const third = KeeperProcess.start(['--interval', '1', '--port', '0', '--standby'], env);
  t.after(() => third.kill());
  const standby = await third.waitFor((e) => e.event === 'standby');
  assert.match(String(standby.message), new RegExp(`pid ${first.child.pid}.*standing by`));
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(third.count('cycle'), 0, 'no probing while standing by');
  first.child.kill('SIGTERM');
  const stopped = await first.waitFor((e) => e.event === 'stopped');
  assert.equal((await first.exited).code, 0);
  const took = await third.waitFor((e) => e.event === 'cycle', 10_000);
  assert.ok(Date.parse(String(took.time)) >= Date.parse(String(stopped.time)), 'took over only after the first stopped');
  third.child.kill('SIGINT');
  assert.equal((await third.exited).code, 0);
  assert.ok(!existsSync(join(h.home, 'locks', 'keeper.lock')), 'lock released');
});

test('restart mid-cycle loses no state: SIGKILL in the middle of a cycle, a new keeper takes the dead lock and carries on', async (t) => {
  const h = await homeWith({ idp: idpSource(), slow: { token: { secret: 'env:TOK' }, probe: { url: api.url('/slow') } } });
  t.after(() => h.cleanup());
  await login(h);
  idp.stats.reset();
  const env = { LATCHKEY_HOME: h.home, TOK: 't' };
  const a = KeeperProcess.start(['--interval', '1', '--port', '0'], env);
  t.after(() => a.kill());
  await a.waitFor((e) => e.event === 'cycle' && e.cycle === 2, 20_000);
  // The next cycle starts at once (a cycle takes ~1.5 s, the interval is 1 s): idp is done, slow is pending.
  await new Promise((r) => setTimeout(r, 700));
  a.child.kill('SIGKILL');
  await a.exited;
  const saved = JSON.parse(await readFile(join(h.home, 'keeper-state.json'), 'utf8')) as { cycles: number; sources: Record<string, { timeline: { s: string }; lastOkAt: string | null }> };
  assert.equal(saved.cycles, 2, 'the state of the last complete cycle is on disk, whole');
  assert.equal(saved.sources.idp?.timeline.s.length, 2);
  const before = (await report(h)).generatedAt;
  assert.ok(existsSync(join(h.home, 'locks', 'keeper.lock')), 'the killed keeper left its lock behind');

  const b = KeeperProcess.start(['--once'], env);
  const rb = await b.exited;
  assert.equal(rb.code, 0, b.stderr);
  assert.equal(b.count('standby'), 0, 'a dead holder does not make the next keeper wait');
  const after = JSON.parse(await readFile(join(h.home, 'keeper-state.json'), 'utf8')) as typeof saved;
  assert.equal(after.cycles, 3);
  assert.equal(after.sources.idp?.timeline.s.length, 3, 'history continued');
  assert.equal(after.sources.slow?.timeline.s.length, 3);
  assert.notEqual((await report(h)).generatedAt, before);
  assert.equal((await report(h)).sources.idp?.status, 'ok', 'the grant survived');
  assert.equal(idp.stats.revokedGrants, 0);
  assert.equal(idp.stats.refreshFailures, 0);
});

test('SIGTERM mid-cycle: the keeper finishes its write, releases the lock, closes the server and exits 0 promptly', async (t) => {
  const h = await homeWith({ slow: { token: { secret: 'env:TOK' }, probe: { url: api.url('/slow') } }, ok: { token: { secret: 'env:TOK' }, probe: { url: api.url('/ok') } } });
  t.after(() => h.cleanup());
  const k = KeeperProcess.start(['--interval', '1', '--port', '0'], { LATCHKEY_HOME: h.home, TOK: 't' });
  t.after(() => k.kill());
  const started = await k.waitFor((e) => e.event === 'started');
  await k.waitFor((e) => e.event === 'cycle');
  await new Promise((r) => setTimeout(r, 500));
  const t0 = Date.now();
  k.child.kill('SIGTERM');
  const r = await k.exited;
  assert.equal(r.code, 0);
  assert.ok(Date.now() - t0 < 3000, 'prompt');
  assert.ok(k.count('stopped') === 1);
  assert.ok(!existsSync(join(h.home, 'locks', 'keeper.lock')));
  JSON.parse(await readFile(join(h.home, 'keeper-state.json'), 'utf8'));
  JSON.parse(await readFile(join(h.home, 'health.json'), 'utf8'));
  await assert.rejects(fetch(`${String(started.url)}/livez`), 'server closed');
});

test('a port already in use: the keeper says so, keeps checking without its dashboard, and stops cleanly on SIGTERM (lock released)', async (t) => {
  const h = await homeWith({ ok: { token: { secret: 'env:TOK' }, probe: { url: api.url('/ok') } } });
  t.after(() => h.cleanup());
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as AddressInfo).port;
  const k = KeeperProcess.start(['--port', String(port), '--interval', '1'], { LATCHKEY_HOME: h.home, TOK: 't' });
  t.after(() => k.kill());
  const down = await k.waitFor((e) => e.event === 'http_unavailable');
  assert.match(String(down.message), new RegExp(`port ${port} on 127.0.0.1 is already in use.*--port`));
  await k.waitFor((e) => e.event === 'cycle' && Number(e.cycle) >= 2, 10_000);
  assert.ok(existsSync(join(h.home, 'health.json')), 'the report is written without the server');
  k.child.kill('SIGTERM');
  assert.equal((await k.exited).code, 0);
  assert.equal(k.count('stopped'), 1);
  assert.ok(!existsSync(join(h.home, 'locks', 'keeper.lock')));
});

test('a non-loopback --host is refused without --allow-remote and a token reference', async (t) => {
  const h = await homeWith({});
  t.after(() => h.cleanup());
  const k = KeeperProcess.start(['--host', '0.0.0.0', '--port', '0'], { LATCHKEY_HOME: h.home });
  assert.equal((await k.exited).code, 1);
  assert.match(k.stderr, /refusing to serve the keeper on 0\.0\.0\.0/);
  const raw = KeeperProcess.start(['--host', '0.0.0.0', '--port', '0', '--allow-remote', '--token', 'plain-token-value-123'], { LATCHKEY_HOME: h.home });
  assert.equal((await raw.exited).code, 1);
  assert.match(raw.stderr, /--token takes a secret reference/);
  assert.ok(!raw.stderr.includes('plain-token-value-123'), 'the value is never echoed');
});

test('a webhook that hangs does not slow the cycles; the revocation is alerted once, signed', async (t) => {
  const hooked: Array<{ id: string; body: string; sig: string }> = [];
  const hook = await startLoopbackApi((req) => {
    hooked.push({ id: String(req.headers['x-latchkey-delivery']), body: req.body, sig: String(req.headers['x-latchkey-signature']) });
    // never answers
  });
  t.after(() => hook.close());
  const h = await homeWith(
    { idp: idpSource() },
    { alerts: { webhook: { url: hook.url('/hook'), secret: 'env:HOOK_SECRET' } } },
  );
  t.after(() => h.cleanup());
  const rt = await login(h);
  const k = KeeperProcess.start(['--interval', '1', '--port', '0'], { LATCHKEY_HOME: h.home, HOOK_SECRET: 'hook-secret-value' });
  t.after(() => k.kill());
  await k.waitFor((e) => e.event === 'cycle');
  await idp.revokeGrantOf(rt);
  const changed = await k.waitFor((e) => e.event === 'state_change' && e.to === 'action_required', 10_000);
  assert.equal(changed.fix, 'latchkey login idp');
  const n = k.count('cycle');
  await k.waitFor((e) => e.event === 'cycle' && Number(e.cycle) >= n + 3, 10_000);
  assert.ok(hooked.length >= 1);
  assert.equal(new Set(hooked.map((x) => x.id)).size, 1, 'one alert for one change (retries reuse its id)');
  const first = hooked[0]!;
  assert.equal(first.sig, `sha256=${createHmac('sha256', 'hook-secret-value').update(first.body).digest('hex')}`);
  assert.ok(!k.stderr.includes('hook-secret-value'));
  k.child.kill('SIGTERM');
  assert.equal((await k.exited).code, 0);
});
