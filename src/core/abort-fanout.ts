/**
 * Calls on one long-lived signal's abort (a keeper's shutdown) without one event listener each.
 *
 * Why: Node's `EventTarget` scans every listener a signal has on each `addEventListener` and
 * `removeEventListener` (to refuse duplicates), so a signal that thousands of short calls listen
 * to in turn makes each registration cost as much as the listeners already there: at 10,000
 * sources the keeper's probes (96 in flight, up to 384 stalled ones waiting beside them) spent
 * more on their shutdown listener than on their request headers (bench/keeper-scale, issue 9).
 * Here the signal has one listener, and a call's registration is a `Set` insertion.
 */
const fanouts = new WeakMap<AbortSignal, Set<() => void>>();

/**
 * Runs `fn` once when `signal` aborts (at once when it already has); returns how to let go of
 * it (idempotent), to be called when the call is over.
 */
export function onAbort(signal: AbortSignal, fn: () => void): () => void {
  if (signal.aborted) {
    fn();
    return () => undefined;
  }
  let calls = fanouts.get(signal);
  if (calls === undefined) {
    const created = new Set<() => void>();
    calls = created;
    fanouts.set(signal, created);
    signal.addEventListener(
      'abort',
      () => {
        fanouts.delete(signal);
        for (const call of [...created]) call();
        created.clear();
      },
      { once: true },
    );
  }
  // A wrapper of its own: the same `fn` registered twice is called twice, and let go of once each.
  const entry = (): void => fn();
  const registered = calls;
  registered.add(entry);
  return () => {
    registered.delete(entry);
  };
}
