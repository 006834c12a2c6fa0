import { parseArgs } from 'node:util';
import { cachedVerdicts, DEFAULT_BUDGET_MS, readKeeperReport, reportOf } from '../../client/preflight.js';
import type { PreflightReport } from '../../client/probe-types.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { usageError, type CliIO, type Command } from '../io.js';

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
    // Fast path: the keeper's fresh report already says every named source is healthy. Nothing
    // else is loaded (no config validator, no OAuth library, no browser driver).
    if (!values.live && positionals.length > 0) {
      const paths = homePaths(latchkeyHome(io.env));
      const cached = cachedVerdicts(await readKeeperReport(paths.health, Date.now()), positionals);
      if (cached) return print(reportOf(cached), values.json === true, io);
    }
    const { openLatchkey } = await import('../../latchkey.js');
    const lk = await openLatchkey({ env: io.env });
    try {
      const report = await lk.preflight(positionals, { budgetMs, useKeeperReport: !values.live });
      return print(report, values.json === true, io);
    } finally {
      await lk.close();
    }
  },
};

function print(report: PreflightReport, json: boolean, io: CliIO): number {
  io.stdout.write(json ? `${JSON.stringify(report, null, 2)}\n` : formatPreflightTable(report));
  return report.exitCode;
}

/** One row per source: status, auth path, latency, and the fix when a person must act. */
export function formatPreflightTable(report: PreflightReport, now = Date.now()): string {
  if (report.results.length === 0) return 'no sources configured (latchkey add <source> ...)\n';
  const header = ['SOURCE', 'STATUS', 'PATH', 'LATENCY', 'DETAIL'];
  const rows = report.results.map((r) => [
    r.source,
    r.status,
    r.authPath ?? '-',
    r.latencyMs === null ? '-' : `${r.latencyMs} ms`,
    oneLine(r.fix ? `${r.message}; fix: ${r.fix}` : r.message),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  const out = [line(header), ...rows.map(line)];
  if (report.from === 'keeper') {
    const oldest = Math.min(...report.results.map((r) => Date.parse(r.checkedAt)).filter(Number.isFinite));
    out.push(Number.isFinite(oldest) ? `(from the keeper's report, checked ${Math.max(0, Math.round((now - oldest) / 1000))} s ago; --live to probe now)` : "(from the keeper's report)");
  }
  return `${out.join('\n')}\n`;
}

/** Messages come from upstreams and configs: keep each row on one line. */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]+/g, ' ');
}
