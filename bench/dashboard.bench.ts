/**
 * The keeper's dashboard with 100 sources and 24 h of history each (288 probes every 5 min),
 * served by the real `latchkey keeper` process, loaded in real headless Chromium.
 *
 * Figures:
 * - `page_transfer_bytes`: bytes on the wire for `/` (gzip, as a browser asks for it); `page_bytes` uncompressed;
 * - `health_transfer_bytes`, `history_transfer_bytes`: the two API answers the page needs (informational);
 * - `first_render_ms` (desktop 1280×800) and `first_render_ms_phone` (390×844, CPU throttled 4×):
 *   navigation start to every row on screen (`main#app[data-state=ready]`), median of RUNS cold loads;
 * - `timelines_ms`, `timelines_ms_phone`: navigation start to the 100 timelines and sparklines drawn;
 * - `fcp_ms`: first contentful paint (desktop).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { appendTimeline, emptyActivity, emptySourceState, emptyTimeline, type KeeperStateFile } from '../src/keeper/state.js';
import { startLoopbackServer } from './lib/loopback-server.js';
import { note, reporter } from './lib/report.js';
import { median } from './lib/stats.js';

const BENCH = 'dashboard';
const SOURCES = 100;
const RUNS = Number(process.env.LATCHKEY_BENCH_DASHBOARD_RUNS ?? 5);
const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'bin.js');
const CHROMIUM = '/usr/bin/chromium';
const out = reporter(BENCH);

/** Bytes on the wire for a GET (the body as sent, compressed or not). */
function wireSize(url: string, gzip: boolean): Promise<{ bytes: number; encoding: string | undefined }> {
  return new Promise((resolvePromise, reject) => {
    const req = request(url, { headers: gzip ? { 'Accept-Encoding': 'gzip' } : {} }, (res) => {
      let bytes = 0;
      res.on('data', (d: Buffer) => (bytes += d.length));
      res.on('end', () => resolvePromise({ bytes, encoding: res.headers['content-encoding'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

function seededState(names: string[], now: number): KeeperStateFile {
  const state: KeeperStateFile = { version: 1, savedAt: new Date(now).toISOString(), cycles: 288, sources: {}, activity: emptyActivity() };
  for (const [n, name] of names.entries()) {
    const timeline = emptyTimeline();
    for (let i = 0; i < 288; i++) {
      const status = (i + n) % 97 === 0 ? 'unreachable' : (i + n) % 53 === 0 ? 'degraded' : 'ok';
      appendTimeline(timeline, now - 86_400_000 + (i + 1) * 300_000 - 1000, status, status === 'unreachable' ? null : 40 + ((i * 7 + n) % 60));
    }
    state.sources[name] = { ...emptySourceState(), status: 'ok', authPath: 'token', message: 'probe answered 200', lastOkAt: new Date(now).toISOString(), timeline };
  }
  return state;
}

async function main(): Promise<void> {
  const api = await startLoopbackServer();
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-dashboard-'));
  await chmod(home, 0o700);
  const names = Array.from({ length: SOURCES }, (_, i) => `source-${String(i).padStart(3, '0')}`);
  const sources = Object.fromEntries(names.map((n) => [n, { token: { secret: 'env:LK_BENCH_TOKEN' }, probe: { url: `${api.origin}/ok` } }]));
  await writeFile(join(home, 'config.json'), JSON.stringify({ version: 1, sources }), { mode: 0o600 });
  await writeFile(join(home, 'keeper-state.json'), JSON.stringify(seededState(names, Date.now())), { mode: 0o600 });
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_HOME: home, LK_BENCH_TOKEN: 'good-token' };
  const keeper = spawn(process.execPath, [BIN, 'keeper', '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let base = '';
  let cycled = false;
  let buf = '';
  keeper.stderr.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    const lines = buf.split('\n');
    buf = lines.pop() ?? '';
    for (const l of lines) {
      const e = JSON.parse(l) as { event?: string; url?: string };
      if (e.event === 'started' && e.url) base = e.url;
      if (e.event === 'cycle') cycled = true;
    }
  });
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking'] });
  try {
    const deadline = Date.now() + 60_000;
    while (!cycled) {
      if (Date.now() > deadline || keeper.exitCode !== null) throw new Error('the keeper did not finish its first cycle');
      await new Promise((r) => setTimeout(r, 50));
    }
    const page = await wireSize(`${base}/`, true);
    const raw = await wireSize(`${base}/`, false);
    const health = await wireSize(`${base}/api/health`, true);
    const history = await wireSize(`${base}/api/history`, true);
    const historyRaw = await wireSize(`${base}/api/history`, false);
    const extra = { sources: SOURCES, probes_per_source: 288 };
    out({ figure: 'page_transfer_bytes', value: page.bytes, unit: 'bytes', limit: 20_000, extra: { ...extra, encoding: page.encoding ?? 'identity' } });
    out({ figure: 'page_bytes', value: raw.bytes, unit: 'bytes', extra });
    out({ figure: 'health_transfer_bytes', value: health.bytes, unit: 'bytes', extra: { ...extra, encoding: health.encoding ?? 'identity' } });
    out({ figure: 'history_transfer_bytes', value: history.bytes, unit: 'bytes', extra: { ...extra, encoding: history.encoding ?? 'identity', uncompressed: historyRaw.bytes } });

    for (const profile of [
      { suffix: '', viewport: { width: 1280, height: 800 }, mobile: false, cpu: 1, limit: 1000 },
      { suffix: '_phone', viewport: { width: 390, height: 844 }, mobile: true, cpu: 4, limit: 2500 },
    ]) {
      const firsts: number[] = [];
      const timelines: number[] = [];
      const fcps: number[] = [];
      for (let run = 0; run < RUNS; run++) {
        const ctx = await browser.newContext({ viewport: profile.viewport, isMobile: profile.mobile, hasTouch: profile.mobile, deviceScaleFactor: profile.mobile ? 3 : 1 });
        // Marks taken inside the page the moment the rows, then the timelines, are in the DOM.
        await ctx.addInitScript(() => {
          const w = window as unknown as { __marks: Record<string, number> };
          w.__marks = {};
          new MutationObserver(() => {
            const app = document.getElementById('app');
            if (!app) return;
            if (app.dataset.state === 'ready' && w.__marks.ready === undefined) w.__marks.ready = performance.now();
            if (app.dataset.history === 'ready' && w.__marks.history === undefined) w.__marks.history = performance.now();
          }).observe(document, { subtree: true, attributes: true, attributeFilter: ['data-state', 'data-history'] });
        });
        const p = await ctx.newPage();
        if (profile.cpu > 1) await (await ctx.newCDPSession(p)).send('Emulation.setCPUThrottlingRate', { rate: profile.cpu });
        await p.goto(`${base}/`);
        await p.waitForSelector('main#app[data-history="ready"]', { timeout: 30_000 });
        await p.waitForTimeout(50);
        const m = await p.evaluate(() => {
          const marks = (window as unknown as { __marks: Record<string, number> }).__marks;
          const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? NaN;
          return { ready: marks.ready ?? NaN, history: marks.history ?? NaN, fcp, rows: document.querySelectorAll('#sources > li').length };
        });
        if (m.rows !== SOURCES) throw new Error(`${m.rows} rows rendered, expected ${SOURCES}`);
        firsts.push(m.ready);
        timelines.push(m.history);
        fcps.push(m.fcp);
        await ctx.close();
      }
      const ex = { ...extra, runs: RUNS, viewport: `${profile.viewport.width}x${profile.viewport.height}`, cpu_throttle: profile.cpu, samples: firsts.map((x) => Math.round(x)) };
      out({ figure: `first_render_ms${profile.suffix}`, value: median(firsts), unit: 'ms', limit: profile.limit, extra: ex });
      out({ figure: `timelines_ms${profile.suffix}`, value: median(timelines), unit: 'ms', extra: { ...ex, samples: timelines.map((x) => Math.round(x)) } });
      if (!profile.mobile) out({ figure: 'fcp_ms', value: median(fcps), unit: 'ms', extra: { ...ex, samples: fcps.map((x) => Math.round(x)) } });
    }
  } finally {
    await browser.close();
    keeper.kill('SIGTERM');
    await new Promise<void>((r) => (keeper.exitCode !== null ? r() : keeper.once('close', () => r())));
    await api.close();
    await rm(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  note(String((err as Error)?.stack ?? err));
  process.exit(1);
});
