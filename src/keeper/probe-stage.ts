import type { Clock } from '../core/clock.js';
import type { ProbeResult } from '../client/probe-types.js';
import { onAbort } from '../core/abort-fanout.js';
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
  // The keeper's stop signal outlives thousands of probes: one fan-out listener, not one each.
  const detach = onAbort(stop, onStop);
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
    detach();
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

/** A per-group cap for {@link runBounded}: which group (a probe's host) an item belongs to, and its share of the slots. */
export interface GroupCap<T> {
  groupOf: (item: T) => string;
  /** Slots one group may hold while items of other groups wait for one. */
  perGroup: number;
}

/**
 * Hands out items in order, except that an item whose group already holds `perGroup` slots is
 * set aside while items of other groups can go (they keep their order within their group).
 * Work-conserving: when only capped groups have items left, they get the free slots (nobody
 * else is waiting for them). A pick costs O(1) plus a look at the groups set aside, of which at
 * most concurrency / perGroup are capped at once.
 */
class FairPicker<T> {
  readonly #items: readonly T[];
  readonly #cap: GroupCap<T> | undefined;
  #next = 0;
  /** Slots held per group. */
  readonly #held = new Map<string, number>();
  /** Items set aside per group (their group was at its cap when their turn came), oldest first. */
  readonly #waiting = new Map<string, { items: T[]; head: number }>();

  constructor(items: readonly T[], cap: GroupCap<T> | undefined) {
    this.#items = items;
    this.#cap = cap && cap.perGroup >= 1 ? cap : undefined;
  }

  /** The next item to start and its group, or undefined when none is left. */
  pick(): { item: T; group: string } | undefined {
    const cap = this.#cap;
    if (!cap) return this.#next < this.#items.length ? { item: this.#items[this.#next++] as T, group: '' } : undefined;
    // Set-aside items of a group that has a slot again go first (they were next in line).
    for (const [group, q] of this.#waiting) {
      if ((this.#held.get(group) ?? 0) < cap.perGroup) return this.#take(group, q);
    }
    while (this.#next < this.#items.length) {
      const item = this.#items[this.#next++] as T;
      const group = cap.groupOf(item);
      if ((this.#held.get(group) ?? 0) < cap.perGroup) return this.#hold(item, group);
      let q = this.#waiting.get(group);
      if (!q) this.#waiting.set(group, (q = { items: [], head: 0 }));
      q.items.push(item);
    }
    // Only capped groups have items left: nobody else needs the slot.
    let least: [string, { items: T[]; head: number }] | undefined;
    for (const e of this.#waiting) if (!least || (this.#held.get(e[0]) ?? 0) < (this.#held.get(least[0]) ?? 0)) least = e;
    return least ? this.#take(least[0], least[1]) : undefined;
  }

  /** A slot of `group` was given back. */
  free(group: string): void {
    if (!this.#cap) return;
    const n = (this.#held.get(group) ?? 0) - 1;
    if (n > 0) this.#held.set(group, n);
    else this.#held.delete(group);
  }

  #take(group: string, q: { items: T[]; head: number }): { item: T; group: string } {
    const item = q.items[q.head++] as T;
    if (q.head >= q.items.length) this.#waiting.delete(group);
    return this.#hold(item, group);
  }

  #hold(item: T, group: string): { item: T; group: string } {
    this.#held.set(group, (this.#held.get(group) ?? 0) + 1);
    return { item, group };
  }
}

/**
 * Runs `task` over `items` with at most `concurrency` at once; resolves when all settled.
 * `task` must not throw (the keeper's tasks classify their own errors). A task may call its
 * `release` to give its slot back while it keeps running (a probe waiting on a stalled
 * upstream); at most `maxReleased` released tasks run at once, beyond that `release` does
 * nothing and the task keeps its slot. With `cap`, one group (a host) holds at most
 * `cap.perGroup` slots while items of other groups are waiting (see {@link FairPicker}).
 */
export async function runBounded<T>(
  items: readonly T[],
  concurrency: number,
  task: (item: T, release: () => void) => Promise<void>,
  maxReleased = 0,
  cap?: GroupCap<T>,
): Promise<void> {
  const picker = new FairPicker(items, cap);
  let released = 0;
  const detached: Promise<void>[] = [];
  const worker = async (): Promise<void> => {
    for (let next = picker.pick(); next !== undefined; next = picker.pick()) {
      const { item, group } = next;
      let isReleased = false;
      let freeSlot: () => void = () => undefined;
      const slotFree = new Promise<void>((resolve) => (freeSlot = resolve));
      const release = (): void => {
        if (isReleased || released >= maxReleased) return;
        isReleased = true;
        released++;
        picker.free(group);
        freeSlot();
      };
      const run = task(item, release).finally(() => {
        if (isReleased) released--;
        else picker.free(group);
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
