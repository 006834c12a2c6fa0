/**
 * Pre-flight: 20 sources on a loopback API (served by another process), of which one has a
 * revoked grant (stored, marked revoked by an earlier invalid_grant), one an expired PAT (the
 * API answers 401 to it) and one stalls forever. `lk.preflight(all, { budgetMs: 3000 })` must
 * return within budget + 50 ms with the right verdict for every source; median of 20 runs,
 * each with a fresh Latchkey (as a reconciler starting up).
 *
 * The seed's reference: before, a dead HubSpot auth surfaced ~30 s into a reconciler run; with
 * the pre-flight it is found within ~3 s (here the dead sources' verdicts come in
 * milliseconds, and the whole report is bounded by the 3 s budget because of the stalled one).
 *
 * Also: `latchkey preflight <20 sources>` answered from the keeper's fresh report must take at
 * most 1.5x the wall time of `node -e 0` (it loads no config validator, OAuth library or
 * browser driver).
 *
 * Figures: wall_ms_median (limit 3050), wall_ms_max, verdicts_correct_runs (limit: every run),
 * dead_found_ms_median, seed_reference, cli_cached_median_ms, cli_cached_ratio (limit 1.5; the package's `bin`
 * in a clean environment, as in cli-start), cli_cached_ratio_inherited_env (for comparison).
 */
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openLatchkey, type PreflightReport } from '../src/index.js';
import { installGrant, makeHome } from './lib/home.js';
import { startLoopbackServer } from './lib/loopback-server.js';
import { note, reporter } from './lib/report.js';
import { cachedPreflightCase, cleanEnv, CLI_BIN as BIN, describeEntry, inheritedEnv } from './lib/cli.js';
import { nodeCase, runInterleaved, spread, type TimedCase } from './lib/interleaved.js';
import { max, median, quantile } from './lib/stats.js';

const BENCH = 'preflight';
const RUNS = Math.max(5, Number(process.env.LATCHKEY_BENCH_PREFLIGHT_RUNS ?? 20));
const CLI_RUNS = Math.max(21, Number(process.env.LATCHKEY_BENCH_CLI_RUNS ?? 31));
const BUDGET_MS = 3000;
const GRACE_MS = 50;
const HEALTHY = 17;
const CLI_LIMIT = 1.5;

const out = reporter(BENCH);

type Verdict = `${string}/${string}`;

async function main(): Promise<void> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npx tsc -p .)`);
  const server = await startLoopbackServer();
  const probe = (path: string) => ({ url: `${server.origin}${path}` });
  const sources: Record<string, unknown> = {};
  const expected = new Map<string, Verdict>();
  for (let i = 1; i <= HEALTHY; i++) {
    const name = `healthy-${String(i).padStart(2, '0')}`;
    sources[name] = { token: { secret: 'env:BENCH_GOOD_TOKEN' }, probe: probe('/ok') };
    expected.set(name, 'ok/-');
  }
  sources.revoked = { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'bench-client' }, probe: probe('/ok') };
  expected.set('revoked', 'action_required/reauthorize');
  sources['expired-pat'] = { token: { secret: 'env:BENCH_EXPIRED_PAT' }, probe: probe('/ok') };
  expected.set('expired-pat', 'action_required/replace_token');
  sources.stalled = { token: { secret: 'env:BENCH_GOOD_TOKEN' }, probe: probe('/stall') };
  expected.set('stalled', 'unreachable/check_network');
  const names = [...expected.keys()];
  const h = await makeHome('preflight', sources as Parameters<typeof makeHome>[1]);
  const env: NodeJS.ProcessEnv = { BENCH_GOOD_TOKEN: 'good-bench-token', BENCH_EXPIRED_PAT: 'expired-pat' };
  try {
    // A grant the IdP revoked earlier: stored with its refresh token, marked revoked.
    await installGrant(h.home, 'revoked', { access_token: 'good-but-revoked', refresh_token: 'revoked-refresh', expires_in: 3600 });
    const setup = await openLatchkey({ home: h.home, env });
    await setup.store.withLock('revoked', async (tx) => {
      const rec = await tx.read('revoked');
      if (!rec?.grant) throw new Error('grant not installed');
      const { version, ...rest } = rec;
      await tx.write('revoked', { ...rest, grant: { ...rec.grant, revoked: { at: Date.now(), reason: 'invalid_grant' } } }, version);
    });
    await setup.close();

    const walls: number[] = [];
    const deadFound: number[] = [];
    let correctRuns = 0;
    let last: { report: PreflightReport; wrong: string[] } | undefined;
    // One warm-up run (module loading, connection pool), not counted.
    await runOnce(h.home, env, names);
    for (let run = 0; run < RUNS; run++) {
      const { report, wallMs } = await runOnce(h.home, env, names);
      walls.push(wallMs);
      const wrong = names.filter((n) => verdictOf(report, n) !== expected.get(n));
      if (wrong.length === 0 && report.exitCode === 4) correctRuns++;
      deadFound.push(Math.max(...['revoked', 'expired-pat'].map((n) => report.results.find((r) => r.source === n)?.latencyMs ?? Number.POSITIVE_INFINITY)));
      last = { report, wrong };
    }
    const wallMedian = median(walls);
    out({ figure: 'wall_ms_median', value: wallMedian, limit: BUDGET_MS + GRACE_MS, unit: 'ms', extra: { budget_ms: BUDGET_MS, sources: names.length, runs: RUNS, p90_ms: round1(quantile(walls, 0.9)) } });
    out({ figure: 'wall_ms_max', value: max(walls), unit: 'ms', extra: { runs: RUNS } });
    const got = last ? Object.fromEntries(names.filter((n) => !n.startsWith('healthy-') || n === 'healthy-01').map((n) => [n, verdictOf(last!.report, n)])) : {};
    out({
      figure: 'verdicts_correct_runs',
      value: correctRuns,
      limit: RUNS,
      compare: 'min',
      unit: 'runs',
      extra: {
        expected: { 'healthy-*': `ok/- x${HEALTHY}`, revoked: expected.get('revoked'), 'expired-pat': expected.get('expired-pat'), stalled: expected.get('stalled'), exitCode: 4 },
        last_run: { ...got, healthy_ok: names.filter((n) => n.startsWith('healthy-') && verdictOf(last!.report, n) === 'ok/-').length, exitCode: last?.report.exitCode, wrong: last?.wrong },
      },
    });
    const deadMedian = median(deadFound);
    out({ figure: 'dead_found_ms_median', value: deadMedian, unit: 'ms', extra: { sources: ['revoked', 'expired-pat'], note: 'latency of the verdict on the dead sources' } });
    out({ figure: 'seed_reference', value: wallMedian / 1000, unit: 's', extra: { value_s: round1(wallMedian / 1000), dead_found_s: Math.round(deadMedian) / 1000, seed_after_s: 3, before_s: 30, note: 'a dead source found within the 3 s budget instead of ~30 s into the job' } });

    await cliCached(h.home, env, names);
  } finally {
    await h.remove();
    await server.close();
  }
}

async function runOnce(home: string, env: NodeJS.ProcessEnv, names: string[]): Promise<{ report: PreflightReport; wallMs: number }> {
  const lk = await openLatchkey({ home, env });
  try {
    const start = process.hrtime.bigint();
    const report = await lk.preflight(names, { budgetMs: BUDGET_MS, useKeeperReport: false });
    return { report, wallMs: Number(process.hrtime.bigint() - start) / 1e6 };
  } finally {
    await lk.close();
  }
}

function verdictOf(report: PreflightReport, name: string): Verdict {
  const r = report.results.find((x) => x.source === name);
  return r ? `${r.status}/${r.operatorAction ?? '-'}` : 'missing/-';
}

/**
 * `latchkey preflight` over these 20 sources answered from a fresh keeper report, against
 * `node -e 0`: the package's `bin` (what users run), in a clean environment (decides `pass`, as
 * in cli-start and cached-preflight) and in the inherited one (for comparison).
 */
async function cliCached(home: string, env: NodeJS.ProcessEnv, names: string[]): Promise<void> {
  const now = new Date().toISOString();
  const entry = { status: 'ok', authPath: 'token', operatorAction: null, fix: null, message: 'probe answered 200', expiresAt: null, lastOkAt: now, consecutiveFailures: 0, latencyMs: 4, history: [] };
  await writeFile(join(home, 'health.json'), JSON.stringify({ generatedAt: now, intervalSeconds: 300, sources: Object.fromEntries(names.map((n) => [n, entry])) }), { mode: 0o600 });
  const vars = { ...env, LATCHKEY_HOME: home };
  const clean = cleanEnv(vars);
  const inherited = inheritedEnv(vars);
  const cases = [nodeCase(clean), cachedPreflightCase(BIN, names, clean), nodeCase(inherited, ' (inherited env)'), cachedPreflightCase(BIN, names, inherited, ' (inherited env)')];
  await runInterleaved(cases, CLI_RUNS);
  const [node, cli, nodeInh, cliInh] = cases as [TimedCase, TimedCase, TimedCase, TimedCase];
  const base = median(node.ms);
  const m = median(cli.ms);
  out({ figure: 'cli_node_median_ms', value: base, unit: 'ms', subject: 'node', extra: { ...spread(node), env: 'clean' } });
  out({ figure: 'cli_cached_median_ms', value: m, unit: 'ms', extra: { ...spread(cli), env: 'clean' } });
  out({ figure: 'cli_cached_ratio', value: m / base, limit: CLI_LIMIT, unit: 'x node -e 0', extra: { command: cli.name, env: 'clean', entry: describeEntry(BIN) } });
  out({
    figure: 'cli_cached_ratio_inherited_env',
    value: median(cliInh.ms) / median(nodeInh.ms),
    unit: 'x node -e 0',
    extra: { env: 'inherited (minus NODE_OPTIONS)', node_ms: median(nodeInh.ms), latchkey_ms: median(cliInh.ms) },
  });
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

main().catch((err: unknown) => {
  note(`preflight could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
