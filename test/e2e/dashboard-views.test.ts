import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { launchBrowser, skipUnlessBrowser } from '../fixtures/browser.js';
import { startIdp } from '../fixtures/idp.js';
import { makeHome, repoRoot } from '../helpers/home.js';
import { send, startLoopbackApi } from '../helpers/loopback-api.js';
import { openLatchkey } from '../../src/latchkey.js';
import { startKeeperDaemon } from '../../src/keeper/daemon.js';
import { appendTimeline, emptyActivity, emptySourceState, emptyTimeline, loadKeeperState, type KeeperStateFile, type Timeline } from '../../src/keeper/state.js';
import type { HealthStatus } from '../../src/client/probe-types.js';

/**
 * The dashboard in real headless Chromium at phone (390×844) and desktop (1280×800) widths,
 * light and dark, over a real keeper whose state already holds 24 h of probes per source. The
 * tests read the page as a person would see it — the timeline segments against the history the
 * keeper stored, column headers against their cells, the countdown bar, the empty state, the
 * keyboard — and save screenshots to test-output/.
 */

const OUT = join(repoRoot, 'test-output');
const TOKEN = 'tok-0123456789';
const DAY_MS = 86_400_000;

/** 24 h of probes every 5 min ending now: `pattern(i)` says the status of probe i (0 = oldest). */
function dayOfProbes(now: number, pattern: (i: number) => HealthStatus, latency: (i: number) => number | null): Timeline {
  const tl = emptyTimeline();
  for (let i = 0; i < 287; i++) appendTimeline(tl, now - DAY_MS + 150_000 + i * 300_000, pattern(i), latency(i));
  return tl;
}

/** The probes a timeline SVG draws, in time order: `M<x>` of each sub-path with its status letter. */
async function drawnSegments(page: Page, source: string): Promise<Array<{ x: number; letter: string }>> {
  return page.$$eval(`li[data-source="${source}"] svg.timeline path[data-status]`, (paths) => {
    const letters: Record<string, string> = { ok: 'o', expiring: 'e', degraded: 'd', unreachable: 'u', action_required: 'a' };
    const out: Array<{ x: number; letter: string }> = [];
    for (const p of paths) {
      const letter = letters[p.getAttribute('data-status') ?? ''] ?? '?';
      for (const m of (p.getAttribute('d') ?? '').matchAll(/M([\d.]+) /g)) out.push({ x: Number(m[1]), letter });
    }
    return out.sort((a, b) => a.x - b.x);
  });
}

/** Header cell lefts vs the first row's cell lefts (px). */
async function columnOffsets(page: Page): Promise<Array<{ header: string; dx: number }>> {
  return page.evaluate(() => {
    const heads = [...document.querySelectorAll('.cols > span')];
    const cells = [...(document.querySelector('#sources > li .main')?.children ?? [])];
    return heads.map((h, i) => ({ header: h.textContent ?? '', dx: Math.round((cells[i]?.getBoundingClientRect().left ?? NaN) - h.getBoundingClientRect().left) }));
  });
}

test('dashboard at phone and desktop widths, light and dark: 24 h timelines match the stored history, headers align, countdown bar, keyboard, config error', async (t) => {
  if (!skipUnlessBrowser(t)) return;
  const idp = await startIdp({ accessTokenTtl: 120 });
  t.after(() => idp.close());
  const api = await startLoopbackApi((req, res) => {
    const path = req.path.split('?')[0];
    if (path === '/dead') return send(res, 401, '{"error":"revoked"}');
    if (path === '/busy') return send(res, 503, '{"error":"maintenance"}');
    send(res, 200, '{"ok":true}');
  });
  t.after(() => api.close());
  const tok = (path: string) => ({ token: { secret: 'env:TOK' }, probe: { url: api.url(path) } });
  const config = {
    version: 1,
    sources: {
      idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }, probe: { url: idp.protectedUrl } },
      github: tok('/ok'),
      'a-source-with-a-rather-long-name-for-layout': tok('/ok'),
      slack: tok('/busy'),
      notion: tok('/dead'),
    },
    keeper: { probeTimeoutMs: 2000 },
  };
  const h = await makeHome(config);
  const lk = await openLatchkey({ home: h.home, env: {} });
  await lk.installGrant('idp', await idp.mintGrant());
  await lk.close();

  // Yesterday and today as the keeper would have recorded them (one probe every 5 min).
  const now = Date.now();
  const seeded: Record<string, Timeline> = {
    idp: dayOfProbes(now, () => 'ok', (i) => 40 + (i % 9) * 3),
    github: dayOfProbes(now, (i) => (i >= 100 && i < 112 ? 'unreachable' : i === 200 ? 'degraded' : 'ok'), (i) => (i >= 100 && i < 112 ? null : 80 + Math.round(30 * Math.sin(i / 12)))),
    'a-source-with-a-rather-long-name-for-layout': dayOfProbes(now, () => 'ok', () => 12),
    slack: dayOfProbes(now, (i) => (i < 250 ? 'ok' : 'degraded'), (i) => 200 + (i % 40) * 5),
    notion: dayOfProbes(now, (i) => (i < 270 ? 'ok' : 'action_required'), () => 95),
  };
  const state: KeeperStateFile = { version: 1, savedAt: new Date(now).toISOString(), cycles: 287, sources: {}, activity: emptyActivity() };
  for (const [name, timeline] of Object.entries(seeded)) state.sources[name] = { ...emptySourceState(), status: 'ok', timeline };
  await writeFile(join(h.home, 'keeper-state.json'), JSON.stringify(state));

  const daemon = await startKeeperDaemon({ home: h.home, env: { TOK: TOKEN }, port: 0, log: () => undefined }); // default 300 s interval
  t.after(() => daemon.stop());
  // After hooks run in the order registered: the home goes once the keeper writing to it stopped.
  t.after(() => h.cleanup());
  const url = `${daemon.http!.url}/`;
  while (daemon.keeper.stages.schedule.cycles === 0 || /first cycle/.test(daemon.keeper.readiness.reason)) await new Promise((r) => setTimeout(r, 50));
  // As the keeper saved it, read through its own loader (timelines are varints on disk), each
  // timeline in its JSON form (arrays of exactly its probes, as /api/history sends them).
  const stored = JSON.parse(JSON.stringify((await loadKeeperState(join(h.home, 'keeper-state.json'))).state)) as KeeperStateFile;

  const browser = await launchBrowser();
  t.after(() => browser.close());
  await mkdir(OUT, { recursive: true });

  for (const view of [
    { name: 'desktop', viewport: { width: 1280, height: 800 }, mobile: false },
    { name: 'phone', viewport: { width: 390, height: 844 }, mobile: true },
  ]) {
    const ctx = await browser.newContext({ viewport: view.viewport, deviceScaleFactor: view.mobile ? 2 : 1, isMobile: view.mobile, hasTouch: view.mobile });
    const page = await ctx.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || /Content Security Policy|Refused to/i.test(m.text())) problems.push(m.text());
    });
    page.on('pageerror', (e) => problems.push(e.message));
    await page.goto(url);
    await page.waitForSelector('main#app[data-state="ready"][data-history="ready"]', { timeout: 15_000 });
    assert.deepEqual(problems, [], `${view.name}: no script errors or CSP violations`);

    // Every stored probe of the last 24 h is one segment, in order, at its time.
    const gen = Date.parse((await page.getAttribute('main#app', 'data-generated-at')) ?? '');
    for (const [name, src] of Object.entries(stored.sources)) {
      const tl = src.timeline;
      const drawn = await drawnSegments(page, name);
      assert.equal(drawn.length, tl.s.length, `${view.name}/${name}: one segment per stored probe`);
      assert.equal(drawn.map((d) => d.letter).join(''), tl.s, `${view.name}/${name}: segment statuses in stored order`);
      let at = tl.t0;
      for (let i = 0; i < tl.s.length; i++) {
        at += i === 0 ? 0 : (tl.dt[i] as number);
        const x = ((at * 1000 - (gen - DAY_MS)) / DAY_MS) * 1000;
        assert.ok(Math.abs(Math.max(0, x) - (drawn[i]?.x ?? NaN)) < 0.2, `${view.name}/${name} probe ${i}: drawn at ${drawn[i]?.x}, stored time puts it at ${x.toFixed(1)}`);
      }
    }
    // The uptime figure is the stored history's.
    const githubUsable = [...stored.sources.github!.timeline.s].filter((c) => c === 'o' || c === 'e').length;
    assert.match((await page.textContent('li[data-source="github"] .tl-uptime')) ?? '', new RegExp(`^${Math.floor((githubUsable / stored.sources.github!.timeline.s.length) * 1000) / 10} % usable · ${stored.sources.github!.timeline.s.length} probes$`));
    // Latency sparkline drawn from the same history.
    const spark = (await page.getAttribute('li[data-source="slack"] svg.spark path', 'd')) ?? '';
    assert.equal(spark.match(/[ML]/g)?.length, stored.sources.slack!.timeline.l.filter((l) => l >= 0).length, 'one sparkline point per probe with a latency');

    // The OAuth token's countdown: refresh (at ⅔ of 120 s) before expiry, the bar's tick at ~⅔.
    const life = (await page.textContent('li[data-source="idp"] .life-text')) ?? '';
    assert.match(life, /^refresh in (1m \d\ds|\d+s) · expires in (1m \d\ds|\d+s)$/, life);
    if (!view.mobile) {
      const mark = await page.$eval('li[data-source="idp"] .mark', (e) => {
        const bar = (e.parentElement as HTMLElement).getBoundingClientRect();
        return (e.getBoundingClientRect().left + 1 - bar.left) / bar.width;
      });
      assert.ok(mark > 0.66 && mark < 0.73, `refresh tick at ${(mark * 100).toFixed(1)} % of the lifetime`);
      // Headers sit over their values (the old layout had them ~43 px to the right).
      for (const { header, dx } of await columnOffsets(page)) assert.ok(Math.abs(dx) <= 2, `header "${header}" is ${dx}px off its column`);
      // Keyboard: Tab reaches "Probe all now", then the rows' controls; focus is visible.
      await page.keyboard.press('Tab');
      assert.equal(await page.evaluate(() => document.activeElement?.id), 'probe-all');
      const outline = await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle);
      assert.notEqual(outline, 'none', 'visible focus');
      // The timeline is focusable and arrow keys step through its probes.
      await page.focus('li[data-source="github"] svg.timeline');
      await page.keyboard.press('End');
      await page.keyboard.press('ArrowLeft');
      assert.match((await page.textContent('li[data-source="github"] .tl-info')) ?? '', /^\d\d:\d\d · ok · \d+ ms$/);
    } else {
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `no horizontal scrolling at 390 px (overflow ${overflow}px)`);
    }
    // The keeper's own activity: next cycle in ~5 min, the planned refresh, the first cycle listed.
    assert.match((await page.textContent('#k-next-cycle')) ?? '', /^next cycle in [45]m \d\ds$/);
    assert.match((await page.textContent('#k-next-refresh')) ?? '', /^next refresh in (1m \d\ds|\d+s) \(idp\)$/);
    assert.match((await page.textContent('#k-totals')) ?? '', /^24 h: 5 probes · 1 refreshes$|^24 h: 5 probes · \d+ refreshes/);
    await page.screenshot({ path: join(OUT, `dashboard-${view.name}-light.png`), fullPage: true });
    await page.emulateMedia({ colorScheme: 'dark' });
    const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    assert.equal(bg, 'rgb(13, 17, 23)', 'dark mode follows prefers-color-scheme');
    await page.screenshot({ path: join(OUT, `dashboard-${view.name}-dark.png`), fullPage: true });
    await ctx.close();
  }

  // A config saved with a mistake: the page says the keeper runs on the last good one.
  await writeFile(h.configPath, JSON.stringify({ ...config, sources: { ...config.sources, github: { ...tok('/ok'), probbe: {} } } }));
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url);
  await page.waitForSelector('#config-error:not([hidden])', { timeout: 15_000 });
  assert.match((await page.textContent('#config-error')) ?? '', /config\.json was not reloaded: .*probbe.*last good config/s);
  await page.screenshot({ path: join(OUT, 'dashboard-config-error.png') });
});

test('dashboard empty state: the `latchkey add` hint, at phone width', async (t) => {
  if (!skipUnlessBrowser(t)) return;
  const h = await makeHome({ version: 1, sources: {} });
  const daemon = await startKeeperDaemon({ home: h.home, env: {}, port: 0, log: () => undefined });
  t.after(() => daemon.stop());
  t.after(() => h.cleanup());
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const page = await browser.newPage({ viewport: { width: 390, height: 844 }, isMobile: true });
  await page.goto(`${daemon.http!.url}/`);
  await page.waitForSelector('#empty:not([hidden])', { timeout: 15_000 });
  const text = (await page.textContent('#empty')) ?? '';
  assert.match(text, /No sources yet/);
  assert.match(text, /latchkey add github --preset github --token env:GITHUB_TOKEN/);
  assert.equal(await page.isVisible('.cols'), false, 'no column headers over nothing');
  assert.equal(await page.textContent('#summary'), 'no sources');
  await mkdir(OUT, { recursive: true });
  await page.screenshot({ path: join(OUT, 'dashboard-empty-phone.png'), fullPage: true });
});
