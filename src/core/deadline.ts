/**
 * A per-call abort signal that fires when a parent aborts (shutdown, a caller's own signal) or
 * after a timeout, and that lets go of the parent when the call is over.
 *
 * Why not `AbortSignal.any([parent, AbortSignal.timeout(ms)])`: on Node 20 every `any()` adds an
 * entry to the *parent's* set of dependent signals that is never pruned, so a keeper-lifetime
 * parent grew by one entry per webhook attempt or session touch, for as long as the keeper ran
 * (nodejs/node#55351). And an `AbortSignal.timeout` keeps its timer, and everything reachable
 * from the signal, alive until it fires, long after the call finished: a keeper probing 10,000
 * sources with a 10 s timeout carried ~10,000 of them at any time (bench/keeper-scale).
 */
export interface CallDeadline {
  readonly signal: AbortSignal;
  /** Clears the timer and detaches from the parent. Idempotent; call it in `finally`. */
  dispose(): void;
}

export function callDeadline(parent: AbortSignal | undefined, timeoutMs: number): CallDeadline {
  const ctrl = new AbortController();
  if (parent?.aborted) {
    ctrl.abort(parent.reason);
    return { signal: ctrl.signal, dispose: () => undefined };
  }
  // A listener of its own on the parent: cheap while the parent has few (a caller's signal, a
  // keeper's shutdown with a few webhook or session calls on it). Thousands of calls at once on
  // one signal share a listener instead (abort-fanout.ts, the keeper's probes).
  const onParentAbort = (): void => ctrl.abort(parent?.reason);
  parent?.addEventListener('abort', onParentAbort, { once: true });
  const timer = setTimeout(() => ctrl.abort(new DOMException('The operation timed out', 'TimeoutError')), timeoutMs);
  timer.unref?.();
  return {
    signal: ctrl.signal,
    dispose() {
      clearTimeout(timer);
      parent?.removeEventListener('abort', onParentAbort);
    },
  };
}
