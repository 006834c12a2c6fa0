/**
 * CLI start: `latchkey token <source>` median wall time must be <= 1.5x `node -e 0`, on the
 * same machine in the same run.
 *
 * Two sources in a temp LATCHKEY_HOME: `api` (oauth, a fresh grant that expires in an hour,
 * so no refresh happens) and `pat` (a static token from `env:`). The three commands are run
 * interleaved, in a rotating order, RUNS times each (default 31, at least 21); each run is
 * timed from spawn() to exit with stdout/stderr piped, so the harness cost is the same for
 * all three. The config validation stamp is warmed up first, as after any `latchkey add`.
 *
 * LATCHKEY_BENCH_CLI_BIN=path measures another build of bin.js instead (A/B comparisons).
 *
 * Figures: the median of each command, and the ratio of each `latchkey token` median to the
 * `node -e 0` median (limit 1.5).
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { installGrant, makeHome } from './lib/home.js';
import { note, reporter } from './lib/report.js';
import { runTimed, type TimedRun } from './lib/spawn.js';
import { median, quantile } from './lib/stats.js';

const BENCH = 'cli-start';
const RUNS = Math.max(21, Number(process.env.LATCHKEY_BENCH_CLI_RUNS ?? 31));
const LIMIT = 1.5;
/** LATCHKEY_BENCH_CLI_BIN measures another build of the CLI (A/B comparisons). */
const BIN = process.env.LATCHKEY_BENCH_CLI_BIN ? resolve(process.env.LATCHKEY_BENCH_CLI_BIN) : resolve(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'bin.js');
const ACCESS = 'cli-bench-access-token';
const PAT = 'cli-bench-static-token';

const out = reporter(BENCH);

interface Case {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  expect?: string;
  ms: number[];
}

function check(c: Case, r: TimedRun): void {
  if (r.code !== 0) throw new Error(`${c.name} exited with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
  if (c.expect !== undefined && r.stdout !== `${c.expect}\n`) throw new Error(`${c.name} printed an unexpected token (${r.stdout.length} bytes)`);
}

async function main(): Promise<void> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npm run build)`);
  // `npm run build` bundles the token route (scripts/bundle-cli.mjs); plain tsc does not.
  const entry = readFileSync(BIN, 'utf8').includes("import('./main.js')") ? 'tsc output (unbundled)' : 'bundled';
  const h = await makeHome('cli', {
    api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'bench-client' } },
    pat: { token: { secret: 'env:LATCHKEY_BENCH_PAT' } },
  });
  try {
    await installGrant(h.home, 'api', { access_token: ACCESS, refresh_token: 'cli-bench-refresh-token', expires_in: 3600, token_type: 'Bearer' });
    // Only what a user's shell would pass: no NODE_OPTIONS from a test runner or debugger.
    const env: NodeJS.ProcessEnv = { ...process.env, LATCHKEY_HOME: h.home, LATCHKEY_BENCH_PAT: PAT };
    delete env.NODE_OPTIONS;
    const cases: Case[] = [
      { name: 'node -e 0', args: ['-e', '0'], env, ms: [] },
      { name: 'latchkey token api (oauth)', args: [BIN, 'token', 'api'], env, expect: ACCESS, ms: [] },
      { name: 'latchkey token pat (env:)', args: [BIN, 'token', 'pat'], env, expect: PAT, ms: [] },
    ];
    // Warm-up: page cache, and the config validation stamp (written by the first run).
    for (let i = 0; i < 3; i++) for (const c of cases) check(c, await runTimed(process.execPath, c.args, { env: c.env }));
    for (let i = 0; i < RUNS; i++) {
      // Rotate the order so no command always runs right after another one.
      for (let j = 0; j < cases.length; j++) {
        const c = cases[(i + j) % cases.length] as Case;
        const r = await runTimed(process.execPath, c.args, { env: c.env });
        check(c, r);
        c.ms.push(r.ms);
      }
    }
    const [node, oauth, pat] = cases as [Case, Case, Case];
    const base = median(node.ms);
    const detail = (c: Case): Record<string, unknown> => ({ command: c.name, runs: c.ms.length, p25: round1(quantile(c.ms, 0.25)), p75: round1(quantile(c.ms, 0.75)) });
    out({ figure: 'median_ms', value: base, unit: 'ms', subject: 'node', extra: detail(node) });
    for (const [c, label] of [
      [oauth, 'oauth'],
      [pat, 'static'],
    ] as const) {
      const m = median(c.ms);
      out({ figure: `median_ms_${label}`, value: m, unit: 'ms', subject: 'latchkey', extra: detail(c) });
      out({ figure: `ratio_${label}`, value: m / base, limit: LIMIT, unit: 'x node -e 0', subject: 'latchkey', extra: { command: c.name, entry } });
    }
  } finally {
    await h.remove();
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

main().catch((err: unknown) => {
  note(`cli-start could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
