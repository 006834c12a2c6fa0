/**
 * Keeper refresh wake-ups: 1,000 OAuth sources whose access tokens live from 30 s to 10 min
 * (mixed, spread evenly), the keeper at its default 300 s interval, for
 * LATCHKEY_BENCH_REFRESH_SECONDS (default 60). Every refresh is due at ⅔ of its token's lifetime
 * plus jitter; the keeper's one re-armed timer wakes for it and refreshes through the engine (the
 * file store's lock, the double-check, fsync'd before use) against a token endpoint in its own
 * process on loopback that answers at once and rotates the refresh token (a reused one is counted).
 *
 * Figures:
 * - `refresh_lateness_p99_ms`, `refresh_lateness_max_ms`: how long after its due time a refresh
 *   started (the timer's wake-up plus any wait for a free slot among `concurrency` refreshes);
 * - `refresh_done_p99_ms`: due time to the new token persisted;
 * - `expired_before_refresh`: refreshes that finished after the token they replaced had expired (limit 0);
 * - `refresh_token_reuse`: refresh tokens presented twice at the endpoint (limit 0);
 * - `refreshes`, `not_refreshed` (wake-ups that failed: transient, revoked, action; limit 0).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openLatchkey } from '../src/latchkey.js';
import { Keeper, type RefreshWake } from '../src/keeper/keeper.js';
import { max, quantile } from './lib/stats.js';
import { note, reporter } from './lib/report.js';

const BENCH = 'keeper-refresh';
const SOURCES = Number(process.env.LATCHKEY_BENCH_REFRESH_SOURCES ?? 1000);
const RUN_S = Number(process.env.LATCHKEY_BENCH_REFRESH_SECONDS ?? 90);
/** Mixed lifetimes: 30 s to 10 min, spread evenly (short enough that hundreds refresh during the run). */
const lifetimeS = (i: number): number => 30 + ((i * 7) % 571);

const out = reporter(BENCH);

/** The token endpoint: answers a refresh at once with a rotated refresh token; counts reuse. */
const ENDPOINT = `
import { createServer } from 'node:http';
const lifetimes = ${JSON.stringify(Array.from({ length: SOURCES }, (_, i) => lifetimeS(i)))};
const used = new Set();
let refreshes = 0, reuse = 0;
const s = createServer((req, res) => {
  if (req.url === '/stats') { res.end(JSON.stringify({ refreshes, reuse })); return; }
  let body = '';
  req.on('data', (d) => (body += d));
  req.on('end', () => {
    const form = new URLSearchParams(body);
    const rt = form.get('refresh_token') || '';
    const m = /^rt-(\\d+)-(\\d+)$/.exec(rt);
    if (form.get('grant_type') !== 'refresh_token' || !m) { res.writeHead(400, { 'content-type': 'application/json' }); res.end('{"error":"invalid_request"}'); return; }
    if (used.has(rt)) { reuse++; res.writeHead(400, { 'content-type': 'application/json' }); res.end('{"error":"invalid_grant"}'); return; }
    used.add(rt);
    refreshes++;
    const i = Number(m[1]), n = Number(m[2]) + 1;
    const json = JSON.stringify({ access_token: 'at-' + i + '-' + n, refresh_token: 'rt-' + i + '-' + n, token_type: 'Bearer', expires_in: lifetimes[i] });
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(json);
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: s.address().port }) + '\\n'));
process.on('SIGTERM', () => { s.closeAllConnections(); s.close(() => process.exit(0)); });
`;

async function startEndpoint(): Promise<{ child: ChildProcess; origin: string }> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', ENDPOINT], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('token endpoint did not start')), 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      if (!buf.includes('\n')) return;
      clearTimeout(timer);
      resolve((JSON.parse(buf.split('\n')[0] as string) as { port: number }).port);
    });
  });
  return { child, origin: `http://127.0.0.1:${port}` };
}

async function main(): Promise<void> {
  const { child, origin } = await startEndpoint();
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-refresh-'));
  await chmod(home, 0o700);
  try {
    const names = Array.from({ length: SOURCES }, (_, i) => `oauth-${String(i).padStart(4, '0')}`);
    const sources = Object.fromEntries(names.map((n) => [n, { oauth: { tokenEndpoint: `${origin}/token`, clientId: 'bench' } }]));
    await writeFile(join(home, 'config.json'), JSON.stringify({ version: 1, sources }), { mode: 0o600 });
    const lk = await openLatchkey({ home, env: {} });
    const t0 = Date.now();
    for (const [i, name] of names.entries()) {
      await lk.installGrant(name, { access_token: `at-${i}-0`, refresh_token: `rt-${i}-0`, expires_in: lifetimeS(i), token_type: 'Bearer' });
    }
    await lk.close();
    note(`installed ${SOURCES} grants in ${Date.now() - t0} ms; running the keeper for ${RUN_S} s`);

    const wakes: RefreshWake[] = [];
    const keeper = await Keeper.open({ open: { home, env: {} }, onRefreshWake: (w) => wakes.push(w) });
    keeper.start();
    await new Promise((r) => setTimeout(r, RUN_S * 1000));
    await keeper.stop(0);
    const stats = (await (await fetch(`${origin}/stats`)).json()) as { refreshes: number; reuse: number };

    const lateness = wakes.map((w) => Math.max(0, w.startedAt - w.dueAt));
    const done = wakes.map((w) => Math.max(0, w.finishedAt - w.dueAt));
    const indexOf = (source: string): number => Number(source.slice('oauth-'.length));
    // Due at ⅔ + up to 5 % of the lifetime: at least 28 % of it is left; past that the old token had expired.
    const expired = wakes.filter((w) => w.finishedAt - w.dueAt > 0.28 * lifetimeS(indexOf(w.source)) * 1000).length;
    // `adopted` / `not_due`: a probe or the cycle refreshed it first (the engine's single flight) — fine.
    const notRefreshed = wakes.filter((w) => !['refreshed', 'adopted', 'not_due'].includes(w.outcome)).length;
    const extra = { sources: SOURCES, seconds: RUN_S, wakeups: wakes.length, concurrency: keeper.settings.concurrency, store: 'file' };
    out({ figure: 'refresh_lateness_p99_ms', value: quantile(lateness, 0.99), unit: 'ms', limit: 1000, extra });
    out({ figure: 'refresh_lateness_max_ms', value: max(lateness), unit: 'ms', extra });
    out({ figure: 'refresh_lateness_p50_ms', value: quantile(lateness, 0.5), unit: 'ms', extra });
    out({ figure: 'refresh_done_p99_ms', value: quantile(done, 0.99), unit: 'ms', extra });
    out({ figure: 'expired_before_refresh', value: expired, unit: 'refreshes', limit: 0, extra });
    out({ figure: 'refresh_token_reuse', value: stats.reuse, unit: 'tokens', limit: 0, extra });
    out({ figure: 'refreshes', value: stats.refreshes, unit: 'refreshes', extra });
    out({ figure: 'not_refreshed', value: notRefreshed, unit: 'wake-ups', limit: 0, extra });
  } finally {
    child.kill('SIGTERM');
    await rm(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
