import type { Store, StoreTx } from '../../src/store/store.js';

/** A lock a test holds on purpose, so that other holders (a copy, an engine, a gateway) wait for it. */
export interface HeldLock {
  /** Lets go: `atRelease` runs under the lock, then the lock is released. */
  release(): void;
  /** The holder's `withLock`, settled once the lock is released. */
  done: Promise<void>;
}

/**
 * Takes `key`'s lock in `store` and holds it until {@link HeldLock.release}; resolves once it is
 * held. `atRelease` is work done under the lock as it is let go (a write a waiter must see).
 */
export async function holdLock(store: Pick<Store, 'withLock'>, key: string, atRelease?: (tx: StoreTx) => Promise<unknown>): Promise<HeldLock> {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let held!: () => void;
  const isHeld = new Promise<void>((r) => (held = r));
  const done = store.withLock(key, async (tx) => {
    held();
    await released;
    await atRelease?.(tx);
  });
  // A lock that could not be taken ends the wait too (its error comes with `done`).
  await Promise.race([isHeld, done]);
  return { release, done };
}
