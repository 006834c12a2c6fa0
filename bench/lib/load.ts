/**
 * The stampede load shared by both subjects (Latchkey and the peer): C concurrent callers in
 * one process, each looping `token = await getToken()` then `GET protectedUrl` with it, from
 * `startAt` until `deadline` (epoch ms). Prints nothing; returns the counts.
 */
export interface LoadCounts {
  pid: number;
  callers: number;
  /** loop iterations: each is one attempt to make an authorized protected call */
  attempts: number;
  /** protected calls answered 200 */
  authorized: number;
  /** protected calls answered 401 */
  unauthorized: number;
  /** protected calls answered anything else */
  otherStatus: number;
  /** getToken() threw: no protected call was possible */
  tokenErrors: number;
  /** the protected call itself failed (network, timeout) */
  fetchErrors: number;
  /** a few distinct error messages with their counts (no token values) */
  errorSamples: Record<string, number>;
  /** ms after startAt when this worker was ready (0 = on time) */
  lateStartMs: number;
  /** wall time of the measured loop in this worker (ms) */
  elapsedMs: number;
  /** latency of the protected calls (ms from sending to the response body read) */
  latency: { p50: number; p99: number; max: number };
  /** latency of the calls answered 401 (the token expired in flight if this is large) */
  latency401: { min: number; max: number };
  /** subject-specific counters (refresh outcomes, file read errors, …) */
  extra: Record<string, number>;
}

export interface LoadOptions {
  callers: number;
  protectedUrl: string;
  startAt: number;
  deadline: number;
  getToken(): Promise<string>;
  extra?: Record<string, number>;
}

/** Pause after a failed getToken(), so a dead grant does not become a busy loop. */
const TOKEN_ERROR_PAUSE_MS = 50;
const FETCH_TIMEOUT_MS = 10_000;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

export async function runLoad(opts: LoadOptions): Promise<LoadCounts> {
  const counts: LoadCounts = {
    pid: process.pid,
    callers: opts.callers,
    attempts: 0,
    authorized: 0,
    unauthorized: 0,
    otherStatus: 0,
    tokenErrors: 0,
    fetchErrors: 0,
    errorSamples: {},
    lateStartMs: Math.max(0, Date.now() - opts.startAt),
    elapsedMs: 0,
    latency: { p50: 0, p99: 0, max: 0 },
    latency401: { min: 0, max: 0 },
    extra: opts.extra ?? {},
  };
  const latencies: number[] = [];
  let min401 = Number.POSITIVE_INFINITY;
  let max401 = 0;
  const sample = (err: unknown): void => {
    const msg = (err instanceof Error ? err.message : String(err)).slice(0, 160);
    if (counts.errorSamples[msg] !== undefined) counts.errorSamples[msg]++;
    else if (Object.keys(counts.errorSamples).length < 5) counts.errorSamples[msg] = 1;
  };
  await sleep(opts.startAt - Date.now());
  const started = Date.now();
  const caller = async (): Promise<void> => {
    while (Date.now() < opts.deadline) {
      counts.attempts++;
      let token: string;
      try {
        token = await opts.getToken();
      } catch (err) {
        counts.tokenErrors++;
        sample(err);
        await sleep(TOKEN_ERROR_PAUSE_MS);
        continue;
      }
      const sent = performance.now();
      try {
        const res = await fetch(opts.protectedUrl, {
          headers: { authorization: `Bearer ${token}` },
          signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
        });
        await res.arrayBuffer();
        const ms = performance.now() - sent;
        latencies.push(ms);
        if (res.status === 200) counts.authorized++;
        else if (res.status === 401) {
          counts.unauthorized++;
          min401 = Math.min(min401, ms);
          max401 = Math.max(max401, ms);
        } else counts.otherStatus++;
      } catch (err) {
        counts.fetchErrors++;
        sample(err);
      }
    }
  };
  await Promise.all(Array.from({ length: opts.callers }, caller));
  counts.elapsedMs = Date.now() - started;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number => Math.round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0);
  counts.latency = { p50: at(0.5), p99: at(0.99), max: Math.round(latencies[latencies.length - 1] ?? 0) };
  counts.latency401 = { min: Number.isFinite(min401) ? Math.round(min401) : 0, max: Math.round(max401) };
  return counts;
}

/** Worker argv: --key value pairs (all required ones are checked by the caller). */
export function parseWorkerArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i += 2) {
    const k = argv[i];
    const v = argv[i + 1];
    if (!k?.startsWith('--') || v === undefined) throw new Error(`bad worker arguments: ${argv.join(' ')}`);
    out.set(k.slice(2), v);
  }
  return out;
}

export function required(args: Map<string, string>, key: string): string {
  const v = args.get(key);
  if (v === undefined) throw new Error(`worker argument --${key} is required`);
  return v;
}
