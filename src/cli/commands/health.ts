import { parseArgs } from 'node:util';
import { abortableWait } from '../../core/wait.js';
import type { PreflightReport } from '../../client/probe-types.js';
import { ExitCode, fixFor } from '../../core/errors.js';
import { homePaths, latchkeyHome } from '../../paths.js';
import { exitCodeFor, isReportStale, readHealthReport, type HealthReport } from '../../keeper/health-report.js';
import { usageError, type CliIO, type Command } from '../io.js';
import { colourWanted, dim, healthSeverity, renderTable, terminalSafe } from '../terminal-table.js';

/** `latchkey health`: the keeper's report as a table (or JSON); a live pre-flight when there is none. */

const WATCH_MS = 2_000;
/** Without a keeper report, --watch probes live at most this often (probing is not free). */
const LIVE_REFRESH_MS = 30_000;

export interface HealthView {
  /** Where the verdicts came from. */
  from: 'keeper' | 'live';
  report: HealthReport;
  /** A line above the table (age of the report, or why it is live). */
  note: string;
  stale: boolean;
}

/** Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org). */
export function useColour(io: CliIO): boolean {
  return colourWanted(io.env, (io.stdout as { isTTY?: boolean }).isTTY === true);
}

export { terminalSafe };

function relative(ms: number): string {
  const abs = Math.abs(ms);
  const s = Math.round(abs / 1000);
  const text = s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : s < 172_800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86_400)}d`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

/** The table (src/cli/terminal-table.ts: worst first, then by name; the status coloured). */
export function formatHealthTable(view: HealthView, now: number, colour: boolean): string {
  const entries = Object.entries(view.report.sources);
  const lines: string[] = [dim(terminalSafe(view.note), colour)];
  if (entries.length === 0) return `${lines.join('\n')}\nno sources configured (latchkey add <source> ...)\n`;
  const header = ['SOURCE', 'STATUS', 'AUTH', 'EXPIRES', 'LAST OK', 'FAILS', 'LATENCY', 'WHAT TO DO'];
  const rows = entries.map(([name, s]) => ({
    name,
    severity: healthSeverity(s.status),
    cells: [
      name,
      s.status,
      s.authPath ?? '-',
      s.expiresAt ? relative(Date.parse(s.expiresAt) - now) : '-',
      s.lastOkAt ? relative(Date.parse(s.lastOkAt) - now) : 'never',
      String(s.consecutiveFailures ?? 0),
      typeof s.latencyMs === 'number' ? `${Math.round(s.latencyMs)}ms` : '-',
      s.status === 'ok' ? '' : s.fix ? `${s.fix}  (${s.message})` : s.message,
    ],
  }));
  lines.push(...renderTable(header, rows, { statusColumn: 1, colour }));
  return `${lines.join('\n')}\n`;
}

/** A live pre-flight's results in the report's shape. */
export function reportFromPreflight(pre: PreflightReport, now: number, intervalSeconds = 0): HealthReport {
  const sources: HealthReport['sources'] = {};
  for (const r of pre.results) {
    sources[r.source] = {
      status: r.status,
      authPath: r.authPath,
      operatorAction: r.operatorAction,
      fix: r.fix ?? (r.operatorAction ? fixFor(r.source, r.operatorAction) : null),
      message: r.message,
      expiresAt: r.expiresAt,
      lastOkAt: r.status === 'ok' || r.status === 'expiring' ? r.checkedAt : null,
      consecutiveFailures: r.status === 'ok' || r.status === 'expiring' ? 0 : 1,
      latencyMs: r.latencyMs,
      history: [{ at: r.checkedAt, status: r.status, latencyMs: r.latencyMs }],
    };
  }
  return { generatedAt: new Date(now).toISOString(), intervalSeconds, sources };
}

async function livePreflight(io: CliIO, unreadable?: string): Promise<HealthView> {
  const { openLatchkey } = await import('../../latchkey.js');
  const lk = await openLatchkey({ env: io.env });
  try {
    const names = [...lk.config.sources.keys()];
    const pre = await lk.preflight(names, { useKeeperReport: false });
    return {
      from: 'live',
      report: reportFromPreflight(pre, Date.now()),
      note: unreadable
        ? `live pre-flight: the keeper report is unusable (${unreadable})`
        : `live pre-flight (no keeper report at ${lk.paths.health}; start one with \`latchkey keeper\`)`,
      stale: false,
    };
  } finally {
    await lk.close();
  }
}

/**
 * The keeper's report as a view; `{ missing }` when there is none, or when it cannot be used
 * (deleted or corrupted by hand: the keeper rewrites it at its next cycle) — the caller then
 * probes live rather than failing: the operator still wants to know what works.
 */
async function loadView(io: CliIO): Promise<HealthView | { missing: true; unreadable?: string }> {
  const path = homePaths(latchkeyHome(io.env)).health;
  let report: HealthReport | undefined;
  try {
    report = await readHealthReport(path);
  } catch (err) {
    return { missing: true, unreadable: (err as Error).message };
  }
  if (!report) return { missing: true };
  const now = Date.now();
  const stale = isReportStale(report, now);
  const age = relative(Date.parse(report.generatedAt) - now);
  const note = stale
    ? `keeper report from ${age} — STALE (the keeper checks every ${report.intervalSeconds}s): is it running? \`latchkey service status\``
    : `keeper report from ${age} (checks every ${report.intervalSeconds}s; ${path})`;
  return { from: 'keeper', report, note, stale };
}

export const command: Command = {
  summary: 'show the health of every source (the keeper report, or a live pre-flight)',
  usage: 'latchkey health [--json] [--watch]\n\n  --json   the report as JSON (the format of health.json)\n  --watch  redraw every 2 s (Ctrl-C to stop)\nExit codes (without --watch): 0 healthy, 3 unreachable/degraded, 4 action required.',
  async run(args, io) {
    const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' }, watch: { type: 'boolean' } } });
    if (positionals.length) throw usageError(`unexpected argument "${positionals[0]}"; usage: latchkey health [--json] [--watch]`);
    const render = (view: HealthView): string =>
      values.json ? `${JSON.stringify(view.report, null, values.watch ? undefined : 2)}\n` : formatHealthTable(view, Date.now(), useColour(io));
    if (!values.watch) {
      const found = await loadView(io);
      const view = 'missing' in found ? await livePreflight(io, found.unreadable) : found;
      io.stdout.write(render(view));
      if (view.stale && !values.json) io.stderr.write('latchkey: the keeper report is stale; the table may be out of date\n');
      return exitCodeFor(Object.values(view.report.sources).map((s) => s.status));
    }
    const tty = (io.stdout as { isTTY?: boolean }).isTTY === true;
    let live: { view: HealthView; at: number } | undefined;
    const stopping = new AbortController();
    const stop = (): void => stopping.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      while (!stopping.signal.aborted) {
        const found = await loadView(io).catch((err: unknown) => errorView(err));
        let view: HealthView;
        if ('missing' in found) {
          if (!live || Date.now() - live.at >= LIVE_REFRESH_MS) live = { view: await livePreflight(io, found.unreadable), at: Date.now() };
          view = live.view;
        } else {
          view = found;
        }
        const text = render(view);
        io.stdout.write(tty && !values.json ? `\x1b[H\x1b[2J${text}${dim(`refreshing every ${WATCH_MS / 1000}s — Ctrl-C to stop`, useColour(io))}\n` : text);
        await abortableWait(WATCH_MS, stopping.signal);
      }
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
    return ExitCode.ok;
  },
};

function errorView(err: unknown): HealthView {
  return { from: 'keeper', report: { generatedAt: new Date().toISOString(), intervalSeconds: 0, sources: {} }, note: `cannot read the report: ${(err as Error).message}`, stale: true };
}
