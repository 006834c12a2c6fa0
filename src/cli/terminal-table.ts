import { sanitizeRemoteText } from '../core/sanitize.js';
import type { HealthStatus } from '../core/health.js';

/**
 * How `health`, `preflight` and `status` print a table: one sort order (the worst first, then
 * by name), the same colours for the same severity, colour only on a terminal and never with
 * NO_COLOR (https://no-color.org), cells made terminal-safe, columns padded before colouring so
 * they line up either way. Pure: the CLI's synchronous fast path prints preflight with it too.
 */

/** How bad a row is: 0 needs a person, then unreachable, degraded, expiring, ok. */
export type Severity = 0 | 1 | 2 | 3 | 4;

const HEALTH_SEVERITY: Record<HealthStatus, Severity> = { action_required: 0, unreachable: 1, degraded: 2, expiring: 3, ok: 4 };

/** The severity of a health verdict (`health`, `preflight`). */
export function healthSeverity(status: string): Severity {
  return HEALTH_SEVERITY[status as HealthStatus] ?? 2;
}

const COLOUR: Record<Severity, string> = {
  0: '\x1b[1;31m', // bold red: a person must act
  1: '\x1b[34m', // blue: unreachable, try later
  2: '\x1b[35m', // magenta: degraded
  3: '\x1b[33m', // yellow: expiring
  4: '\x1b[32m', // green: ok
};
const RESET = '\x1b[0m';
export const DIM = '\x1b[2m';

/** `text` in the colour of `severity` (or as it is, without colour). */
export function paint(text: string, severity: Severity, colour: boolean): string {
  return colour ? `${COLOUR[severity]}${text}${RESET}` : text;
}

/** `text` dimmed (or as it is). */
export function dim(text: string, colour: boolean): string {
  return colour ? `${DIM}${text}${RESET}` : text;
}

/** Colour only on a terminal that is not `dumb`, and never when NO_COLOR is set (to anything but ""). */
export function colourWanted(env: NodeJS.ProcessEnv, stdoutIsTTY: boolean): boolean {
  const nc = env.NO_COLOR;
  if (nc !== undefined && nc !== '') return false;
  return stdoutIsTTY && env.TERM !== 'dumb';
}

/**
 * One table cell as plain text. Messages carry text from upstreams (an IdP's
 * `error_description`, an API's answer) and health.json can be edited by hand: an escape
 * sequence in them must not reach the terminal, where it could rewrite the screen or the title.
 */
export function terminalSafe(text: string): string {
  // The one sanitizer (src/sanitize.ts): escape sequences removed whole, controls dropped, any
  // piece of a secret this process holds redacted; never cut (a table cell is shown whole).
  return sanitizeRemoteText(text, Infinity);
}

export interface TableRow {
  name: string;
  severity: Severity;
  cells: string[];
}

/** Worst first, then by name (code-point order, the same on every machine). */
export function bySeverityThenName(a: { name: string; severity: Severity }, b: { name: string; severity: Severity }): number {
  if (a.severity !== b.severity) return a.severity - b.severity;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/**
 * The table: `header`, then `rows` sorted worst first, then by name. The cell at
 * `statusColumn` is coloured by the row's severity; the last column is not padded.
 */
export function renderTable(header: readonly string[], rows: readonly TableRow[], options: { statusColumn: number; colour: boolean }): string[] {
  const sorted = [...rows].sort(bySeverityThenName);
  const safe = sorted.map((r) => r.cells.map((c) => terminalSafe(c)));
  const widths = header.map((h, i) => Math.max(h.length, ...safe.map((cells) => (cells[i] ?? '').length)));
  const pad = (cells: readonly string[]): string[] => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)));
  const lines = [pad(header).join('  ').trimEnd()];
  sorted.forEach((r, i) => {
    const cells = pad(safe[i]!);
    cells[options.statusColumn] = paint(cells[options.statusColumn]!, r.severity, options.colour);
    lines.push(cells.join('  ').trimEnd());
  });
  return lines;
}
