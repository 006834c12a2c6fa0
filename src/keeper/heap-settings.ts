import { setFlagsFromString } from 'node:v8';

/**
 * Holds the keeper process's heap to what the service's `--optimize-for-size` gives it, on bare
 * `node` too: V8's young generation stays at its initial size (two 1 MB semi-spaces) and the
 * old generation grows conservatively.
 *
 * Why: a keeper allocates a steady stream of short-lived objects (a request, an answer and a
 * verdict per probe, thousands per cycle). On bare `node`, V8 answers that allocation rate by
 * doubling the young generation up to 2 × 16 MB semi-spaces, which stay resident: at 1,000
 * sources that was ~40 MB of the keeper's ~145 MB peak (bench/keeper-scale, issue 9). The
 * service's `--optimize-for-size` (src/keeper/service.ts) caps it the same way, but a keeper
 * started by hand (`latchkey keeper` on bare `node`) had no such option.
 *
 * `--max-semi-space-size` is read only when the heap is set up, but the growth factor is read
 * each time V8 considers growing the young generation, so a factor of 1 set at start-up keeps
 * it where it is; `--optimize-for-size` is read each time V8 sizes the old generation's next
 * limit. Measured at 1,000 sources on bare `node`: peak RSS ~145 MB → ~97 MB, the same as the
 * service command line, at the same CPU per probe (bench/keeper-scale). The price is more
 * (1 MB, cheap) scavenges: a cycle waits on the network.
 * Only the keeper command calls this: a library user's process keeps V8's defaults.
 */
export function keepKeeperHeapSmall(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  // Also read at run time: the old generation grows conservatively (as under the service's
  // --optimize-for-size), so per-cycle garbage is collected before it piles up.
  setFlagsFromString('--optimize-for-size');
}
