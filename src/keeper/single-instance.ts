/**
 * The keeper's single-instance lock is the file store's leader lock (store contract v2); it
 * lives in src/store/leader-lock.ts. Re-exported here so the keeper's imports stay as they were.
 */
export { acquireKeeperLock, describeHolder, HEARTBEAT_MS, STALE_MS, type KeeperLock, type KeeperLockOptions } from '../store/leader-lock.js';
