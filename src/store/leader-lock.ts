import { dirname } from 'node:path';
import { ExitCode, LatchkeyError } from '../core/errors.js';
import { ensurePrivateDir } from './atomic-file.js';
import { acquireHeldLockFile, describeLockHolder, readLockHolder, type HeldLock, type LockHolder } from './lock-file.js';
import type { LeaderLock, LeaderLockOptions } from './store.js';

/**
 * The file store's {@link LeaderLock} (store contract v2): one keeper per `LATCHKEY_HOME`: two keepers probing the same sources would double every
 * refresh-ahead and every alert. The keeper holds `locks/keeper.lock` for its whole life and
 * re-stamps it every {@link HEARTBEAT_MS}, so a live keeper is never judged stale, while a
 * keeper that died (SIGKILL, power cut) is replaced at once on this host (its pid is gone) or
 * after {@link STALE_MS} elsewhere (a shared home on a network filesystem).
 */
export const STALE_MS = 60_000;
export const HEARTBEAT_MS = 15_000;

/** Options of the keeper lock: the store contract's leader-lock options. */
export type KeeperLockOptions = LeaderLockOptions;

/** The keeper lock as held: the store contract's {@link LeaderLock}. */
export type KeeperLock = LeaderLock;

/** Describes a holder for a message: "pid 4242 on this host, since 12:00:01". */
export function describeHolder(h: LockHolder | undefined): string {
  return describeLockHolder(h);
}

/**
 * Takes the keeper lock. Without `standby` a held lock is refused at once with LK_KEEPER
 * (exit 1) naming the holder; with it, waits (saying so once) until the holder goes away.
 */
export async function acquireKeeperLock(path: string, options: KeeperLockOptions = {}): Promise<KeeperLock> {
  return acquireFileLeaderLock(path, options);
}

/** {@link acquireKeeperLock} under the store contract's name. */
export async function acquireFileLeaderLock(path: string, options: LeaderLockOptions = {}): Promise<LeaderLock> {
  await ensurePrivateDir(dirname(path));
  const staleMs = options.staleMs ?? STALE_MS;
  let announced = false;
  let held: HeldLock | undefined;
  // Shared by every attempt: a lock stamped in the future goes stale staleMs after we first saw it.
  const firstSeen = new Map<string, number>();
  for (;;) {
    if (options.signal?.aborted) throw new LatchkeyError('LK_KEEPER', 'stopped while standing by for the keeper lock', { exitCode: ExitCode.ok });
    try {
      held = await acquireHeldLockFile(path, { staleMs, timeoutMs: options.standby ? 1_000 : 250, label: path, firstSeen });
      break;
    } catch (err) {
      if (!(err instanceof LatchkeyError) || err.code !== 'LK_LOCK_TIMEOUT') throw err;
      const holder = await readLockHolder(path);
      if (!options.standby) {
        throw new LatchkeyError(
          'LK_KEEPER',
          `another keeper is already running for this LATCHKEY_HOME (${describeHolder(holder)}; lock ${path}). ` +
            'Only one keeper may probe a profile. Stop the other one, or run this one with --standby to take over when it stops.',
          { exitCode: ExitCode.usage, fix: 'latchkey service status   (or: kill the other keeper)' },
        );
      }
      if (!announced) {
        announced = true;
        options.onStandby?.(holder);
      }
    }
  }
  const lock = held;
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  let lost = false;
  let beating: Promise<void> | undefined;
  const timer = setInterval(() => {
    if (lost || beating) return;
    beating = lock
      .refresh()
      .then(async (ours) => {
        if (ours) return;
        lost = true;
        clearInterval(timer);
        options.onLost?.(await readLockHolder(path));
      })
      .catch((err: unknown) => options.onHeartbeatError?.(err))
      .finally(() => {
        beating = undefined;
      });
  }, heartbeatMs);
  timer.unref();
  return {
    path,
    async release() {
      clearInterval(timer);
      await beating;
      if (!lost) await lock.release();
    },
  };
}
