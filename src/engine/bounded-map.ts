/** The default bound of the engine's per-key maps: as many sources as the store is sized for. */
export const DEFAULT_MAP_BOUND = 10_000;

/**
 * A Map that holds at most `bound` entries: setting a new key beyond it drops the oldest
 * (insertion order; setting a key again moves it to the end, so an entry refreshed or reused
 * through `set` is the last to go). `get` and `has` are the plain Map's, untouched: the engine's
 * hot path (`lk.token()`: one `get`, one clock read) costs what it did without a bound.
 */
export class BoundedMap<K, V> extends Map<K, V> {
  readonly bound: number;

  constructor(bound: number) {
    super();
    if (!Number.isInteger(bound) || bound < 1) throw new RangeError(`a map bound must be a positive integer (got ${bound})`);
    this.bound = bound;
  }

  override set(key: K, value: V): this {
    if (super.has(key)) super.delete(key);
    else if (this.size >= this.bound) {
      // The first key in iteration order is the oldest.
      const oldest = this.keys().next();
      if (!oldest.done) super.delete(oldest.value);
    }
    return super.set(key, value);
  }
}
