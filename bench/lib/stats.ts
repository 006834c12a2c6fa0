/** Small statistics for benchmark samples. */

export function median(xs: readonly number[]): number {
  return quantile(xs, 0.5);
}

/** Linear-interpolated quantile (q in [0, 1]); NaN for an empty sample. */
export function quantile(xs: readonly number[], q: number): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const pos = (s.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  const a = s[lo] as number;
  const b = s[hi] as number;
  return a + (b - a) * (pos - lo);
}

export function min(xs: readonly number[]): number {
  return xs.reduce((m, x) => (x < m ? x : m), Number.POSITIVE_INFINITY);
}

export function max(xs: readonly number[]): number {
  return xs.reduce((m, x) => (x > m ? x : m), Number.NEGATIVE_INFINITY);
}

export function sum(xs: readonly number[]): number {
  return xs.reduce((a, x) => a + x, 0);
}

/** Milliseconds elapsed since `start` (from `process.hrtime.bigint()`). */
export function msSince(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}
