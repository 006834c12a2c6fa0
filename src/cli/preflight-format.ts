import type { PreflightReport } from '../client/probe-types.js';
import { dim, healthSeverity, renderTable } from './terminal-table.js';

/**
 * How `latchkey preflight` prints a report (a table, or JSON with --json): pure, shared by the
 * command and the CLI's synchronous fast path (src/cli/fast-path.ts), byte for byte. The table
 * is ordered and coloured like `health` and `status` (src/cli/terminal-table.ts).
 */

/** The whole output of `latchkey preflight` for `report`; `colour` only for a terminal without NO_COLOR. */
export function renderPreflight(report: PreflightReport, json: boolean, now = Date.now(), colour = false): string {
  return json ? `${JSON.stringify(report, null, 2)}\n` : formatPreflightTable(report, now, colour);
}

/** One row per source, the worst first: status, auth path, latency, and the fix when a person must act. */
export function formatPreflightTable(report: PreflightReport, now = Date.now(), colour = false): string {
  if (report.results.length === 0) return 'no sources configured (latchkey add <source> ...)\n';
  const header = ['SOURCE', 'STATUS', 'PATH', 'LATENCY', 'DETAIL'];
  const rows = report.results.map((r) => ({
    name: r.source,
    severity: healthSeverity(r.status),
    cells: [r.source, r.status, r.authPath ?? '-', r.latencyMs === null ? '-' : `${r.latencyMs} ms`, r.fix ? `${r.message}; fix: ${r.fix}` : r.message],
  }));
  const out = renderTable(header, rows, { statusColumn: 1, colour });
  if (report.from === 'keeper') {
    const oldest = Math.min(...report.results.map((r) => Date.parse(r.checkedAt)).filter(Number.isFinite));
    out.push(dim(Number.isFinite(oldest) ? `(from the keeper's report, checked ${Math.max(0, Math.round((now - oldest) / 1000))} s ago; --live to probe now)` : "(from the keeper's report)", colour));
  }
  return `${out.join('\n')}\n`;
}
