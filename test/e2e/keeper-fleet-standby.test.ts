/**
 * Fleet mode, keeper leadership on a real PostgreSQL store and a real IdP: the leader publishes
 * its report to the store; a keeper started with --standby serves its dashboard and /api/health
 * at once from that shared state (marked standby, naming the leader) and never probes; when the
 * leader is SIGKILLed the standby takes the lead, runs cycles, publishes under a newer epoch, and
 * its own report says it leads.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BROWSER_SKIP_REASON, browserAvailable, browserRequired, launchBrowser } from '../fixtures/browser.js';
import { pgExec, pgSkipReason } from '../fixtures/pg.js';
import { runCli } from '../helpers/home.js';
import { fleetKeeperStage, KeeperProcess } from './keeper-support.js';

const skip = pgSkipReason();

interface Health {
  sources: Record<string, { status: string; refreshAt?: string | null }>;
  keeper?: { fleet?: { role: string; store: string; leader: { epoch: number; pid: number; host: string } | null; publishedAt: string | null } };
}

async function health(url: string): Promise<Health> {
  const res = await fetch(`${url}/api/health`);
  assert.equal(res.status, 200);
  return (await res.json()) as Health;
}

/** Asks until `pred` holds (each answer is checked; gives up after `tries`). */
async function until(url: string, pred: (h: Health) => boolean, tries = 150): Promise<Health> {
  let last: Health | undefined;
  for (let i = 0; i < tries; i++) {
    last = await health(url);
    if (pred(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.fail(`never got the expected report; the last one: ${JSON.stringify(last?.keeper?.fleet)} ${JSON.stringify(Object.keys(last?.sources ?? {}))}`);
}

test('fleet: a standby serves the leader\'s shared state at once, then leads when the leader is SIGKILLed', { skip }, async (t) => {
  const { db, idp, a, b, storeEnv } = await fleetKeeperStage(t);

  const leader = KeeperProcess.start(['--interval', '1', '--port', '0', '--standby'], { LATCHKEY_HOME: a.home, ...storeEnv });
  t.after(() => leader.kill());
  await leader.waitFor((e) => e.event === 'leading');
  assert.equal(leader.count('standby_serving'), 0, 'a keeper that finds no leader leads at once');
  const leaderUrl = String((await leader.waitFor((e) => e.event === 'started')).url);
  await leader.waitFor((e) => e.event === 'cycle');
  const led = await until(leaderUrl, (h) => h.sources.idp?.status === 'ok' && h.keeper?.fleet?.role === 'leader');
  const firstEpoch = led.keeper!.fleet!.leader!.epoch;
  assert.equal(led.keeper!.fleet!.leader!.pid, leader.child.pid);

  // The standby: its HTTP server is up while it stands by, serving what the leader published.
  const standby = KeeperProcess.start(['--interval', '1', '--port', '0', '--standby'], { LATCHKEY_HOME: b.home, ...storeEnv });
  t.after(() => standby.kill());
  await standby.waitFor((e) => e.event === 'standby');
  const standbyUrl = String((await standby.waitFor((e) => e.event === 'started')).url);
  assert.match(standbyUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
  const served = await until(standbyUrl, (h) => h.sources.idp !== undefined);
  assert.equal(served.sources.idp!.status, 'ok', 'the leader\'s verdict, read from the store');
  assert.equal(served.keeper?.fleet?.role, 'standby');
  assert.equal(served.keeper?.fleet?.leader?.pid, leader.child.pid, 'names the leader');
  assert.equal(served.keeper?.fleet?.leader?.epoch, firstEpoch);
  assert.match(served.keeper?.fleet?.store ?? '', /^postgres:\/\//);
  assert.doesNotMatch(JSON.stringify(served), /access_token|refresh_token|"rt"/i);
  const ready = await fetch(`${standbyUrl}/readyz`);
  assert.equal(ready.status, 200);
  assert.equal(((await ready.json()) as { role: string }).role, 'standby');
  // Its metrics say it stands by and how old the leader's state is; the per-source series are the
  // leader's alone (a source alert fires once per fleet).
  const standbyMetrics = await (await fetch(`${standbyUrl}/metrics`)).text();
  assert.match(standbyMetrics, /^latchkey_keeper_standby 1$/m);
  assert.match(standbyMetrics, /^latchkey_keeper_published_state_age_seconds \d/m);
  assert.match(standbyMetrics, new RegExp(`^latchkey_keeper_leader_epoch ${firstEpoch}$`, 'm'));
  assert.doesNotMatch(standbyMetrics, /latchkey_source_/);
  assert.match(await (await fetch(`${leaderUrl}/metrics`)).text(), /^latchkey_source_up\{source="idp"\} 1$/m);
  // `latchkey preflight` on the standby's machine (no health.json of its own) answers from the
  // state the leader published, as it would from a local keeper's report.
  const pre = await runCli(['preflight', 'idp', '--json'], { env: { LATCHKEY_HOME: b.home, ...storeEnv } });
  assert.equal(pre.code, 0, pre.stderr);
  const preReport = JSON.parse(pre.stdout) as { from: string; results: { source: string; status: string; from?: string }[] };
  assert.equal(preReport.from, 'keeper', pre.stdout);
  assert.equal(preReport.results[0]?.status, 'ok');
  // The dashboard page is served and has the place that says which role this keeper plays.
  const html = await (await fetch(`${standbyUrl}/`)).text();
  assert.match(html, /id="fleet"/);
  // In a real browser (when there is one; LATCHKEY_TEST_BROWSER=1 makes it mandatory): the
  // standby's dashboard says it stands by, names the leader, and lists the leader's verdicts.
  const browser = browserAvailable().ok || browserRequired() ? await launchBrowser() : undefined;
  if (browser) t.after(() => browser.close());
  else t.diagnostic(`dashboard rendering not checked: ${browserAvailable().reason ?? BROWSER_SKIP_REASON}`);
  const page = await browser?.newPage();
  if (page) {
    await page.goto(`${standbyUrl}/`);
    await page.waitForSelector('li[data-source="idp"][data-status="ok"]', { timeout: 15_000 });
    const text = await page.textContent('#fleet[data-role="standby"]:not([hidden])', { timeout: 15_000 });
    assert.match(text ?? '', new RegExp(`Standby for postgres://.*pid ${leader.child.pid}`));
  }
  const probesBefore = idp.stats.protectedOk;
  const cyclesBefore = leader.count('cycle');
  // Two cycles on: the first may have probed before the counters were read.
  await leader.waitFor((e) => e.event === 'cycle', 15_000, leader.events.length);
  await leader.waitFor((e) => e.event === 'cycle', 15_000, leader.events.length);
  assert.ok(leader.count('cycle') >= cyclesBefore + 2, 'the leader keeps cycling');
  assert.equal(standby.count('cycle'), 0, 'the standby does not probe while the leader lives');
  assert.ok(idp.stats.protectedOk > probesBefore, 'the leader probes');

  leader.child.kill('SIGKILL');
  await leader.exited;
  await standby.waitFor((e) => e.event === 'leading', 30_000);
  await standby.waitFor((e) => e.event === 'cycle', 30_000);
  const now = await until(standbyUrl, (h) => h.keeper?.fleet?.role === 'leader');
  assert.equal(now.keeper!.fleet!.leader!.pid, standby.child.pid, 'its own dashboard says it leads');
  assert.ok(now.keeper!.fleet!.leader!.epoch > firstEpoch, 'a newer epoch');
  assert.equal(now.sources.idp?.status, 'ok');
  const ledMetrics = await (await fetch(`${standbyUrl}/metrics`)).text();
  assert.match(ledMetrics, /^latchkey_source_up\{source="idp"\} 1$/m, 'once it leads, its own per-source series');
  assert.doesNotMatch(ledMetrics, /latchkey_keeper_standby/);
  if (page) {
    // The page polls /api/health: the same tab now says this keeper leads.
    const text = await page.textContent('#fleet[data-role="leader"]:not([hidden])', { timeout: 30_000 });
    assert.match(text ?? '', new RegExp(`This keeper leads postgres://.*pid ${standby.child.pid}`));
  }
  // What it publishes is stamped with its epoch.
  const rows = await pgExec<{ epoch: string }>(`SELECT epoch FROM "${db.schema}".keeper_report`);
  assert.equal(Number(rows[0]!.epoch), now.keeper!.fleet!.leader!.epoch);
  assert.equal(idp.stats.revokedGrants, 0);
  standby.child.kill('SIGINT');
  assert.equal((await standby.exited).code, 0, standby.stderr);
});
