/**
 * A value loaded on first use and kept (a module the CLI's start must not pay for, imported
 * when a call first needs it). A failed load is not kept: the next call tries again.
 *
 * Why not `await import(…)` at each call: Node resolves a dynamic import through its module
 * loader every time, even for a module it has loaded (~7 µs a call here); at 10,000 probes a
 * cycle that was a few percent of the keeper's CPU (bench/keeper-scale).
 */
export function lazy<T>(load: () => Promise<T>): () => Promise<T> {
  let kept: Promise<T> | undefined;
  return () => {
    if (kept === undefined) {
      const loading = load();
      kept = loading;
      loading.catch(() => {
        if (kept === loading) kept = undefined;
      });
    }
    return kept;
  };
}
