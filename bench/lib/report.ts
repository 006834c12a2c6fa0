/**
 * One JSON line per figure, the same shape in every benchmark:
 *
 *   {"bench":"stampede","figure":"revoked_grants","value":0,"limit":0,"pass":true,"unit":"grants","subject":"latchkey",…extra}
 *
 * `limit` and `pass` are null for figures that are informational. A figure that misses its
 * limit says `"pass":false`; the bench still exits 0 (it exits non-zero only when it could
 * not run).
 */
export type Comparison = 'max' | 'min';

export interface FigureInput {
  figure: string;
  value: number;
  unit: string;
  /** The limit, if the figure has one. */
  limit?: number;
  /** `max`: value <= limit passes (default); `min`: value >= limit passes. */
  compare?: Comparison;
  /** Who was measured: `latchkey` (default when a bench compares), `peer`, `node`, … */
  subject?: string;
  /** Anything else worth printing (method, rounds, samples, …). */
  extra?: Record<string, unknown>;
}

export interface FigureLine {
  bench: string;
  figure: string;
  value: number;
  limit: number | null;
  pass: boolean | null;
  unit: string;
  subject?: string;
  [key: string]: unknown;
}

/** Builds the line for a figure (no printing). */
export function figureLine(bench: string, f: FigureInput): FigureLine {
  const limit = f.limit ?? null;
  let pass: boolean | null = null;
  if (limit !== null) pass = (f.compare ?? 'max') === 'max' ? f.value <= limit : f.value >= limit;
  const line: FigureLine = { bench, figure: f.figure, value: round(f.value), limit, pass, unit: f.unit };
  if (f.subject !== undefined) line.subject = f.subject;
  if (f.extra) Object.assign(line, f.extra);
  return line;
}

/** A printer bound to one bench: `const out = reporter('hot-path'); out({ figure, value, unit })`. */
export function reporter(bench: string): (f: FigureInput) => FigureLine {
  return (f) => {
    const line = figureLine(bench, f);
    process.stdout.write(`${JSON.stringify(line)}\n`);
    return line;
  };
}

/** Rounds to at most 4 significant decimals so lines stay readable (integers stay exact). */
export function round(n: number): number {
  if (!Number.isFinite(n) || Number.isInteger(n)) return n;
  const abs = Math.abs(n);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 1 ? 3 : 4;
  return Number(n.toFixed(digits));
}

/** Progress and diagnostics go to stderr: stdout carries only figure lines. */
export function note(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
