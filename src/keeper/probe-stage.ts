import type { Clock } from '../clock.js';
import type { ProbeResult } from '../client/probe-types.js';
import { LatchkeyError, fixFor, isTransient } from '../errors.js';

/**
 * The keeper's "probe" stage: one probe per source with a hard deadline, run over many
 * sources with bounded concurrency. A stalled upstream costs one slot for `timeoutMs` and is
 * reported `unreachable`; it never stalls the cycle, even if the probe ignores its signal.
 */

export interface ProbeCallOptions {
  timeoutMs: number;
  signal: AbortSignal;
}

/** `lk.probe`: checks one source and answers a verdict (it should not throw, but may). */
export type ProbeFn = (source: string, options: ProbeCallOptions) => Promise<ProbeResult>;

/** Extra time granted past `timeoutMs` before the stage stops waiting for a probe itself. */
export const PROBE_GRACE_MS = 1_000;

/** The probe was abandoned because the keeper is shutting down: no verdict to record. */
export const CANCELLED = Symbol('cancelled');

/**
 * Runs one probe with a deadline. Resolves to the probe's result, to an `unreachable` result
 * when no answer came in time, to a classified result when the probe threw, or to
 * {@link CANCELLED} when `stop` aborted (shutdown).
 */
export async function probeWithDeadline(
  probe: ProbeFn,
  source: string,
  timeoutMs: number,
  stop: AbortSignal,
  clock: Clock,
): Promise<ProbeResult | typeof CANCELLED> {
  if (stop.aborted) return CANCELLED;
  const ctrl = new AbortController();
  let cancel: (v: typeof CANCELLED) => void = () => undefined;
  const cancelled = new Promise<typeof CANCELLED>((resolve) => (cancel = resolve));
  const onStop = (): void => {
    ctrl.abort(stop.reason);
    cancel(CANCELLED);
  };
  stop.addEventListener('abort', onStop, { once: true });
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => {
      ctrl.abort(new DOMException('probe timed out', 'TimeoutError'));
      // The probe saw its signal abort; give it a moment to answer for itself, then stop waiting.
      timer = setTimeout(() => resolve('timeout'), PROBE_GRACE_MS);
    }, timeoutMs);
  });
  try {
    const outcome = await Promise.race([probe(source, { timeoutMs, signal: ctrl.signal }), deadline, cancelled]);
    if (outcome === CANCELLED || stop.aborted) return CANCELLED;
    if (outcome === 'timeout') return timeoutResult(source, timeoutMs, clock);
    return outcome;
  } catch (err) {
    if (stop.aborted) return CANCELLED;
    if (ctrl.signal.aborted) return timeoutResult(source, timeoutMs, clock);
    return resultFromError(source, err, Math.round(performance.now() - started), clock);
  } finally {
    clearTimeout(timer);
    stop.removeEventListener('abort', onStop);
  }
}

function timeoutResult(source: string, timeoutMs: number, clock: Clock): ProbeResult {
  return {
    source,
    status: 'unreachable',
    authPath: null,
    operatorAction: null,
    fix: null,
    message: `no answer within ${formatSeconds(timeoutMs)}`,
    latencyMs: null,
    expiresAt: null,
    checkedAt: new Date(clock.now()).toISOString(),
  };
}

/** A probe that threw: an operator action makes it `action_required`, a transient error `unreachable`. */
export function resultFromError(source: string, err: unknown, latencyMs: number | null, clock: Clock): ProbeResult {
  const checkedAt = new Date(clock.now()).toISOString();
  if (err instanceof LatchkeyError) {
    const action = err.operatorAction ?? null;
    return {
      source,
      status: action ? 'action_required' : isTransient(err) ? 'unreachable' : 'degraded',
      authPath: null,
      operatorAction: action,
      fix: err.fix ?? (action ? fixFor(source, action) : null),
      message: err.message,
      latencyMs,
      expiresAt: null,
      checkedAt,
    };
  }
  return {
    source,
    status: 'degraded',
    authPath: null,
    operatorAction: null,
    fix: null,
    message: `probe failed: ${(err as Error)?.message ?? String(err)}`,
    latencyMs,
    expiresAt: null,
    checkedAt,
  };
}

function formatSeconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${(ms / 1000).toFixed(1)} s`;
}

/**
 * Runs `task` over `items` with at most `concurrency` at once; resolves when all settled.
 * `task` must not throw (the keeper's tasks classify their own errors).
 */
export async function runBounded<T>(items: readonly T[], concurrency: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      await task(item);
    }
  };
  const n = Math.max(1, Math.min(concurrency, items.length));
  await Promise.all(Array.from({ length: n }, worker));
}
