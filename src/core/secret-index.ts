/**
 * Every secret value this process holds, indexed so that text from elsewhere can be searched
 * for any piece of one. `Secret` registers its value when it is created (from the store, the
 * config, a keyring, a token response, a cookie jar); nothing is threaded through call sites,
 * and `lk.token()`'s memo path creates no `Secret`, so it does no work here.
 *
 * The index holds one 53-bit fingerprint per distinct {@link WINDOW}-character window of the
 * values (8 bytes each, in sorted typed arrays), brought up to date lazily by the first search
 * after values were added: a process that never meets upstream text never builds it. A real
 * piece always matches (same characters, same fingerprint); a collision (with a million
 * windows indexed, about one lookup in 10^10) could only over-redact eight ordinary characters.
 *
 * Values are held strongly while a `Secret` still holds them or while they keep being
 * re-registered (the keeper re-reads the store every cycle); a value neither held nor seen
 * again since the previous sweep (a rotated-away refresh token) is forgotten at the next sweep,
 * so the registry stays within a small multiple of what the profile holds.
 */

/** Pieces shorter than this are not searched for (they would hit ordinary words). */
export const WINDOW = 8;
/** Values shorter than {@link WINDOW} are matched whole, down to this length (as before: no real token is shorter). */
export const MIN_WHOLE = 6;

interface Holder {
  reveal(): string;
}

interface Entry {
  /** Sweep generation in which the value was last registered. */
  gen: number;
  /** The latest holder: while it lives, the value is kept whatever its generation. */
  ref: WeakRef<Holder>;
}

const MIN_SWEEP_AT = 1024;

const values = new Map<string, Entry>();
/** Long values registered since the index was last brought up to date. */
let unindexed: string[] = [];
/** Values shorter than WINDOW, matched whole. */
const shortValues = new Set<string>();
let generation = 0;
let sweepAt = MIN_SWEEP_AT;
/** A sweep removed values: the index is rebuilt before the next search. */
let stale = false;

/** Called by the `Secret` constructor. Cheap: one map lookup, an allocation only for a value not seen before. */
export function registerSecret(holder: Holder, value: string): void {
  if (typeof value !== 'string' || value.length < MIN_WHOLE) return;
  const entry = values.get(value);
  if (entry) {
    entry.gen = generation;
    if (entry.ref.deref() === undefined) entry.ref = new WeakRef(holder);
    return;
  }
  values.set(value, { gen: generation, ref: new WeakRef(holder) });
  if (value.length < WINDOW) shortValues.add(value);
  else unindexed.push(value);
  if (values.size >= sweepAt) sweep();
}

/** Forgets values that no live `Secret` holds and that were not registered again since the previous sweep. */
function sweep(): void {
  for (const [value, entry] of values) {
    if (entry.gen < generation && entry.ref.deref() === undefined) {
      values.delete(value);
      shortValues.delete(value);
      stale = true;
    }
  }
  generation += 1;
  sweepAt = Math.max(MIN_SWEEP_AT, values.size * 2);
  if (stale) unindexed = [];
}

/** How many distinct values are registered (tests and benchmarks). */
export function registeredSecretCount(): number {
  return values.size;
}

// --- the window index -----------------------------------------------------------------------
//
// Two sorted arrays of 53-bit window fingerprints (a double holds them exactly): `main`, and
// `recent` for windows added since `main` was last merged. 8 bytes per distinct window, no
// load-factor slack; identical windows (every JWT of an IdP starts with the same header)
// are stored once. New values are merged into `recent`, and `recent` into `main` only when it
// has grown to a quarter of it, so a keeper that refreshes between two searches does not
// rewrite the whole index each time. A lookup is two binary searches.

let main: Float64Array = new Float64Array(0);
let recent: Float64Array = new Float64Array(0);

/**
 * Where {@link fingerprint} leaves its result and {@link hasFingerprint} reads it: a double
 * returned or passed across a call that is not inlined is boxed, one heap object per window
 * scanned; a typed array slot is not.
 */
const scratch = new Float64Array(1);

/** The 53-bit fingerprint of the WINDOW code units at `at` (two murmur3-style 32-bit hashes, 21 + 32 bits) into `scratch[0]`. */
function fingerprint(text: string, at: number): void {
  let a = 0x9747b28c;
  let b = 0x5bd1e995;
  for (let i = at; i < at + WINDOW; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0xcc9e2d51);
    a = (a << 15) | (a >>> 17);
    b = Math.imul(b ^ c, 0x1b873593);
    b = (b << 13) | (b >>> 19);
  }
  a ^= a >>> 16;
  a = Math.imul(a, 0x85ebca6b);
  a ^= a >>> 13;
  b ^= b >>> 15;
  b = Math.imul(b, 0xc2b2ae35);
  b ^= b >>> 16;
  scratch[0] = (a >>> 11) * 0x1_0000_0000 + (b >>> 0);
}

/** Whether `sorted` holds the fingerprint in `scratch[0]`. */
function hasFingerprint(sorted: Float64Array): boolean {
  const x = scratch[0]!;
  let lo = 0;
  let hi = sorted.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const v = sorted[mid]!;
    if (v === x) return true;
    if (v < x) lo = mid + 1;
    else hi = mid - 1;
  }
  return false;
}

/** The sorted, de-duplicated windows of `list`. */
function windowsOf(list: readonly string[]): Float64Array {
  let count = 0;
  for (const v of list) if (v.length >= WINDOW) count += v.length - WINDOW + 1;
  const out = new Float64Array(count);
  let n = 0;
  for (const v of list) {
    for (let i = 0; i + WINDOW <= v.length; i++) {
      fingerprint(v, i);
      out[n++] = scratch[0]!;
    }
  }
  out.sort();
  return unique(out);
}

function unique(sorted: Float64Array): Float64Array {
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[n - 1]) sorted[n++] = sorted[i]!;
  return n === sorted.length ? sorted : sorted.slice(0, n);
}

/** Two sorted arrays as one, without duplicates. */
function merge(x: Float64Array, y: Float64Array): Float64Array {
  if (x.length === 0) return y;
  if (y.length === 0) return x;
  const out = new Float64Array(x.length + y.length);
  let i = 0;
  let j = 0;
  let n = 0;
  while (i < x.length || j < y.length) {
    const v = j >= y.length || (i < x.length && x[i]! <= y[j]!) ? x[i++]! : y[j++]!;
    if (n === 0 || out[n - 1] !== v) out[n++] = v;
  }
  return n === out.length ? out : out.slice(0, n);
}

function bringUpToDate(): void {
  if (stale) {
    stale = false;
    unindexed = [];
    recent = new Float64Array(0);
    main = windowsOf([...values.keys()]);
    return;
  }
  if (unindexed.length === 0) return;
  recent = merge(recent, windowsOf(unindexed));
  unindexed = [];
  if (recent.length * 4 > main.length) {
    main = merge(main, recent);
    recent = new Float64Array(0);
  }
}

const NO_HITS: ReadonlyArray<readonly [number, number]> = [];

/** Where the short values occur in `text`, in order of their start. */
function wholeMatches(text: string): Array<[number, number]> {
  const hits: Array<[number, number]> = [];
  for (const s of shortValues) {
    for (let at = text.indexOf(s); at !== -1; at = text.indexOf(s, at + 1)) hits.push([at, at + s.length]);
  }
  return hits.sort((x, y) => x[0] - y[0]);
}

/**
 * The runs of `text` covered by secret pieces, as found by {@link findSecretRuns}: run `k` is
 * `[starts[k], ends[k])`. One buffer, reused by every search (a search allocates nothing per
 * character, nor per call when no short value is registered); read it before the next search.
 */
export interface SecretRuns {
  starts: Int32Array;
  ends: Int32Array;
  count: number;
  /** Text from here on was not scanned (the output limit was reached first). */
  scannedUntil: number;
}

const found: SecretRuns = { starts: new Int32Array(16), ends: new Int32Array(16), count: 0, scannedUntil: 0 };

function openRun(at: number): void {
  if (found.count === found.starts.length) {
    const starts = new Int32Array(found.count * 2);
    const ends = new Int32Array(found.count * 2);
    starts.set(found.starts);
    ends.set(found.ends);
    found.starts = starts;
    found.ends = ends;
  }
  found.starts[found.count] = at;
  found.count += 1;
}

/**
 * Scans `text` for pieces (WINDOW or more characters) of registered values and for whole short
 * values, in order, and returns the covered runs. The scan stops once the text that would be
 * printed (a plain character counts 1, a run `marker` characters) exceeds `outputLimit`: the work
 * is proportional to what is printed, not to the length of the text.
 */
export function findSecretRuns(text: string, outputLimit = Infinity, marker = 10): SecretRuns {
  bringUpToDate();
  const shortHits = shortValues.size === 0 ? NO_HITS : wholeMatches(text);
  const windows = main.length + recent.length > 0;
  found.count = 0;
  let coveredUntil = 0;
  let open = false;
  let printed = 0;
  let h = 0;
  let i = 0;
  for (; i < text.length; i++) {
    if (windows && i + WINDOW <= text.length) {
      fingerprint(text, i);
      if (hasFingerprint(main) || hasFingerprint(recent)) coveredUntil = Math.max(coveredUntil, i + WINDOW);
    }
    while (h < shortHits.length && shortHits[h]![0] <= i) {
      coveredUntil = Math.max(coveredUntil, shortHits[h]![1]);
      h += 1;
    }
    if (i < coveredUntil) {
      if (!open) {
        openRun(i);
        open = true;
        printed += marker;
      }
      found.ends[found.count - 1] = i + 1;
    } else {
      open = false;
      printed += 1;
      if (printed > outputLimit) break;
    }
  }
  found.scannedUntil = i;
  return found;
}
