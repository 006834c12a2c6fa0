/**
 * Cached pre-flight: with a fresh keeper report, `latchkey preflight <5 sources>` must take at
 * most 1.5× the wall time of `node -e 0` (medians, runs interleaved in rotating order).
 *
 * The report is produced by the real keeper (`latchkey keeper --once`) over five sources on a
 * loopback API, then the API is shut down: a pre-flight that probed live instead of answering
 * from the report would fail (exit 3), so every run is checked to exit 0 from the keeper.
 *
 * The CLI is the package's `bin` (dist/src/cli/latchkey.cjs; LATCHKEY_BENCH_CLI_BIN=path for
 * another build). Measured in a clean environment (PATH, HOME, LATCHKEY_HOME and the token's
 * variable), which decides `pass`; the inherited environment is measured too, for comparison.
 *
 * Figures: the median of each command, and the ratio (limit 1.5).
 */
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cachedPreflightCase, cleanEnv, CLI_BIN as BIN, describeEntry, inheritedEnv } from './lib/cli.js';
import { note, reporter } from './lib/report.js';
import { nodeCase, runInterleaved, spread, type TimedCase } from './lib/interleaved.js';
import { runTimed } from './lib/spawn.js';
import { median } from './lib/stats.js';

const BENCH = 'cached-preflight';
const RUNS = Math.max(15, Number(process.env.LATCHKEY_BENCH_PREFLIGHT_RUNS ?? 21));
const LIMIT = 1.5;
const NAMES = ['hubspot', 'github', 'slack', 'google', 'honcho'];

const out = reporter(BENCH);

async function main(): Promise<void> {
  const api = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"ok":true}');
  });
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
  const port = (api.address() as AddressInfo).port;
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-preflight-'));
  await chmod(home, 0o700);
  try {
    const sources = Object.fromEntries(NAMES.map((n) => [n, { token: { secret: 'env:LK_BENCH_TOKEN' }, probe: { url: `http://127.0.0.1:${port}/${n}` } }]));
    await writeFile(join(home, 'config.json'), JSON.stringify({ version: 1, sources }), { mode: 0o600 });
    const vars = { LATCHKEY_HOME: home, LK_BENCH_TOKEN: 'bench-token' };
    const env = cleanEnv(vars);
    // Not spawnSync: the API answering the keeper's probes lives in this process.
    const keeper = await runTimed(process.execPath, [BIN, 'keeper', '--once'], { env });
    if (keeper.code !== 0) throw new Error(`keeper --once exited ${keeper.code}: ${keeper.stderr}`);
    // From here on a live probe would fail: only the keeper's report can answer.
    await new Promise<void>((r) => api.close(() => r()));

    // Measured in a clean environment (PATH, HOME, LATCHKEY_HOME), as a script's would be. The
    // inherited environment is measured too, for comparison: variables such as NODE_EXTRA_CA_CERTS
    // make every node start tens of ms slower, which flatters any ratio to `node -e 0`.
    const inherited = inheritedEnv(vars);
    const cases = [nodeCase(env), cachedPreflightCase(BIN, NAMES, env), nodeCase(inherited, ' (inherited env)'), cachedPreflightCase(BIN, NAMES, inherited, ' (inherited env)')];
    await runInterleaved(cases, RUNS);
    type Case = TimedCase;
    const [node, pre, nodeInh, preInh] = cases as [Case, Case, Case, Case];
    const detail = spread;
    out({ figure: 'median_ms', value: median(node.ms), unit: 'ms', subject: 'node', extra: detail(node) });
    out({ figure: 'median_ms', value: median(pre.ms), unit: 'ms', subject: 'latchkey', extra: detail(pre) });
    out({ figure: 'ratio_to_node', value: median(pre.ms) / median(node.ms), limit: LIMIT, unit: 'x', extra: { sources: NAMES.length, env: 'clean', entry: describeEntry(BIN) } });
    out({
      figure: 'ratio_to_node_inherited_env',
      value: median(preInh.ms) / median(nodeInh.ms),
      unit: 'x',
      extra: { env: 'inherited (minus NODE_OPTIONS)', node_ms: median(nodeInh.ms), latchkey_ms: median(preInh.ms) },
    });
  } finally {
    api.close();
    await rm(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  note(`${BENCH} failed: ${(err as Error).stack ?? String(err)}`);
  process.exit(1);
});
