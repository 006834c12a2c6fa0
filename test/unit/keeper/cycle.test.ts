import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Secret } from '../../../src/core/secret.js';
import { Keeper } from '../../../src/keeper/keeper.js';
import { jsonLineLog } from '../../../src/keeper/log.js';
import { makeHome, type TempHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';
import { send, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

/**
 * The keeper's cycle, in process, against a real loopback API and real files: a source per
 * behaviour (`/ok`, `/dead` 401, `/html` a 200 HTML page, `/flaky` switchable, `/stall`).
 */

const TOKEN = 'tok-0123456789';

interface World {
  api: LoopbackApi;
  h: TempHome;
  clock: TestClock;
  logText: () => string;
  events: (name: string) => Array<Record<string, unknown>>;
  open(extra?: Partial<Parameters<typeof Keeper.open>[0]>): Promise<Keeper>;
  flaky: { status: number };
}

async function world(t: { after(fn: () => Promise<void>): void }, sources: string[], keeperCfg: Record<string, unknown> = {}): Promise<World> {
  const flaky = { status: 200 };
  const api = await startLoopbackApi((req, res) => {
    const path = req.path.split('?')[0];
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return send(res, 401, '{"error":"no token"}');
    if (path === '/ok') return send(res, 200, '{"ok":true}');
    if (path === '/dead') return send(res, 401, '{"error":"revoked"}');
    if (path === '/html') return send(res, 200, '<!doctype html><title>Sign in</title>', { 'content-type': 'text/html' });
    if (path === '/flaky') return send(res, flaky.status, '{}');
    if (path === '/stall') return undefined;
    send(res, 404, '{}');
  });
  const cfg = {
    version: 1,
    sources: Object.fromEntries(sources.map((s) => [s, { token: { secret: 'env:TOK' }, probe: { url: api.url(`/${s.replace(/\d+$/, '')}`) } }])),
    keeper: { probeTimeoutMs: 500, ...keeperCfg },
  };
  const h = await makeHome(cfg);
  t.after(async () => {
    await api.close();
    await h.cleanup();
  });
  const clock = new TestClock();
  let text = '';
  const log = jsonLineLog({ write: (c: string) => (text += c) }, clock);
  const lines = (): Array<Record<string, unknown>> => text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    api,
    h,
    clock,
    flaky,
    logText: () => text,
    events: (name) => lines().filter((l) => l.event === name),
    open: (extra = {}) => Keeper.open({ open: { home: h.home, env: { TOK: TOKEN }, clock }, log, intervalSeconds: 60, ...extra }),
  };
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
}

type Report = { generatedAt: string; sources: Record<string, { status: string; consecutiveFailures: number; history: unknown[]; fix: string | null; message: string }> };

test('a cycle probes every source, writes health.json once, persists state; a restart continues where it left off', async (t) => {
  const w = await world(t, ['ok', 'dead', 'html']);
  const k = await w.open();
  const s1 = await k.runCycle();
  assert.deepEqual([s1.checked, s1.exitCode], [3, 4]);
  const report = (await readJson(join(w.h.home, 'health.json'))) as unknown as Report;
  assert.equal(report.sources.ok?.status, 'ok');
  assert.equal(report.sources.dead?.status, 'action_required');
  assert.match(report.sources.dead?.fix ?? '', /TOK/);
  // A 200 HTML page is a working credential as far as the status goes; the keeper records it and runs on.
  assert.equal(report.sources.html?.status, 'ok');
  assert.equal(k.stages.report.writes, 1, 'exactly one write per cycle');
  await k.runCycle();
  assert.equal(k.stages.report.writes, 2);
  assert.match(await k.metrics.render(), /latchkey_keeper_health_report_writes_total 2/);
  await k.stop();

  // Restart: counters, history and lastOkAt carry over.
  const k2 = await w.open();
  assert.equal(k2.report.sources.dead?.consecutiveFailures, 2, 'report before the first cycle is the saved one');
  assert.equal(k2.sourceStates.dead?.timeline.s.length, 2, 'a first failure is re-checked at the next cycle');
  await k2.runCycle();
  assert.equal(k2.sourceStates.dead?.timeline.s.length, 2, 'after the second failure it sits one cycle out, across the restart');
  assert.equal(k2.sourceStates.dead?.consecutiveFailures, 2);
  assert.equal(k2.sourceStates.ok?.timeline.s.length, 3);
  assert.equal(k2.sourceStates.ok?.lastOkAt !== null, true);
  const state = await readJson(join(w.h.home, 'keeper-state.json'));
  assert.equal(state.cycles, 3);
  await k2.stop();
  // Alerts: only the first transition of `dead` (null → action_required) was announced.
  assert.equal(w.events('state_change').filter((e) => e.source === 'dead').length, 1);
});

test('a failing source backs off without starving the others; a manual probe ignores backoff', async (t) => {
  const w = await world(t, ['ok', 'dead']);
  const k = await w.open();
  for (let i = 0; i < 12; i++) await k.runCycle();
  assert.equal(w.api.requestsTo('/ok').length, 12, 'healthy source probed every cycle');
  // action_required backs off 0, 1, 3, 3… cycles: probed at cycles 1, 2, 4, 8, 12.
  assert.equal(k.sourceStates.dead?.timeline.s.length, 5);
  await k.probeNow('dead');
  assert.equal(k.sourceStates.dead?.timeline.s.length, 6, 'probed at once despite the backoff');
  await assert.rejects(k.probeNow('nope'), /unknown source/);
  await k.stop();
});

test('health.json deleted or corrupted by hand: rewritten at the next cycle, and the keeper says so', async (t) => {
  const w = await world(t, ['ok']);
  const k = await w.open();
  const path = join(w.h.home, 'health.json');
  await k.runCycle();
  await unlink(path);
  await k.runCycle();
  assert.equal(((await readJson(path)) as unknown as Report).sources.ok?.status, 'ok');
  await writeFile(path, '{"generatedAt": "tru');
  await k.runCycle();
  assert.equal(((await readJson(path)) as unknown as Report).sources.ok?.status, 'ok');
  const said = w.events('health_report_rewritten');
  assert.deepEqual(
    said.map((e) => e.found),
    ['deleted', 'corrupted'],
  );
  assert.match(String(said[0]?.message), /health\.json was deleted since the last cycle; rewriting it/);
  // A corrupt keeper-state.json is moved aside (never silently overwritten) and the keeper starts afresh.
  await k.stop();
  await writeFile(join(w.h.home, 'keeper-state.json'), 'garbage');
  const k2 = await w.open();
  assert.match(String(w.events('state_reset')[0]?.message), /moved it to .*keeper-state\.json\.corrupt-/);
  await k2.runCycle();
  await k2.stop();
});

test('a clock jump is reported and changes nothing else: the cycle runs, backoff counts cycles, history stays ordered', async (t) => {
  const w = await world(t, ['ok', 'dead']);
  const k = await w.open();
  await k.runCycle();
  w.clock.advance(3 * 86_400_000);
  const s = await k.runCycle();
  assert.equal(s.counts.ok, 1);
  const jump = w.events('clock_jump')[0];
  assert.ok(jump, 'the jump is logged');
  assert.ok(Number(jump.jumpMs) > 2.9 * 86_400_000);
  w.clock.advance(-5 * 86_400_000);
  await k.runCycle();
  assert.equal(w.events('clock_jump').length, 2);
  const ok = k.sourceStates.ok!;
  // The 3-day jump put the first probe outside the 24 h window; the probe after the jump back is
  // recorded at the latest time seen, so the timeline never runs backwards.
  assert.equal(ok.timeline.s.length, 2);
  assert.deepEqual(ok.timeline.toJSON().dt, [0, 0]);
  assert.equal(ok.consecutiveFailures, 0);
  // Backoff counted in cycles: the dead source was skipped exactly once (cycle 2) and probed in
  // cycle 3 (the probe of cycle 1 is outside the window after the jump).
  assert.equal(k.sourceStates.dead?.timeline.s.length, 1);
  assert.equal(k.sourceStates.dead?.consecutiveFailures, 2);
  await k.stop();
});

test('alerts once per state change, through a webhook that fails first, with the flapping source recovering', async (t) => {
  const w = await world(t, ['flaky', 'ok']);
  let hookCalls = 0;
  const hook = await startLoopbackApi((_req, res) => {
    hookCalls++;
    send(res, hookCalls === 1 ? 500 : 200);
  });
  t.after(() => hook.close());
  const k = await w.open({ alerts: { webhook: { url: hook.url('/hook') }, retryBaseMs: 5 } });
  await k.runCycle(); // ok: first healthy verdict, no alert
  w.flaky.status = 503;
  await k.runCycle(); // ok -> degraded
  await k.runCycle(); // still degraded (skipped or same): no alert
  await k.runCycle();
  w.flaky.status = 200;
  await k.probeNow('flaky'); // degraded -> ok
  await k.alerts.idle();
  const ids = new Set(hook.requestsTo('/hook').map((r) => String(r.headers['x-latchkey-delivery'])));
  const bodies = [...ids].map((id) => JSON.parse(hook.requestsTo('/hook').find((r) => r.headers['x-latchkey-delivery'] === id)!.body) as Record<string, unknown>);
  assert.deepEqual(
    bodies.map((b) => `${b.source}:${b.from}->${b.to}`).sort(),
    ['flaky:degraded->ok', 'flaky:ok->degraded'],
  );
  assert.equal(w.events('state_change').length, 2);
  await k.stop();
});

test('stopping mid-cycle: stalled probes are abandoned (not counted as failures), state and report are saved', async (t) => {
  const w = await world(t, ['ok', 'stall'], { probeTimeoutMs: 30_000 });
  const k = await w.open();
  const cycle = k.runCycle();
  await new Promise((r) => setTimeout(r, 300));
  const started = performance.now();
  await k.stop();
  assert.ok(performance.now() - started < 2000, 'stop does not wait for the stalled probe');
  await cycle;
  const state = (await readJson(join(w.h.home, 'keeper-state.json'))) as { sources: Record<string, { consecutiveFailures: number; status: string | null }> };
  assert.equal(state.sources.ok?.status, 'ok', 'finished source saved');
  assert.equal(state.sources.stall?.consecutiveFailures, 0, 'the abandoned probe is not a failure');
  assert.equal(state.sources.stall?.status, null);
});

test('a stalled upstream is unreachable after the timeout, while the rest of the cycle goes on', async (t) => {
  const w = await world(t, ['ok', 'stall']);
  const k = await w.open();
  const s = await k.runCycle();
  assert.equal(k.report.sources.stall?.status, 'unreachable');
  assert.equal(k.report.sources.ok?.status, 'ok');
  assert.ok(s.durationMs < 3000, `cycle took ${s.durationMs} ms`);
  await k.stop();
});

test('a source added to config.json while the keeper runs is picked up at the next cycle', async (t) => {
  const w = await world(t, ['ok']);
  const k = await w.open();
  await k.runCycle();
  const cfg = (await readJson(w.h.configPath)) as { sources: Record<string, unknown> };
  cfg.sources.ok2 = { token: { secret: 'env:TOK' }, probe: { url: w.api.url('/ok') } };
  await writeFile(w.h.configPath, JSON.stringify(cfg));
  await k.runCycle();
  assert.deepEqual(Object.keys(k.report.sources).sort(), ['ok', 'ok2']);
  assert.equal(w.events('config_reloaded').length, 1);
  // A broken edit keeps the old config running, and says so.
  await writeFile(w.h.configPath, '{ "sources": ');
  await k.runCycle();
  assert.equal(w.events('config_reload_failed').length, 1);
  assert.deepEqual(Object.keys(k.report.sources).sort(), ['ok', 'ok2']);
  await k.stop();
});

test('the library entry point opens a keeper lazily (openKeeper)', async (t) => {
  const w = await world(t, ['ok']);
  const { openKeeper } = await import('../../../src/index.js');
  const k = await openKeeper({ open: { home: w.h.home, env: { TOK: TOKEN }, clock: w.clock } });
  const s = await k.runCycle();
  assert.equal(s.counts.ok, 1);
  await k.stop();
});

test('a port already in use: the keeper keeps every source checked without its server, says so, and binds once the port is free', async (t) => {
  const w = await world(t, ['ok']);
  const { createServer } = await import('node:net');
  const { startKeeperDaemon } = await import('../../../src/keeper/daemon.js');
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const port = (blocker.address() as { port: number }).port;
  let text = '';
  const log = jsonLineLog({ write: (c: string) => (text += c) }, w.clock);
  const events = (name: string): Array<Record<string, unknown>> =>
    text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.event === name);
  const d = await startKeeperDaemon({ home: w.h.home, env: { TOK: TOKEN }, log, port, intervalSeconds: 1, httpRetryMs: 50 });
  t.after(() => d.stop());
  assert.equal(d.http, undefined);
  const down = events('http_unavailable')[0];
  assert.match(String(down?.message), new RegExp(`port ${port} on 127.0.0.1 is already in use.*--port.*runs on without its dashboard.*tries the port again`));
  while (events('cycle').length === 0) await new Promise((r) => setTimeout(r, 20));
  assert.equal((await readJson(join(w.h.home, 'health.json'))).sources !== undefined, true, 'health.json is written without the server');
  await new Promise<void>((r) => blocker.close(() => r()));
  const server = (): { port: number; url: string } | undefined => d.http;
  while (!server()) await new Promise((r) => setTimeout(r, 20));
  assert.equal(server()?.port, port);
  assert.equal(events('http_listening').length, 1);
  assert.equal((await fetch(`${server()?.url}/livez`)).status, 200);
  assert.equal(await d.stop(), 0);
});

test('a keeper stopped while its port is still taken stops cleanly (no late bind)', async (t) => {
  const w = await world(t, ['ok']);
  const { createServer } = await import('node:net');
  const { startKeeperDaemon } = await import('../../../src/keeper/daemon.js');
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as { port: number }).port;
  const d = await startKeeperDaemon({ home: w.h.home, env: { TOK: TOKEN }, log: () => undefined, port, intervalSeconds: 1, httpRetryMs: 10 });
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(await d.stop(), 0);
  assert.equal(d.http, undefined);
});

test('manual probes that wait for their turn are shared: ten "probe all" presses during a cycle cost one more round, not ten', async (t) => {
  const w = await world(t, ['ok', 'html']);
  const k = await w.open();
  t.after(() => k.stop());
  const cycle = k.runCycle();
  const presses = Array.from({ length: 10 }, () => k.probeNow());
  const single = k.probeNow('ok'); // covered by the waiting "all" probe
  await cycle;
  const reports = await Promise.all([...presses, single]);
  assert.ok(reports.every((r) => r === reports[0]), 'every caller gets the same fresh report');
  assert.equal(w.api.requestsTo('/ok').length, 2, 'one cycle + one shared manual round');
  assert.equal(w.api.requestsTo('/html').length, 2);
  // Once a probe has started, a new request queues a fresh one (it may want a newer answer).
  await k.probeNow('ok');
  assert.equal(w.api.requestsTo('/ok').length, 3);
});

test('/readyz data: a keeper whose cycles stopped finishing is not ready, whatever its last report said', async (t) => {
  const w = await world(t, ['ok']);
  const k = await w.open({ intervalSeconds: 60 });
  t.after(() => k.stop());
  await k.runCycle();
  assert.equal(k.readiness.ready, true);
  w.clock.advance(140_000); // within 2.5 intervals
  assert.equal(k.readiness.ready, true);
  w.clock.advance(20_000);
  assert.equal(k.readiness.ready, false);
  assert.match(k.readiness.reason, /no cycle has finished for \d+ min .*stuck/);
  const body = JSON.parse(k.readinessBytes.toString('utf8')) as { ready: boolean; reason: string };
  assert.equal(body.ready, false);
  assert.match(body.reason, /stuck/);
  await k.runCycle();
  assert.equal(k.readiness.ready, true, 'ready again once a cycle finishes');
  w.clock.advance(-3_600_000); // a clock set back is not "stuck"
  assert.equal(k.readiness.ready, true);
});

test('/readyz: two unreachable sources make it 503 naming both (never "every source is usable"); the rules hold for every verdict', async (t) => {
  const w = await world(t, ['ok', 'stall', 'stall2']);
  const { startKeeperDaemon } = await import('../../../src/keeper/daemon.js');
  const d = await startKeeperDaemon({ home: w.h.home, env: { TOK: TOKEN }, log: () => undefined, port: 0, intervalSeconds: 60, open: { clock: w.clock } });
  t.after(() => d.stop());
  const url = `${d.http!.url}/readyz`;
  while (/first cycle has not finished/.test(d.keeper.readiness.reason)) await new Promise((r) => setTimeout(r, 20));
  const res = await fetch(url);
  const body = (await res.json()) as { ready: boolean; reason: string; unreachable: string[] };
  assert.equal(res.status, 503);
  assert.equal(body.ready, false);
  assert.deepEqual(body.unreachable.sort(), ["stall", "stall2"]);
  assert.match(body.reason, /2 source\(s\) unreachable: stall, stall2/);
  assert.doesNotMatch(body.reason, /every source is usable/);
  // The rule against each verdict: only unreachable and action_required make it unready.
  const { exitCodeFor } = await import('../../../src/keeper/health-report.js');
  for (const [name, s] of Object.entries(d.keeper.report.sources)) {
    const blocking = s.status === 'unreachable' || s.status === 'action_required';
    assert.equal(body.reason.includes(name), blocking, `${name} (${s.status}) named in the reason exactly when it blocks readiness`);
  }
  assert.equal(exitCodeFor(Object.values(d.keeper.report.sources).map((s) => s.status)), 3);
});

test('nextCycleAt names the next cycle (interval ± 10 % after this one started), in /readyz and in the report written by the cycle', async (t) => {
  const w = await world(t, ['ok']);
  const { startKeeperDaemon } = await import('../../../src/keeper/daemon.js');
  const d = await startKeeperDaemon({ home: w.h.home, env: { TOK: TOKEN }, log: () => undefined, port: 0, intervalSeconds: 600, open: { clock: w.clock } });
  t.after(() => d.stop());
  while (/first cycle has not finished/.test(d.keeper.readiness.reason)) await new Promise((r) => setTimeout(r, 20));
  const ready = (await (await fetch(`${d.http!.url}/readyz`)).json()) as { stages: { schedule: { nextCycleAt: string; lastCycleStartedAt: string } } };
  const gap = Date.parse(ready.stages.schedule.nextCycleAt) - Date.parse(ready.stages.schedule.lastCycleStartedAt);
  assert.ok(gap >= 540_000 && gap <= 660_000, `next cycle ${gap} ms after the last one started`);
  const report = (await readJson(join(w.h.home, 'health.json'))) as { keeper?: { nextCycleAt: string } };
  assert.equal(report.keeper?.nextCycleAt, ready.stages.schedule.nextCycleAt, 'health.json says the same');
});

test('a source added to config.json is seen by "probe all" before the next cycle; one removed disappears cleanly (state, report, metrics, no alert)', async (t) => {
  const w = await world(t, ['ok', 'dead']);
  const k = await w.open(); // not started: no watch, no timer — only the checks probeNow and the cycle make
  t.after(() => k.stop());
  await k.runCycle();
  assert.equal(k.report.sources.dead?.status, 'action_required');
  const cfg = JSON.parse(await readFile(w.h.configPath, 'utf8')) as { sources: Record<string, unknown> };
  cfg.sources.html = cfg.sources.ok;
  await writeFile(w.h.configPath, JSON.stringify(cfg));
  const probed = await k.probeNow();
  assert.equal(probed.sources.html?.status, 'ok', 'probe all probed the source added since the last cycle (a copy of ok)');
  assert.equal(w.api.requestsTo('/ok').length, 3, 'ok twice (cycle + probe all) and the new source once');
  delete cfg.sources.dead;
  await writeFile(w.h.configPath, JSON.stringify(cfg));
  const s = await k.runCycle();
  assert.deepEqual(Object.keys(k.report.sources).sort(), ['html', 'ok']);
  assert.equal(k.sourceStates.dead, undefined);
  assert.deepEqual(s.changes.filter((c) => c.source === 'dead'), []);
  assert.doesNotMatch(await k.metrics.render(), /latchkey_source_(up|status)\{source="dead"/, 'its gauges are gone (its counters stay, as Prometheus counters do)');
  await assert.rejects(k.probeNow('dead'), /unknown source "dead"/);
  assert.match(w.logText(), /"event":"config_reloaded".*"removed":\["dead"\]/);
});

test('the refresh timer never hammers an IdP that refuses the client: one attempt, the verdict at once, the next try an interval later', async (t) => {
  const idp = await startLoopbackApi((req, res) => {
    if (req.path === '/token') return send(res, 401, '{"error":"invalid_client","error_description":"unknown client"}', { 'content-type': 'application/json' });
    send(res, 200, '{"ok":true}');
  });
  const h = await makeHome({ version: 1, sources: { hub: { oauth: { tokenEndpoint: idp.url('/token'), clientId: 'c' }, probe: { url: idp.url('/api') } } } });
  t.after(async () => {
    await idp.close();
    await h.cleanup();
  });
  const { openLatchkey } = await import('../../../src/latchkey.js');
  const lk = await openLatchkey({ home: h.home, env: {} });
  await lk.installGrant('hub', { access_token: 'at', refresh_token: 'rt', expires_in: 3, token_type: 'Bearer' });
  await lk.close();
  let text = '';
  const k = await Keeper.open({ open: { home: h.home, env: {} }, log: jsonLineLog({ write: (c: string) => (text += c) }, { now: () => Date.now() }), intervalSeconds: 3600, random: () => 0 });
  t.after(() => k.stop());
  k.start();
  // Due at 2 s (⅔ of 3 s); watch well past the expiry.
  await new Promise((r) => setTimeout(r, 4500));
  const calls = idp.requestsTo('/token').length;
  assert.ok(calls >= 1 && calls <= 3, `${calls} token requests in 4.5 s`);
  assert.equal(k.report.sources.hub?.status, 'action_required', 'the refusal is a verdict now, not at the next cycle in an hour');
  assert.equal(k.report.sources.hub?.operatorAction, 'fix_config');
  const due = Date.parse(k.stages.refresh.nextDueAt ?? '');
  assert.ok(due - Date.now() > 3_000_000, 'the next attempt is an interval away');
});

test('expired keyspace entries (the gateway\'s sessions, tickets) are swept after a cycle, at most every 5 minutes; live ones stay', async (t) => {
  const w = await world(t, ['ok']);
  const k = await w.open();
  const store = k.lk.store;
  await store.put('tickets', 'spent', new Secret('ticket-value-1'), 1);
  await store.put('sessions', 'live', new Secret('session-value-1'), 3_600_000);
  await new Promise((r) => setTimeout(r, 20)); // the file store's expiry runs on the wall clock
  await k.runCycle();
  assert.equal(await store.delete('tickets', 'spent'), false, 'the expired entry is gone (not merely hidden) after the cycle');
  assert.equal((await store.get('sessions', 'live'))?.reveal(), 'session-value-1');
  // The next cycles within 5 minutes (keeper clock) do not list the keyspaces again…
  await store.put('tickets', 'spent-later', new Secret('ticket-value-2'), 1);
  await new Promise((r) => setTimeout(r, 20));
  await k.runCycle();
  assert.equal(await store.get('tickets', 'spent-later'), undefined, 'expired: invisible to readers at once');
  await store.put('tickets', 'spent-later', new Secret('ticket-value-2'), 1);
  await new Promise((r) => setTimeout(r, 20));
  await k.runCycle();
  assert.ok(w.events('keyspace_sweep').length === 1, w.logText());
  // …the first cycle 5 minutes after the last sweep does.
  w.clock.advance(5 * 60_000);
  await k.runCycle();
  assert.equal(await store.delete('tickets', 'spent-later'), false);
  assert.deepEqual(
    w.events('keyspace_sweep').map((e) => e.removed),
    [1, 1],
  );
  await k.stop(0);
});
