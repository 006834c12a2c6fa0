import type { PreflightReport } from '../client/probe-types.js';
import { sanitizeRemoteText } from '../sanitize.js';

/**
 * How `latchkey preflight` prints a report (a table, or JSON with --json): pure, shared by the
 * command and the CLI's synchronous fast path (src/cli/fast-path.ts), byte for byte.
 */

/** The whole output of `latchkey preflight` for `report`. */
export function renderPreflight(report: PreflightReport, json: boolean, now = Date.now()): string {
  return json ? `${JSON.stringify(report, null, 2)}\n` : formatPreflightTable(report, now);
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
/** One table cell: a message may quote upstream text (escape sequences, a secret echoed back). */
function oneLine(s: string): string {
  return sanitizeRemoteText(s, Infinity);
}
