import { open, readFile, stat, unlink, utimes } from 'node:fs/promises';
import { hostname } from 'node:os';
import { LatchkeyError } from '../errors.js';
import { writeFileAtomic } from './atomic-file.js';

/**
 * A cross-process lock as a lock file created with O_EXCL. The file holds its owner's token,
 * pid and host, so a holder that died (SIGKILL, power cut) is recognised and its lock broken:
 * at once when the pid is gone on this host, otherwise once the lock has shown no sign of life
 * for `staleMs`. A live holder shows it: it touches the file (mtime) every `staleMs / 3`, so a
 * holder that is merely slow (a token endpoint taking its full timeout, then a slow fsync) is
 * never mistaken for a dead one, and its refresh token never replayed by a waiter that broke in.
 */
export interface LockFileOptions {
  /** A lock with no sign of life for this long is considered abandoned. */
  staleMs?: number;
  /** Give up waiting after this long (LK_LOCK_TIMEOUT). */
  timeoutMs?: number;
  /** Label used in error messages. */
  label?: string;
  /**
   * Stop showing signs of life after holding this long (default 5 min), so that a holder that
   * is alive but wedged blocks the others for at most `maxHoldMs + staleMs`.
   */
  maxHoldMs?: number;
}

interface LockOwner {
  owner: string;
  pid: number;
  host: string;
  at: number;
}

const HOST = hostname();

export type ReleaseLock = () => Promise<void>;

export async function acquireLockFile(path: string, options: LockFileOptions = {}): Promise<ReleaseLock> {
  const me = await acquire(path, options);
  const stopHeartbeat = heartbeat(path, me.owner, options.staleMs ?? DEFAULT_STALE_MS, options.maxHoldMs ?? DEFAULT_MAX_HOLD_MS);
  return async () => {
    await stopHeartbeat();
    await releaseIfOwner(path, me.owner);
  };
}

const DEFAULT_STALE_MS = 30_000;
const DEFAULT_MAX_HOLD_MS = 300_000;

/** Touches the lock file every staleMs/3 while it is ours; resolves the returned stop once no touch is in flight. */
function heartbeat(path: string, owner: string, staleMs: number, maxHoldMs: number): () => Promise<void> {
  const since = Date.now();
  let inFlight: Promise<void> = Promise.resolve();
  const timer = setInterval(
    () => {
      if (Date.now() - since > maxHoldMs) {
        clearInterval(timer);
        return;
      }
      inFlight = inFlight.then(() => touchIfOwner(path, owner)).catch(() => undefined);
    },
    Math.max(10, Math.floor(staleMs / 3)),
  );
  timer.unref();
  return async () => {
    clearInterval(timer);
    await inFlight;
  };
}

async function touchIfOwner(path: string, owner: string): Promise<void> {
  const current = await readOwner(path);
  if (current === undefined || current === 'gone' || current.owner !== owner) return;
  const now = new Date();
  await utimes(path, now, now);
}

/** Who holds a lock file (for messages such as "another keeper, pid 123, holds it"). */
export interface LockHolder {
  pid: number;
  host: string;
  /** When the holder took or last re-stamped the lock (ms epoch). */
  at: number;
}

/**
 * A lock held for a process's whole life (the keeper's single-instance lock). Staleness is
 * judged by age as well as by pid, so the holder re-stamps it with {@link HeldLock.refresh}
 * well within `staleMs`; a refresh that finds the lock taken by someone else reports it lost.
 */
export interface HeldLock {
  release(): Promise<void>;
  /** Re-stamps the lock's time; false when the lock is no longer ours. */
  refresh(): Promise<boolean>;
}

export async function acquireHeldLockFile(path: string, options: LockFileOptions = {}): Promise<HeldLock> {
  const me = await acquire(path, options);
  return {
    release: () => releaseIfOwner(path, me.owner),
    async refresh() {
      const current = await readOwner(path).catch(() => undefined);
      if (!current || current === 'gone' || current.owner !== me.owner) return false;
      me.at = Date.now();
      // Renamed over the old file: the lock never disappears while it is re-stamped.
      await writeFileAtomic(path, JSON.stringify(me));
      return true;
    },
  };
}

/** The current holder of a lock file, or undefined when it is free (or unreadable). */
export async function readLockHolder(path: string): Promise<LockHolder | undefined> {
  const o = await readOwner(path).catch(() => undefined);
  return o && o !== 'gone' ? { pid: o.pid, host: o.host, at: o.at } : undefined;
}

async function acquire(path: string, options: LockFileOptions): Promise<LockOwner> {
  const staleMs = options.staleMs ?? DEFAULT_STALE_MS;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const me: LockOwner = { owner: await ownerToken(), pid: process.pid, host: HOST, at: Date.now() };
  let delay = 2;
  for (;;) {
    me.at = Date.now();
    if (await tryCreate(path, me)) return me;
    const observed = await readOwner(path);
    if (observed !== 'gone' && (await isStale(path, observed, staleMs))) {
      await breakStaleLock(path, observed, staleMs);
      continue;
    }
    if (observed === 'gone') continue;
    if (Date.now() >= deadline) {
      throw new LatchkeyError('LK_LOCK_TIMEOUT', `timed out after ${timeoutMs} ms waiting for the lock ${options.label ?? path}`);
    }
    await sleep(delay + Math.random() * delay);
    delay = Math.min(delay * 2, 50);
  }
}

/** A fresh owner token. node:crypto is loaded on the first lock, not at start-up: readers never lock. */
async function ownerToken(): Promise<string> {
  const { randomUUID } = await import('node:crypto');
  return randomUUID();
}

async function tryCreate(path: string, me: LockOwner): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await fh.writeFile(JSON.stringify(me));
  } finally {
    await fh.close();
  }
  return true;
}

/** `undefined` = exists but unreadable/empty (a holder between create and write); 'gone' = no file. */
async function readOwner(path: string): Promise<LockOwner | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as LockOwner;
    if (typeof parsed.owner === 'string' && typeof parsed.pid === 'number' && typeof parsed.at === 'number') return parsed;
  } catch {
    // fall through: treat as unknown owner, judged by age
  }
  return undefined;
}

async function isStale(path: string, owner: LockOwner | undefined, staleMs: number): Promise<boolean> {
  if (owner && owner.host === HOST && owner.pid !== process.pid && !pidAlive(owner.pid)) return true;
  // The last sign of life: when it was taken (or re-stamped), or its holder's last touch.
  let mtimeMs: number;
  try {
    mtimeMs = (await stat(path)).mtimeMs;
  } catch {
    return false;
  }
  return Date.now() - Math.max(owner?.at ?? 0, mtimeMs) > staleMs;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Two waiters may both judge the same lock stale; only one may remove it, and neither may
 * remove a *new* lock taken meanwhile. A short-lived guard file serialises the breakers, and
 * the owner token is checked again under it.
 */
async function breakStaleLock(path: string, observed: LockOwner | undefined, staleMs: number): Promise<void> {
  const guard = `${path}.break`;
  const guardOwner: LockOwner = { owner: await ownerToken(), pid: process.pid, host: HOST, at: Date.now() };
  if (!(await tryCreate(guard, guardOwner))) {
    const g = await readOwner(guard);
    if (g !== 'gone' && (await isStale(guard, g, 5_000))) await unlink(guard).catch(() => undefined);
    await sleep(2 + Math.random() * 5);
    return;
  }
  try {
    const now = await readOwner(path);
    if (now === 'gone') return;
    const same = observed === undefined ? now === undefined : now !== undefined && now.owner === observed.owner;
    // Judged again under the guard: the holder may have shown a sign of life meanwhile.
    if (same && (await isStale(path, now, staleMs))) await unlink(path).catch(() => undefined);
  } finally {
    await releaseIfOwner(guard, guardOwner.owner);
  }
}

async function releaseIfOwner(path: string, owner: string): Promise<void> {
  const current = await readOwner(path).catch(() => undefined);
  if (current && current !== 'gone' && current.owner === owner) {
    await unlink(path).catch(() => undefined);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
