/**
 * Keeper at scale: 1,000 sources, then 10,000, on a loopback API that answers in 50 ms; 5 % of
 * them dead (401) and 1 % stalling forever. The real `latchkey keeper` process runs at its default
 * concurrency and probe timeout, with a keeper-state.json that already holds a full probe
 * history per source (what a keeper carries after a couple of hours, so health.json and the
 * state it saves every cycle are at their steady-state size, not the near-empty first ones),
 * written by the keeper's own `saveKeeperState`.
 *
 * The keeper runs twice, as two command lines:
 * - `service`: `node <SERVICE.nodeOptions> bin.js keeper`, exactly what `latchkey service
 *   install` writes into the systemd unit / launchd plist (the way it is meant to run);
 * - `bare`: `node bin.js keeper`, a keeper started by hand without node options.
 *
 * Figures (from the `service` run unless named `_bare`):
 * - `cycle_s`: the first full cycle (every source refreshed-ahead/probed, state and report
 *   written), from the keeper's own `cycle` log line (limit 15 s);
 * - `rss_peak_mb`, `rss_peak_mb_bare`: the keeper's peak resident set (VmHWM) over two cycles
 *   (limit 150 MB; the service run also shows the 110 MB target it is held to);
 * - `health_json_writes_per_cycle`: atomic replacements of health.json seen on disk (a new
 *   inode each), divided by completed cycles (must be exactly 1);
 * - `misclassified`: dead sources not `action_required` + stalled not `unreachable` + healthy
 *   not `ok` in health.json after the first cycle (limit 0).
 *
 * The 10,000-source configuration (issue 9) runs the bare command line only and prints its own
 * lines, suffixed `_10k`: `cycle_s_10k` (limit 20 s), `rss_peak_mb_bare_10k` (limit 200 MB),
 * `misclassified_10k` (limit 0) and `cpu_ms_per_probe_10k`: the keeper's CPU time (user +
 * system, from /proc) over its second cycle (steady state: start-up and the first load of
 * keeper-state.json are not in it) divided by the requests it made, next to the floor — a
 * bare loop making the same requests at the same concurrency, in its own process, once with
 * the built-in fetch and once with node:http (bench/lib/probe-floor.ts). The 1,000-source
 * lines also carry the keeper's CPU per probe.
 *
 * `LATCHKEY_BENCH_KEEPER_SOURCES` sets the first configuration's size (default 1000; 0 skips it);
 * `LATCHKEY_BENCH_KEEPER_LARGE` the second's (default 10000; 0 skips it).
 */
import { spawn } from 'node:child_process';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SERVICE } from '../src/service/service.js';
import { DEFAULT_CONCURRENCY, DEFAULT_PROBE_TIMEOUT_MS } from '../src/keeper/keeper.js';
import { appendTimeline, emptyActivity, emptySourceState, emptyTimeline, saveKeeperState, TIMELINE_MAX_SAMPLES, type KeeperStateFile } from '../src/keeper/state.js';
import { figureLine, note, reporter } from './lib/report.js';

const BENCH = 'keeper-scale';
const SOURCES = Number(process.env.LATCHKEY_BENCH_KEEPER_SOURCES ?? 1000);
const LARGE = Number(process.env.LATCHKEY_BENCH_KEEPER_LARGE ?? 10_000);
const LATENCY_MS = 50;
const CYCLE_LIMIT_S = 15;
const RSS_LIMIT_MB = 150;
/** What the service command line is held to (well inside the 150 MB). */
const RSS_TARGET_SERVICE_MB = 110;
/** Issue 9: at 1,000 sources, bare `node` too. */
const RSS_TARGET_BARE_MB = 110;
const LARGE_CYCLE_LIMIT_S = 20;
const LARGE_RSS_LIMIT_MB = 200;
/** The keeper's defaults, which the floor loop copies. */
const CONCURRENCY = DEFAULT_CONCURRENCY;
const PROBE_TIMEOUT_MS = DEFAULT_PROBE_TIMEOUT_MS;
/** Extra node options for the bare runs (e.g. `--cpu-prof --cpu-prof-dir=/tmp/prof` to see where a cycle goes). */
const BARE_OPTIONS = (process.env.LATCHKEY_BENCH_KEEPER_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
const FLOOR = resolve(dirname(fileURLToPath(import.meta.url)), 'lib', 'probe-floor.js');
const INTERVAL_S = 20;
const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'bin.js');
const TOKEN = 'keeper-scale-bench-token';

const out = reporter(BENCH);

type Kind = 'ok' | 'dead' | 'stall';
/** 5 % dead, 1 % stalled, spread through the list (not bunched at the end). */
function kindOf(i: number): Kind {
  if (i % 20 === 7) return 'dead';
  if (i % 100 === 42) return 'stall';
  return 'ok';
}

interface LogLine {
  event?: string;
  durationMs?: number;
  cycle?: number;
  [k: string]: unknown;
}

interface RunResult {
  cycles: LogLine[];
  peakKb: number;
  /** The keeper's CPU time (ms) when each cycle line arrived, and the requests made by then. */
  cpuAtCycleMs: number[];
  requestsAtCycle: number[];
  /** Peak resident set (kB) when the keeper logged `started` (state loaded) and after each cycle: where the peak happens. */
  hwmAtStartKb: number;
  hwmAtCycleKb: number[];
  writes: number;
  misclassified: number;
  counts: Record<string, number>;
  requests: number;
}

/** A keeper-state.json as a keeper leaves it after TIMELINE_MAX_SAMPLES healthy cycles (a full timeline). */
function steadyState(names: string[], now: number): KeeperStateFile {
  const sources: KeeperStateFile['sources'] = {};
  for (const [n, name] of names.entries()) {
    const timeline = emptyTimeline();
    for (let i = 0; i < TIMELINE_MAX_SAMPLES; i++) appendTimeline(timeline, now - (TIMELINE_MAX_SAMPLES - i) * INTERVAL_S * 1000, 'ok', 50 + (n % 7));
    const last = new Date(now - INTERVAL_S * 1000).toISOString();
    sources[name] = {
      ...emptySourceState(),
      status: 'ok',
      authPath: 'token',
      message: `${name}: token: probe answered 200`,
      lastOkAt: last,
      lastCheckedAt: last,
      latencyMs: 50,
      timeline,
    };
  }
  return { version: 1, savedAt: new Date(now - INTERVAL_S * 1000).toISOString(), cycles: TIMELINE_MAX_SAMPLES, sources, activity: emptyActivity() };
}

/** VmHWM of a process, in kB. */
async function hwmKbOf(pid: number): Promise<number> {
  const s = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0);
}

/** utime + stime of a process, in ms (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 10 ms). */
async function cpuMsOf(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

interface FloorResult {
  transport: string;
  requests: number;
  cpu_ms: number;
  wall_ms: number;
  statuses: Record<string, number>;
}

/** The floor loop (bench/lib/probe-floor.ts) against `base`, in its own process. */
async function runFloor(transport: 'fetch' | 'http', base: string, count: number): Promise<FloorResult> {
  const child = spawn(process.execPath, [FLOOR, transport, base, String(count), String(CONCURRENCY), String(PROBE_TIMEOUT_MS), TOKEN], { stdio: ['ignore', 'pipe', 'inherit'] });
  let text = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (text += d));
  const code = await new Promise<number | null>((r) => child.once('close', r));
  if (code !== 0) throw new Error(`probe-floor ${transport} exited with ${code}`);
  return JSON.parse(text) as FloorResult;
}

interface Api {
  port: number;
  requests: () => number;
  close: () => void;
}

/** The loopback API: 50 ms per answer, 401 for the dead, no answer at all for the stalled. */
async function startApi(): Promise<Api> {
  const stalled = new Set<ServerResponse>();
  let requests = 0;
  const api = createServer((req, res) => {
    requests++;
    const i = Number(/^\/s\/(\d+)/.exec(req.url ?? '')?.[1] ?? -1);
    const kind = kindOf(i);
    if (kind === 'stall') {
      stalled.add(res);
      res.on('close', () => stalled.delete(res));
      return;
    }
    setTimeout(() => {
      const ok = kind === 'ok' && req.headers.authorization === `Bearer ${TOKEN}`;
      const body = ok ? '{"ok":true}' : '{"error":"invalid_token"}';
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json', 'content-length': String(body.length) });
      res.end(body);
    }, LATENCY_MS);
  });
  api.keepAliveTimeout = 30_000;
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  return {
    port: (api.address() as AddressInfo).port,
    requests: () => requests,
    close: () => {
      for (const r of stalled) r.destroy();
      api.closeAllConnections();
      api.close();
    },
  };
}

async function runKeeper(nodeOptions: readonly string[], count: number, api: Api, cycleLimitS: number): Promise<RunResult> {
  const port = api.port;
  const requestsBefore = api.requests();

  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-keeper-'));
  await chmod(home, 0o700);
  const sources: Record<string, unknown> = {};
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const name = `src-${String(i).padStart(4, '0')}`;
    names.push(name);
    sources[name] = { token: { secret: 'env:LK_BENCH_TOKEN' }, probe: { url: `http://127.0.0.1:${port}/s/${i}` } };
  }
  await writeFile(join(home, 'config.json'), JSON.stringify({ version: 1, sources }), { mode: 0o600 });
  // Written as the keeper writes it (src/keeper/state.ts), so the first load is the steady-state one.
  await saveKeeperState(join(home, 'keeper-state.json'), steadyState(names, Date.now()));

  const healthPath = join(home, 'health.json');
  const inodes: number[] = [];
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const st = await stat(healthPath).catch(() => undefined);
      if (st && inodes[inodes.length - 1] !== st.ino) inodes.push(st.ino);
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_HOME: home, LK_BENCH_TOKEN: TOKEN };
  const child = spawn(process.execPath, [...nodeOptions, BIN, 'keeper', '--interval', String(INTERVAL_S), '--port', '0'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  const lines: LogLine[] = [];
  let partial = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      try {
        lines.push(JSON.parse(p) as LogLine);
      } catch {
        note(`keeper: ${p}`);
      }
    }
  });
  let peakKb = 0;
  const cpuAtCycleMs: number[] = [];
  const requestsAtCycle: number[] = [];
  let seenCycles = 0;
  let hwmAtStartKb = 0;
  const hwmAtCycleKb: number[] = [];
  const rssTimer = setInterval(() => {
    void readFile(`/proc/${child.pid}/status`, 'utf8')
      .then((s) => {
        const hwm = Number(/VmHWM:\s+(\d+) kB/.exec(s)?.[1] ?? 0);
        if (hwm > peakKb) peakKb = hwm;
      })
      .catch(() => undefined);
  }, 100);

  const cycles = (): LogLine[] => lines.filter((l) => l.event === 'cycle');
  // Generous: a keeper that misses its limit is still measured (the limit is in the figure).
  const deadline = Date.now() + (INTERVAL_S + 2 * Math.max(cycleLimitS, 10 * count / 1000 * 2) + 60) * 1000;
  try {
    while (cycles().length < 2) {
      if (child.exitCode !== null) throw new Error(`keeper exited with ${child.exitCode}`);
      if (Date.now() > deadline) throw new Error('keeper did not finish two cycles in time');
      const n = cycles().length;
      // The keeper is idle right after it logs a cycle: its CPU time then is the cycle's end.
      if (hwmAtStartKb === 0 && lines.some((l) => l.event === 'started')) hwmAtStartKb = await hwmKbOf(child.pid!);
      for (; seenCycles < n; seenCycles++) {
        hwmAtCycleKb.push(await hwmKbOf(child.pid!));
        // With LATCHKEY_BENCH_KEEPER_NODE_OPTIONS="--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=…": what is held after each cycle.
        if (process.env.LATCHKEY_BENCH_KEEPER_SNAPSHOT === '1' && nodeOptions === BARE_OPTIONS) child.kill('SIGUSR2');
        cpuAtCycleMs.push(await cpuMsOf(child.pid!));
        requestsAtCycle.push(api.requests() - requestsBefore);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    for (; seenCycles < 2; seenCycles++) {
      hwmAtCycleKb.push(await hwmKbOf(child.pid!));
      cpuAtCycleMs.push(await cpuMsOf(child.pid!));
      requestsAtCycle.push(api.requests() - requestsBefore);
    }
    const report = JSON.parse(await readFile(healthPath, 'utf8')) as { sources: Record<string, { status: string }> };
    // Read health.json as it was after cycle 1? Cycle 2 (same classification) has replaced it; the
    // statuses are the same by construction, and the keeper's own counts of cycle 1 are in its log.
    let misclassified = 0;
    const counts: Record<string, number> = {};
    for (let i = 0; i < count; i++) {
      const s = report.sources[`src-${String(i).padStart(4, '0')}`]?.status ?? 'missing';
      counts[s] = (counts[s] ?? 0) + 1;
      const want = { ok: 'ok', dead: 'action_required', stall: 'unreachable' }[kindOf(i)];
      if (s !== want) misclassified++;
    }
    // Let the poller see the last rename, then stop the keeper.
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    await new Promise<void>((r) => child.once('close', () => r()));
    polling = false;
    await poller;
    clearInterval(rssTimer);
    return { cycles: cycles(), peakKb, cpuAtCycleMs, requestsAtCycle, hwmAtStartKb, hwmAtCycleKb, writes: inodes.length, misclassified, counts, requests: api.requests() - requestsBefore };
  } finally {
    polling = false;
    clearInterval(rssTimer);
    if (child.exitCode === null) child.kill('SIGKILL');
    await rm(home, { recursive: true, force: true });
  }
}

/** Where the peak was reached: by the end of start-up (state loaded), of cycle 1, of cycle 2. */
function peakPlaces(r: RunResult): Record<string, number> {
  return { peak_by_start_mb: r.hwmAtStartKb / 1024, peak_by_cycle1_mb: (r.hwmAtCycleKb[0] ?? 0) / 1024, peak_by_cycle2_mb: (r.hwmAtCycleKb[1] ?? 0) / 1024 };
}

/** The keeper's CPU ms per request over its second cycle (steady state). */
function cpuPerProbe(r: RunResult): { value: number; requests: number; cpu_ms: number; first_cycle_cpu_ms_per_probe: number } {
  const cpu = r.cpuAtCycleMs[1]! - r.cpuAtCycleMs[0]!;
  const requests = r.requestsAtCycle[1]! - r.requestsAtCycle[0]!;
  return { value: cpu / requests, requests, cpu_ms: cpu, first_cycle_cpu_ms_per_probe: r.cpuAtCycleMs[0]! / r.requestsAtCycle[0]! };
}

async function main(): Promise<void> {
  const api = await startApi();
  try {
    if (SOURCES > 0) await small(api);
    if (LARGE > 0) await large(api);
  } finally {
    api.close();
  }
}

/** The first configuration (1,000 sources): service and bare command lines. */
async function small(api: Api): Promise<void> {
  const service = await runKeeper(SERVICE.nodeOptions, SOURCES, api, CYCLE_LIMIT_S);
  const bare = await runKeeper(BARE_OPTIONS, SOURCES, api, CYCLE_LIMIT_S);
  const first = service.cycles[0]!;
  out({
    figure: 'cycle_s',
    value: Number(first.durationMs) / 1000,
    limit: CYCLE_LIMIT_S,
    unit: 's',
    extra: {
      sources: SOURCES,
      checked: first.checked,
      concurrency: `default (${CONCURRENCY})`,
      second_cycle_s: Number(service.cycles[1]?.durationMs ?? NaN) / 1000,
      bare_cycle_s: Number(bare.cycles[0]?.durationMs ?? NaN) / 1000,
    },
  });
  out({
    figure: 'rss_peak_mb',
    value: service.peakKb / 1024,
    limit: RSS_LIMIT_MB,
    unit: 'MB',
    extra: { command: `node ${SERVICE.nodeOptions.join(' ')} bin.js keeper`, target_mb: RSS_TARGET_SERVICE_MB, within_target: service.peakKb / 1024 <= RSS_TARGET_SERVICE_MB },
  });
  out({ figure: 'rss_peak_mb_bare', value: bare.peakKb / 1024, limit: RSS_TARGET_BARE_MB, unit: 'MB', extra: { command: 'node bin.js keeper', sources: SOURCES, ...peakPlaces(bare) } });
  const completed = service.cycles.length;
  const perCycle = service.writes / completed;
  const line = figureLine(BENCH, { figure: 'health_json_writes_per_cycle', value: perCycle, limit: 1, unit: 'writes', extra: { writes: service.writes, cycles: completed } });
  line.pass = perCycle === 1;
  process.stdout.write(`${JSON.stringify(line)}\n`);
  const c = service.counts;
  out({
    figure: 'misclassified',
    value: service.misclassified + bare.misclassified,
    limit: 0,
    unit: 'sources',
    extra: { ok: c.ok ?? 0, action_required: c.action_required ?? 0, unreachable: c.unreachable ?? 0, expected_dead: SOURCES / 20, expected_stalled: SOURCES / 100, api_requests: service.requests },
  });
  const { value, ...cpu } = cpuPerProbe(bare);
  out({ figure: 'cpu_ms_per_probe', value, unit: 'ms', extra: { sources: SOURCES, command: 'node bin.js keeper', service_ms_per_probe: cpuPerProbe(service).value, ...cpu } });
}

/** The second configuration (10,000 sources): bare command line, with the floor loops. */
async function large(api: Api): Promise<void> {
  const bare = await runKeeper(BARE_OPTIONS, LARGE, api, LARGE_CYCLE_LIMIT_S);
  const base = `http://127.0.0.1:${api.port}`;
  const floorFetch = await runFloor('fetch', base, LARGE);
  const floorHttp = await runFloor('http', base, LARGE);
  const first = bare.cycles[0]!;
  const c = bare.counts;
  out({
    figure: 'cycle_s_10k',
    value: Number(first.durationMs) / 1000,
    limit: LARGE_CYCLE_LIMIT_S,
    unit: 's',
    extra: { sources: LARGE, checked: first.checked, concurrency: `default (${CONCURRENCY})`, command: 'node bin.js keeper', second_cycle_s: Number(bare.cycles[1]?.durationMs ?? NaN) / 1000, floor_fetch_wall_s: floorFetch.wall_ms / 1000, floor_http_wall_s: floorHttp.wall_ms / 1000 },
  });
  out({ figure: 'rss_peak_mb_bare_10k', value: bare.peakKb / 1024, limit: LARGE_RSS_LIMIT_MB, unit: 'MB', extra: { sources: LARGE, command: 'node bin.js keeper', ...peakPlaces(bare) } });
  out({
    figure: 'misclassified_10k',
    value: bare.misclassified,
    limit: 0,
    unit: 'sources',
    extra: { ok: c.ok ?? 0, action_required: c.action_required ?? 0, unreachable: c.unreachable ?? 0, expected_dead: LARGE / 20, expected_stalled: LARGE / 100, api_requests: bare.requests },
  });
  const cpu = cpuPerProbe(bare);
  out({
    figure: 'cpu_ms_per_probe_10k',
    value: cpu.value,
    unit: 'ms',
    extra: {
      sources: LARGE,
      command: 'node bin.js keeper',
      requests: cpu.requests,
      cpu_ms: cpu.cpu_ms,
      first_cycle_cpu_ms_per_probe: cpu.first_cycle_cpu_ms_per_probe,
      floor_fetch_ms_per_probe: floorFetch.cpu_ms / floorFetch.requests,
      floor_http_ms_per_probe: floorHttp.cpu_ms / floorHttp.requests,
      times_floor_fetch: cpu.value / (floorFetch.cpu_ms / floorFetch.requests),
      floor_statuses: floorFetch.statuses,
    },
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`[bench] ${BENCH} failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
