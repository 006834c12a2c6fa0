import { parseArgs } from 'node:util';
import { openLatchkey, type SourceStatus } from '../../latchkey.js';
import type { Command } from '../io.js';
import { sanitizeRemoteText } from '../../sanitize.js';

export function formatStatusTable(rows: SourceStatus[], now = Date.now()): string {
  if (rows.length === 0) return 'no sources configured (latchkey add <source> ...)\n';
  const header = ['SOURCE', 'PATH', 'STATE', 'EXPIRES', 'LAST REFRESH', 'NOTE'];
  const body = rows.map((r) => [
    r.source,
    r.authPath ?? '-',
    r.state,
    r.expiresAt ? relative(Date.parse(r.expiresAt) - now) : '-',
    r.lastRefreshAt ? `${relative(Date.parse(r.lastRefreshAt) - now)}` : '-',
    // The note may quote what an IdP said (stored in the store, which can be old or hand-edited).
    sanitizeRemoteText(r.fix ? `${r.message}; fix: ${r.fix}` : r.message, Infinity),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return `${[line(header), ...body.map(line)].join('\n')}\n`;
}

function relative(ms: number): string {
  const abs = Math.abs(ms);
  const s = Math.round(abs / 1000);
  const text = s < 90 ? `${s}s` : s < 5400 ? `${Math.round(s / 60)}m` : s < 172800 ? `${Math.round(s / 3600)}h` : `${Math.round(s / 86400)}d`;
  return ms >= 0 ? `in ${text}` : `${text} ago`;
}

export const command: Command = {
  summary: 'show each source: auth path, state, expiry, last refresh',
  usage: 'latchkey status [--json]',
  async run(args, io) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean' } } });
    const lk = await openLatchkey({ env: io.env });
    try {
      const rows = await lk.status();
      io.stdout.write(values.json ? `${JSON.stringify({ config: lk.config.file, store: lk.store.location, sources: rows }, null, 2)}\n` : formatStatusTable(rows));
      const worst = rows.some((r) => r.operatorAction) ? 4 : 0;
      return worst;
    } finally {
      await lk.close();
    }
  },
};
