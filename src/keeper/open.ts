import type { Keeper, KeeperOptions } from './keeper.js';
import type { KeeperDaemon, KeeperDaemonOptions } from './daemon.js';

/**
 * Library entry points to the keeper, loaded on first use: importing `latchkey` for tokens does
 * not pay for the keeper's metrics registry, HTTP server and dashboard.
 */

/** A keeper over a profile, ready to `runCycle()`, `probeNow()` or `start()` its loop. */
export async function openKeeper(options: KeeperOptions = {}): Promise<Keeper> {
  const { Keeper: K } = await import('./keeper.js');
  return K.open(options);
}

/**
 * `latchkey keeper` in-process: single-instance lock, keeper, HTTP server and loop (or one
 * cycle with `once`). Stop it with `stop()`; `done` resolves with the exit code.
 */
export async function startKeeper(options: KeeperDaemonOptions): Promise<KeeperDaemon> {
  const { startKeeperDaemon } = await import('./daemon.js');
  return startKeeperDaemon(options);
}
