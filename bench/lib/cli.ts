/** The CLI as the CLI benches run it, and the environments they run it in. */
import { readFileSync } from 'node:fs';
import type { TimedCase } from './interleaved.js';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The executable users run (package.json `bin`: dist/src/cli/latchkey.cjs, built by
 * scripts/bundle-cli.mjs). LATCHKEY_BENCH_CLI_BIN measures another build instead (A/B).
 */
export const CLI_BIN = process.env.LATCHKEY_BENCH_CLI_BIN
  ? resolve(process.env.LATCHKEY_BENCH_CLI_BIN)
  : resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src', 'cli', 'latchkey.cjs');

/** What kind of entry `bin` is, for the figures: the bundled fast path or a fallback. */
export function describeEntry(bin: string): string {
  const text = readFileSync(bin, 'utf8');
  if (text.includes('tryFastPath')) return bin.endsWith('.cjs') ? 'bundled (CommonJS fast path)' : 'tsc output (ESM)';
  return 'fallback entry (unbundled)';
}

/**
 * What a script's environment holds: PATH and HOME, plus `vars`. The figures are decided in
 * this environment: variables such as NODE_EXTRA_CA_CERTS (set in some sandboxes and CI
 * images) make every node start tens of ms slower, which flatters any ratio to `node -e 0`.
 */
export function cleanEnv(vars: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, ...vars };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env;
}

/** The bench's own environment plus `vars` (minus NODE_OPTIONS from a test runner or debugger), for comparison. */
export function inheritedEnv(vars: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...vars };
  delete env.NODE_OPTIONS;
  return env;
}

/** `latchkey preflight <names>`, which must exit 0 answering from the keeper's report (no live probe). */
export function cachedPreflightCase(bin: string, names: readonly string[], env: NodeJS.ProcessEnv, suffix = ''): TimedCase {
  const name = `latchkey preflight <${names.length} sources>${suffix}`;
  return {
    name,
    args: [bin, 'preflight', ...names],
    env,
    check: (r) => {
      if (r.code !== 0) throw new Error(`${name} exited ${r.code ?? r.signal}: ${r.stderr.trim()} ${r.stdout.trim()}`);
      if (!/from the keeper's report/.test(r.stdout)) throw new Error(`${name} did not answer from the keeper's report:\n${r.stdout}`);
    },
    ms: [],
  };
}
