/** One autocannon run, reduced to the figures the gateway benches print. */
import autocannon from 'autocannon';

/** What one run measured. */
export interface CannonRun {
  /** Mean requests/s over the run (2xx and others alike; see `non2xx`). */
  rps: number;
  p50Ms: number;
  p99Ms: number;
  total2xx: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  seconds: number;
  statusCodes: Record<string, number>;
}

/** Runs autocannon against `url` with `headers` for `seconds` with `connections` keep-alive connections. */
export async function cannon(url: string, headers: Record<string, string>, seconds: number, connections: number): Promise<CannonRun> {
  const r = await autocannon({ url, headers, duration: seconds, connections, pipelining: 1, timeout: 10 });
  const statusCodes: Record<string, number> = {};
  for (const [code, s] of Object.entries(r.statusCodeStats ?? {})) statusCodes[code] = Number(s.count);
  return {
    rps: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    total2xx: r['2xx'],
    non2xx: r.non2xx,
    errors: r.errors,
    timeouts: r.timeouts,
    seconds: r.duration,
    statusCodes,
  };
}
