/**
 * The CLI benches' way of timing commands against `node -e 0`, written once: every case is
 * spawned with stdout/stderr piped (the same harness cost for all), checked on every run, warmed
 * up first (page cache; the config validation stamp a first run writes), then run `runs` times
 * each, interleaved in a rotating order so that no command always runs right after another one.
 */
import { runTimed, type TimedRun } from './spawn.js';
import { quantile } from './stats.js';

export interface TimedCase {
  name: string;
  /** node's arguments (`-e 0`, or the CLI's path and its arguments) */
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Throws when a run did not do what it must (exit code, output). */
  check(r: TimedRun): void;
  /** Wall times of the measured runs (ms), filled by {@link runInterleaved}. */
  ms: number[];
}

const WARM_UP_ROUNDS = 3;

export async function runInterleaved(cases: TimedCase[], runs: number): Promise<void> {
  for (let i = 0; i < WARM_UP_ROUNDS; i++) for (const c of cases) c.check(await runTimed(process.execPath, c.args, { env: c.env }));
  for (let i = 0; i < runs; i++) {
    for (let j = 0; j < cases.length; j++) {
      const c = cases[(i + j) % cases.length]!;
      const r = await runTimed(process.execPath, c.args, { env: c.env });
      c.check(r);
      c.ms.push(r.ms);
    }
  }
}

/** `node -e 0` in `env`, the baseline every CLI ratio is taken against. */
export function nodeCase(env: NodeJS.ProcessEnv, suffix = ''): TimedCase {
  return {
    name: `node -e 0${suffix}`,
    args: ['-e', '0'],
    env,
    check: (r) => {
      if (r.code !== 0) throw new Error(`node -e 0 exited with ${r.code ?? r.signal}: ${r.stderr.trim()}`);
    },
    ms: [],
  };
}

/** A case's spread, for a figure's extra fields. */
export function spread(c: TimedCase): Record<string, unknown> {
  const round1 = (n: number): number => Math.round(n * 10) / 10;
  return { command: c.name, runs: c.ms.length, p25: round1(quantile(c.ms, 0.25)), p75: round1(quantile(c.ms, 0.75)) };
}
