import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';

/** Set by {@link keepKeeperHeapSmall}: only then does {@link fitYoungGeneration} do anything. */
let heldSmall = false;
/** The young generation's growth under way (see {@link fitYoungGeneration}). */
let growing: { target: number; until: number; timer?: NodeJS.Timeout } | undefined;
const MB = 1024 * 1024;
/** The old generation's growing factor in a keeper with a larger young generation (1 + this / 100). */
const OLD_GROWING_PERCENT = 20;
/** How long a growth is watched before it is given up (V8 grows only while objects survive). */
const GROWTH_WATCH_MS = 60_000;

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
  heldSmall = true;
  setFlagsFromString('--semi-space-growth-factor=1');
  // Also read at run time: the old generation grows conservatively (as under the service's
  // --optimize-for-size), so per-cycle garbage is collected before it piles up.
  setFlagsFromString('--optimize-for-size');
}

/**
 * The young generation (MB, both semi-spaces: V8's `new_space` size) a keeper of `sources`
 * sources is given: 1 MB (what {@link keepKeeperHeapSmall} holds it to) up to ~1,250 sources,
 * then doubling with the count up to 16 MB at 10,000.
 *
 * Why: with a small one, the probes in flight (96 requests and their answers, each alive ~50 ms)
 * outlive the scavenges that run every few milliseconds at 10,000 sources; they are copied,
 * promoted, and the old generation collected over a heap holding every source's state: at
 * 10,000 sources that was ~7.5 s of garbage collection per cycle with 1 MB, a third of the
 * keeper's CPU. At 8 MB a scavenge still came every ~30 ms and promoted ~0.8 MB, a mark-compact
 * followed every ~0.6 s, and the keeper's CPU per probe was ~0.95 ms; at 16 MB (8 MB per
 * semi-space) it is ~0.7 ms, for ~5 MB more resident (bench/keeper-scale, issue 9). At 1,000
 * sources nothing changes.
 */
export function youngGenerationMb(sources: number): number {
  return Math.min(16, 2 ** Math.floor(Math.log2(Math.max(1, sources / 625))));
}

/**
 * Heap options on the command line (the service's `--optimize-for-size`, whose young generation
 * cannot grow past 2 MB anyway) or in NODE_OPTIONS: the operator's choice, left as it is.
 */
function heapOptionsGiven(): boolean {
  const given = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)];
  return given.some((a) => /^--(optimize[-_]for[-_]size|(max|min)[-_]semi[-_]space[-_]size|max[-_]old[-_]space[-_]size)\b/.test(a));
}

function semiSpaceMb(): number {
  return (getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0) / MB;
}

/**
 * In a keeper process that holds its heap small ({@link keepKeeperHeapSmall}; a library user's
 * process is never touched, nor one started with heap options of its own), lets V8 grow the young generation to {@link youngGenerationMb}
 * and holds it there: the growth factor goes to 2 (V8 doubles the semi-space at a scavenge
 * where enough survived) until {@link holdYoungGeneration} sees the size reached and sets it
 * back to 1. Called at each cycle's start.
 */
export function fitYoungGeneration(sources: number): void {
  if (!heldSmall || growing !== undefined || heapOptionsGiven()) return;
  const target = youngGenerationMb(sources);
  const now = semiSpaceMb();
  if (now <= 0 || now >= target) return;
  // --optimize-for-size shrinks the young generation back to its initial size at each of its
  // memory-reducing collections; without it, the old generation grows as conservatively as
  // under it (×1.2 instead of its ×1.3) by an explicit growing factor.
  setFlagsFromString('--no-optimize-for-size');
  setFlagsFromString(`--heap-growing-percent=${OLD_GROWING_PERCENT}`);
  setFlagsFromString('--semi-space-growth-factor=2');
  growing = { target, until: Date.now() + GROWTH_WATCH_MS };
  // A backstop: the keeper's probes call holdYoungGeneration() far more often.
  growing.timer = setInterval(holdYoungGeneration, 10);
  growing.timer.unref();
}

/**
 * Stops the young generation's growth once it reached its size (cheap when it is not growing):
 * the keeper calls it after each probe, so that a young generation that reached its size is not doubled
 * again before a timer gets its turn on a busy event loop.
 */
export function holdYoungGeneration(): void {
  const g = growing;
  if (g === undefined || (semiSpaceMb() < g.target && Date.now() < g.until)) return;
  setFlagsFromString('--semi-space-growth-factor=1');
  clearInterval(g.timer);
  growing = undefined;
}
