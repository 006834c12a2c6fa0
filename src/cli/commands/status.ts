import { ExitCode } from '../../core/errors.js';
import { parseArgs } from 'node:util';
import { openLatchkey, type SourceStatus } from '../../latchkey.js';
import type { Command } from '../io.js';
import { colourWanted, dim, renderTable, type Severity } from '../terminal-table.js';

/** How bad a status row is, on the scale `health` and `preflight` use (worst first). */
function statusSeverity(r: SourceStatus): Severity {
  if (r.operatorAction) return 0;
  if (r.state === 'failing') return 1;
  if (r.state === 'error' || r.state === 'expired') return 2;
  if (r.state === 'expiring') return 3;
  return 4;
}

/** The table under a line naming the config (every config fix points at it) and the store. */
export function formatStatusTable(rows: SourceStatus[], now = Date.now(), where?: { config: string; store: string }, colour = false): string {
  const top = where ? `${dim(`config: ${where.config}   store: ${where.store}`, colour)}\n` : '';
  if (rows.length === 0) return `${top}no sources configured (latchkey add <source> ...)\n`;
  const header = ['SOURCE', 'PATH', 'STATE', 'EXPIRES', 'LAST REFRESH', 'NOTE'];
  const body = rows.map((r) => ({
    name: r.source,
    severity: statusSeverity(r),
    cells: [
      r.source,
      r.authPath ?? '-',
      r.state,
      r.expiresAt ? relative(Date.parse(r.expiresAt) - now) : '-',
      r.lastRefreshAt ? `${relative(Date.parse(r.lastRefreshAt) - now)}` : '-',
      r.fix ? `${r.message}; fix: ${r.fix}` : r.message,
    ],
  }));
  return `${top}${renderTable(header, body, { statusColumn: 2, colour }).join('\n')}\n`;
}

function relative(ms: number): string {
  const abs = Math.abs(ms);
  const s = Math.round(abs / 1000);
  const text = s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

export const command: Command = {
  summary: 'show each source: auth path, state, expiry, last refresh',
  usage: 'latchkey status [--json]\n  Prints the config and store paths, then one row per source, the worst first.',
  async run(args, io) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
    const lk = await openLatchkey({ env: io.env });
    try {
      const rows = await lk.status();
      const colour = colourWanted(io.env, (io.stdout as { isTTY?: boolean }).isTTY === true);
      io.stdout.write(
        values.json
          ? `${JSON.stringify({ config: lk.config.file, store: lk.store.location, sources: rows }, null, 2)}\n`
          : formatStatusTable(rows, Date.now(), { config: lk.config.file, store: lk.store.location }, colour),
      );
      const worst = rows.some((r) => r.operatorAction) ? ExitCode.actionRequired : ExitCode.ok;
      return worst;
    } finally {
      await lk.close();
    }
  },
};
