/**
 * Every secret value this process holds, indexed so that text from elsewhere can be searched
 * for any piece of one. `Secret` registers its value when it is created (from the store, the
 * config, a keyring, a token response, a cookie jar); nothing is threaded through call sites,
 * and `lk.token()`'s memo path creates no `Secret`, so it does no work here.
 *
 * The index holds one 64-bit fingerprint per {@link WINDOW}-character window of each distinct
 * value (two 32-bit hashes in a flat open-addressing table, ~13 bytes per secret character),
 * built lazily on the first search after values were added: a process that never meets
 * upstream text never builds it. A real piece always matches (same characters, same
 * fingerprint); a 64-bit collision could only over-redact eight ordinary characters.
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
/** Long values registered since the table was last brought up to date. */
let unindexed: string[] = [];
/** Values shorter than WINDOW, matched whole. */
const shortValues = new Set<string>();
let generation = 0;
let sweepAt = MIN_SWEEP_AT;
/** A sweep removed values: the table must be rebuilt before the next search. */
let stale = false;

/** Called by the `Secret` constructor. Cheap: one map lookup, an allocation only for a value not seen before. */
export function registerSecret(holder: Holder, value: string): void {
  if (value.length < MIN_WHOLE) return;
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

// --- the window table ---------------------------------------------------------------------

let table = new Uint32Array(2 * 1024);
let mask = 1023;
let used = 0;

/** Two independent 32-bit hashes of the WINDOW code units at `at` (murmur3-style mixing). */
function fingerprint(text: string, at: number, out: Uint32Array): void {
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
  // 0 in the first word marks an empty slot.
  out[0] = (a | 1) >>> 0;
  out[1] = b >>> 0;
}

const fp = new Uint32Array(2);

function insert(a: number, b: number): void {
  let slot = b & mask;
  for (;;) {
    const at = slot * 2;
    if (table[at] === 0) {
      table[at] = a;
      table[at + 1] = b;
      used += 1;
      return;
    }
    if (table[at] === a && table[at + 1] === b) return;
    slot = (slot + 1) & mask;
  }
}

function contains(a: number, b: number): boolean {
  let slot = b & mask;
  for (;;) {
    const at = slot * 2;
    const x = table[at];
    if (x === 0) return false;
    if (x === a && table[at + 1] === b) return true;
    slot = (slot + 1) & mask;
  }
}

function resize(slots: number): void {
  const old = table;
  table = new Uint32Array(2 * slots);
  mask = slots - 1;
  used = 0;
  for (let at = 0; at < old.length; at += 2) if (old[at] !== 0) insert(old[at]!, old[at + 1]!);
}

function addWindows(value: string): void {
  for (let i = 0; i + WINDOW <= value.length; i++) {
    // Load factor at most 0.6 keeps linear probing short.
    if ((used + 1) * 5 > (mask + 1) * 3) resize((mask + 1) * 2);
    fingerprint(value, i, fp);
    insert(fp[0]!, fp[1]!);
  }
}

function bringUpToDate(): void {
  if (stale) {
    stale = false;
    unindexed = [];
    let chars = 0;
    for (const v of values.keys()) if (v.length >= WINDOW) chars += v.length;
    let slots = 1024;
    while (slots * 3 < chars * 5) slots *= 2;
    table = new Uint32Array(2 * slots);
    mask = slots - 1;
    used = 0;
    for (const v of values.keys()) if (v.length >= WINDOW) addWindows(v);
    return;
  }
  for (const v of unindexed) addWindows(v);
  unindexed = [];
}

/**
 * Streams over `text` and tells, for each position in order, whether it lies inside a piece
 * (WINDOW or more characters) of a registered value or a whole short value. `visit` returns
 * false to stop early (the caller has all the text it will print): the work is proportional to
 * what is read, not to the length of the text.
 */
export function scanSecretPieces(text: string, visit: (index: number, covered: boolean) => boolean): void {
  bringUpToDate();
  const shortHits: Array<[number, number]> = [];
  for (const s of shortValues) {
    for (let at = text.indexOf(s); at !== -1; at = text.indexOf(s, at + 1)) shortHits.push([at, at + s.length]);
  }
  shortHits.sort((x, y) => x[0] - y[0]);
  const windows = used > 0;
  let coveredUntil = 0;
  let h = 0;
  for (let i = 0; i < text.length; i++) {
    if (windows && i + WINDOW <= text.length) {
      fingerprint(text, i, fp);
      if (contains(fp[0]!, fp[1]!)) coveredUntil = Math.max(coveredUntil, i + WINDOW);
    }
    while (h < shortHits.length && shortHits[h]![0] <= i) {
      coveredUntil = Math.max(coveredUntil, shortHits[h]![1]);
      h += 1;
    }
    if (!visit(i, i < coveredUntil)) return;
  }
}
