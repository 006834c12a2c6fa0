/**
 * What the stampede benches (one machine, and the fleet) report of their workers' load, written
 * once: the totals, the `authorized_pct` and `failed_calls` figures, the refresh window of a
 * short-lived token, and the note about workers that did not finish cleanly.
 */
import { effectiveSkewMs, expiresAtFrom } from '../../src/engine/fresh-token.js';
import type { LoadCounts } from './load.js';
import { note, type reporter } from './report.js';
import type { WorkerResult } from './spawn.js';

export interface LoadTotals {
  attempts: number;
  authorized: number;
  /** attempts without a 200 */
  failed: number;
  protectedCalls: number;
  unauthorized: number;
  authorizedPct: number;
  /** error messages with their counts, over every worker */
  errorSamples: Record<string, number>;
  /** the workers' subject-specific counters, summed */
  extraTotals: Record<string, number>;
}

/** Sums the workers' counts; throws (with the last stderr) when no worker produced a result. */
export function loadTotals(subject: string, workers: WorkerResult<LoadCounts>[]): LoadTotals {
  const results = workers.map((w) => w.result);
  if (workers.every((w) => w.result === undefined || w.code !== 0)) {
    throw new Error(`${subject}: no worker produced a result; last stderr: ${workers[0]?.stderr.slice(-2000) ?? ''}`);
  }
  const sum = (f: (c: LoadCounts) => number): number => results.reduce((a, c) => a + (c ? f(c) : 0), 0);
  const attempts = sum((c) => c.attempts);
  const authorized = sum((c) => c.authorized);
  const errorSamples: Record<string, number> = {};
  const extraTotals: Record<string, number> = {};
  for (const c of results) {
    if (!c) continue;
    for (const [m, n] of Object.entries(c.errorSamples)) errorSamples[m] = (errorSamples[m] ?? 0) + n;
    for (const [k, n] of Object.entries(c.extra)) extraTotals[k] = (extraTotals[k] ?? 0) + n;
  }
  return {
    attempts,
    authorized,
    failed: attempts - authorized,
    protectedCalls: sum((c) => c.authorized + c.unauthorized + c.otherStatus),
    unauthorized: sum((c) => c.unauthorized),
    authorizedPct: attempts === 0 ? 0 : (authorized / attempts) * 100,
    errorSamples,
    extraTotals,
  };
}

/** The `authorized_pct` and `failed_calls` figures (limits 100 % and 0), with the breakdown. */
export function reportAuthorized(out: ReturnType<typeof reporter>, subject: string, workers: WorkerResult<LoadCounts>[], t: LoadTotals, extra: Record<string, unknown> = {}): void {
  const results = workers.map((w) => w.result);
  const sum = (f: (c: LoadCounts) => number): number => results.reduce((a, c) => a + (c ? f(c) : 0), 0);
  const worst = (f: (c: LoadCounts) => number): number => Math.max(...results.map((c) => (c ? f(c) : 0)));
  out({
    figure: 'authorized_pct',
    value: t.authorizedPct,
    limit: 100,
    compare: 'min',
    unit: '%',
    subject,
    extra: {
      authorized: t.authorized,
      attempts: t.attempts,
      unauthorized401: t.unauthorized,
      otherStatus: sum((c) => c.otherStatus),
      tokenErrors: sum((c) => c.tokenErrors),
      fetchErrors: sum((c) => c.fetchErrors),
      protectedCallLatencyMs: { p50: worst((c) => c.latency.p50), p99: worst((c) => c.latency.p99), max: worst((c) => c.latency.max), note: 'worst worker' },
      ...(t.unauthorized > 0
        ? { latency401Ms: { min: Math.min(...results.filter((c) => c && c.unauthorized > 0).map((c) => c?.latency401.min ?? 0)), max: worst((c) => c.latency401.max) } }
        : {}),
      ...extra,
      ...(Object.keys(t.errorSamples).length ? { errorSamples: t.errorSamples } : {}),
    },
  });
  out({ figure: 'failed_calls', value: t.failed, limit: 0, unit: 'calls', subject, extra: { definition: 'attempts without a 200 (401, other status, token error, network error)' } });
}

/**
 * The refresh window of a token of `ttlS` seconds as the engine sees it: its lifetime counted as
 * the TTL less a second (`expires_in` is whole seconds; the IdP truncates its clock), less the
 * skew (min(120 s, lifetime / 3)). One refresh per window at most.
 */
export function refreshWindow(ttlS: number): { lifetimeMs: number; windowMs: number } {
  const lifetimeMs = expiresAtFrom(0, ttlS);
  return { lifetimeMs, windowMs: lifetimeMs - effectiveSkewMs({ obtainedAt: 0, expiresAt: lifetimeMs }) };
}

/** Notes the workers that did not finish cleanly and the latest start, if any. */
export function noteStragglers(subject: string, workers: WorkerResult<LoadCounts>[]): void {
  const broken = workers.filter((w) => w.result === undefined || w.code !== 0);
  const late = Math.max(0, ...workers.map((w) => w.result?.lateStartMs ?? 0));
  if (broken.length === 0 && late === 0) return;
  note(
    `${subject}: ${broken.length} worker(s) without a clean result (codes ${broken.map((w) => w.code ?? w.signal).join(',')}${broken.some((w) => w.killed) ? ', killed at the hard deadline' : ''}); latest start ${late} ms after the start time`,
  );
  for (const w of broken.slice(0, 2)) note(`stderr: ${w.stderr.slice(-1500)}`);
}
