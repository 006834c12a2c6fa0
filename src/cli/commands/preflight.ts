import { parseArgs } from 'node:util';
import { cachedVerdicts, DEFAULT_BUDGET_MS, readKeeperReport, reportOf } from '../../client/preflight.js';
import type { PreflightReport } from '../../client/probe-types.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { usageError, type CliIO, type Command } from '../io.js';
import { renderPreflight } from '../preflight-format.js';
import { colourWanted } from '../terminal-table.js';

const options = {
  json: { type: 'boolean' },
  budget: { type: 'string' },
  live: { type: 'boolean' },
} as const;

/** Largest budget accepted (a pre-flight that waits longer than this is not a pre-flight). */
const MAX_BUDGET_MS = 600_000;

export const command: Command = {
  summary: 'can I call these sources now? (exit 0 ok, 3 unreachable, 4 action required)',
  usage: `latchkey preflight [source...] [--json] [--budget <ms>] [--live]
  Checks every named source (default: all) in parallel within the budget (default ${DEFAULT_BUDGET_MS} ms).
  Answers from the keeper's fresh health report when it has every source healthy; --live always probes.
  Exit: 0 healthy (ok or expiring), 3 unreachable or degraded (try later), 4 operator action required.`,
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
    let budgetMs = DEFAULT_BUDGET_MS;
    if (values.budget !== undefined) {
      budgetMs = Number(values.budget);
      if (!Number.isInteger(budgetMs) || budgetMs <= 0 || budgetMs > MAX_BUDGET_MS) throw usageError(`--budget takes a whole number of milliseconds between 1 and ${MAX_BUDGET_MS}`);
    }
    // The keeper's fresh report already says every named source is healthy: no OAuth library and
    // no browser driver is loaded. The CLI entry's
    // synchronous fast path (src/cli/fast-path.ts) answers the same way before this module loads.
    if (!values.live && positionals.length > 0) {
      const paths = homePaths(latchkeyHome(io.env));
      // Never vouch for a broken config: it is validated first, exactly as \`latchkey token\`
      // does (the validator loads only when the config changed since it last passed), and
      // every name must be one of its sources.
      const { getSource, loadConfig } = await import('../../config/load.js');
      const config = await loadConfig(paths.config);
      for (const name of positionals) getSource(config, name);
      const cached = cachedVerdicts(await readKeeperReport(paths.health, Date.now()), positionals);
      if (cached) return print(reportOf(cached), values.json === true, io);
    }
    const { openLatchkey } = await import('../../latchkey.js');
    const lk = await openLatchkey({ env: io.env });
    try {
      // The budget counts from the process's start: the command itself ends within it.
      const report = await lk.preflight(positionals, { budgetMs, useKeeperReport: !values.live, budgetStartedAt: 0 });
      return print(report, values.json === true, io);
    } finally {
      await lk.close();
    }
  },
};

function print(report: PreflightReport, json: boolean, io: CliIO): number {
  io.stdout.write(renderPreflight(report, json, Date.now(), colourWanted(io.env, (io.stdout as { isTTY?: boolean }).isTTY === true)));
  return report.exitCode;
}
