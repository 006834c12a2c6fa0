/**
 * CLI start: `latchkey token <source>` median wall time must be <= 1.5x `node -e 0`, on the
 * same machine in the same run, in a clean environment (PATH, HOME, LATCHKEY_HOME and the
 * token's variable: what a script passes).
 *
 * Two sources in a temp LATCHKEY_HOME: `api` (oauth, a fresh grant that expires in an hour,
 * so no refresh happens) and `pat` (a static token from `env:`). The commands are run
 * interleaved, in a rotating order, RUNS times each (default 31, at least 21); each run is
 * timed from spawn() to exit with stdout/stderr piped, so the harness cost is the same for
 * all. The config validation stamp is warmed up first, as after any `latchkey add`. The same
 * three commands also run in the bench's inherited environment, for comparison only: there
 * variables such as NODE_EXTRA_CA_CERTS slow every node start and flatter the ratio.
 *
 * The CLI is the package's `bin` (dist/src/cli/latchkey.cjs); LATCHKEY_BENCH_CLI_BIN=path
 * measures another build instead (A/B comparisons, e.g. dist/src/cli/bin.js).
 *
 * Figures: the median of each command, and the ratio of each `latchkey token` median to the
 * `node -e 0` median: clean environment (limit 1.5, decides `pass`), inherited (informational).
 */
import { existsSync } from 'node:fs';
import { cleanEnv, CLI_BIN as BIN, describeEntry, inheritedEnv } from './lib/cli.js';
import { installGrant, makeHome } from './lib/home.js';
import { note, reporter } from './lib/report.js';
import { nodeCase, runInterleaved, spread, type TimedCase } from './lib/interleaved.js';
import { median } from './lib/stats.js';

const BENCH = 'cli-start';
const RUNS = Math.max(21, Number(process.env.LATCHKEY_BENCH_CLI_RUNS ?? 31));
const LIMIT = 1.5;
const ACCESS = 'cli-bench-access-token';
const PAT = 'cli-bench-static-token';

const out = reporter(BENCH);

/** `latchkey token <source>`, which must print `expect`. */
function tokenCase(name: string, source: string, env: NodeJS.ProcessEnv, expect: string): TimedCase {
  return {
    name,
    args: [BIN, 'token', source],
    env,
    check: (r) => {
      if (r.code !== 0) throw new Error(`${name} exited with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
      if (r.stdout !== `${expect}\n`) throw new Error(`${name} printed an unexpected token (${r.stdout.length} bytes)`);
    },
    ms: [],
  };
}

async function main(): Promise<void> {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: build first (npm run build)`);
  const entry = describeEntry(BIN);
  const h = await makeHome('cli', {
    api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'bench-client' } },
    pat: { token: { secret: 'env:LATCHKEY_BENCH_PAT' } },
  });
  try {
    await installGrant(h.home, 'api', { access_token: ACCESS, refresh_token: 'cli-bench-refresh-token', expires_in: 3600, token_type: 'Bearer' });
    const vars = { LATCHKEY_HOME: h.home, LATCHKEY_BENCH_PAT: PAT };
    const commands = (env: NodeJS.ProcessEnv, suffix: string): TimedCase[] => [
      nodeCase(env, suffix),
      tokenCase(`latchkey token api (oauth)${suffix}`, 'api', env, ACCESS),
      tokenCase(`latchkey token pat (env:)${suffix}`, 'pat', env, PAT),
    ];
    const clean = commands(cleanEnv(vars), '');
    const inherited = commands(inheritedEnv(vars), ' (inherited env)');
    await runInterleaved([...clean, ...inherited], RUNS);
    const detail = spread;
    type Case = TimedCase;
    const [node, oauth, pat] = clean as [Case, Case, Case];
    const base = median(node.ms);
    out({ figure: 'median_ms', value: base, unit: 'ms', subject: 'node', extra: { ...detail(node), env: 'clean' } });
    for (const [c, label] of [
      [oauth, 'oauth'],
      [pat, 'static'],
    ] as const) {
      const m = median(c.ms);
      out({ figure: `median_ms_${label}`, value: m, unit: 'ms', subject: 'latchkey', extra: { ...detail(c), env: 'clean' } });
      out({ figure: `ratio_${label}`, value: m / base, limit: LIMIT, unit: 'x node -e 0', subject: 'latchkey', extra: { command: c.name, entry, env: 'clean' } });
    }
    const [nodeInh, oauthInh, patInh] = inherited as [Case, Case, Case];
    const baseInh = median(nodeInh.ms);
    for (const [c, label] of [
      [oauthInh, 'oauth'],
      [patInh, 'static'],
    ] as const) {
      out({
        figure: `ratio_${label}_inherited_env`,
        value: median(c.ms) / baseInh,
        unit: 'x node -e 0',
        subject: 'latchkey',
        extra: { env: 'inherited (minus NODE_OPTIONS)', node_ms: round1(baseInh), latchkey_ms: round1(median(c.ms)) },
      });
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
