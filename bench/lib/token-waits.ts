/**
 * The wait of a caller at expiry: how long a token call takes when it is not answered from the
 * process's memory (a memo hit resolves in microseconds; a call at expiry waits for a store
 * read, a lock, the IdP). The same rule for every subject: calls of at least
 * {@link WAIT_THRESHOLD_MS} count as waits. Dropping the shorter ones can only raise a high
 * percentile, never lower it.
 */
export const WAIT_THRESHOLD_MS = 2;

export interface TimedTokens {
  /** `getToken`, timed. */
  getToken(): Promise<string>;
  /** Every wait recorded so far, in ms (whole numbers). */
  waits(): number[];
}

export function timedTokens(getToken: () => Promise<string>): TimedTokens {
  const waits: number[] = [];
  return {
    getToken: async () => {
      const started = performance.now();
      try {
        return await getToken();
      } finally {
        const ms = performance.now() - started;
        if (ms >= WAIT_THRESHOLD_MS) waits.push(Math.round(ms));
      }
    },
    waits: () => waits,
  };
}

/** Percentiles of the waits of every worker together. */
export function waitPercentiles(all: number[]): { count: number; p50: number; p99: number; max: number } {
  const sorted = [...all].sort((a, b) => a - b);
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0;
  return { count: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? 0 };
}
