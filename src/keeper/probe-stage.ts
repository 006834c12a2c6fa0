import type { Clock } from '../core/clock.js';
import type { ProbeResult } from '../client/probe-types.js';
import { LatchkeyError, fixFor, isTransient } from '../core/errors.js';

/**
 * The keeper's "probe" stage: one probe per source with a hard deadline, run over many
 * sources with bounded concurrency. A stalled upstream holds a slot only until it is
 * {@link SLOW_PROBE_MS} late: it then waits out its deadline beside the pool (as many such
 * waits at once as the pool has slots), so a few stalled hosts do not slow the probes of
 * every other source. It is reported `unreachable` at its deadline; it never stalls the
 * cycle, even if the probe ignores its signal.
 */

export interface ProbeCallOptions {
  timeoutMs: number;
  signal: AbortSignal;
}

/** `lk.probe`: checks one source and answers a verdict (it should not throw, but may). */
export type ProbeFn = (source: string, options: ProbeCallOptions) => Promise<ProbeResult>;

/** Extra time granted past `timeoutMs` before the stage stops waiting for a probe itself. */
export const PROBE_GRACE_MS = 1_000;

/**
 * A probe still unanswered after this long gives its concurrency slot back (issue 9: at 10,000
 * sources, 1 % stalled held a 32-slot pool for 1,000 slot-seconds, two thirds of a cycle).
 * Healthy APIs answer well within it; a slow one only costs a wait beside the pool.
 */
export const SLOW_PROBE_MS = 2_000;

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
  /** Called once if the probe is still unanswered after {@link SLOW_PROBE_MS} (or half its timeout). */
  onSlow?: () => void,
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
  const slow = onSlow ? setTimeout(onSlow, Math.min(SLOW_PROBE_MS, timeoutMs / 2)) : undefined;
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
    clearTimeout(slow);
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
 * `task` must not throw (the keeper's tasks classify their own errors). A task may call its
 * `release` to give its slot back while it keeps running (a probe waiting on a stalled
 * upstream); at most `maxReleased` released tasks run at once, beyond that `release` does
 * nothing and the task keeps its slot.
 */
export async function runBounded<T>(items: readonly T[], concurrency: number, task: (item: T, release: () => void) => Promise<void>, maxReleased = 0): Promise<void> {
  let next = 0;
  let released = 0;
  const detached: Promise<void>[] = [];
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const item = items[next++] as T;
      let isReleased = false;
      let freeSlot: () => void = () => undefined;
      const slotFree = new Promise<void>((resolve) => (freeSlot = resolve));
      const release = (): void => {
        if (isReleased || released >= maxReleased) return;
        isReleased = true;
        released++;
        freeSlot();
      };
      const run = task(item, release).finally(() => {
        if (isReleased) released--;
        freeSlot();
      });
      await slotFree;
      if (isReleased) detached.push(run);
      else await run;
    }
  };
  const n = Math.max(1, Math.min(concurrency, items.length));
  await Promise.all(Array.from({ length: n }, worker));
  await Promise.all(detached);
}
