import { link, open, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { LatchkeyError } from '../core/errors.js';
import { abortableWait } from '../core/wait.js';
import { tempPathFor, writeFileAtomic } from './atomic-file.js';
import { pidAlive } from './pid-alive.js';
import { readRegularFile } from './read-file.js';
import { FileReadError } from './regular-file.js';

/**
 * A cross-process lock as a lock file that appears whole: the owner's token, pid and host are
 * written to a temp file first, which is then hard-linked to the lock path (link(2) fails with
 * EEXIST when the lock is taken, like O_EXCL). So a holder that died (SIGKILL, power cut) is
 * recognised and its lock broken: at once when the pid is gone on this host, otherwise once the
 * lock has shown no sign of life for `staleMs`. A live holder shows it: it touches the file
 * (mtime) every `staleMs / 3`, so a holder that is merely slow (a token endpoint taking its full
 * timeout, then a slow fsync) is never mistaken for a dead one, and its refresh token never
 * replayed by a waiter that broke in.
 *
 * A lock file that is empty or does not parse cannot come from a live holder of this version (it
 * never exists half-written); it is left by an older version killed between create and write, or
 * by a crash before the data reached the disk. It is broken once its mtime is `createGraceMs` old:
 * the time a live creator of the older kind needs to write its name.
 *
 * A sign of life stamped in the future (another host's clock, or ours set back) cannot be aged
 * from the clock; it is aged from when this waiter first saw it unchanged, so such a lock goes
 * stale after `staleMs` like any other, while a holder that keeps touching it keeps it.
 */
export interface LockFileOptions {
  /** A lock with no sign of life for this long is considered abandoned. */
  staleMs?: number;
  /** Give up waiting after this long (LK_LOCK_TIMEOUT). */
  timeoutMs?: number;
  /** Label used in error messages. */
  label?: string;
  /** Stop waiting when this aborts (LK_LOCK_TIMEOUT); a lock already had is kept. */
  signal?: AbortSignal;
  /**
   * Stop showing signs of life after holding this long (default 5 min), so that a holder that
   * is alive but wedged blocks the others for at most `maxHoldMs + staleMs`.
   */
  maxHoldMs?: number;
  /** An empty or unparsable lock file older than this (by mtime) is abandoned (default 2 s). */
  createGraceMs?: number;
  /**
   * When each future-stamped sign of life was first seen unchanged. A caller that retries
   * (the keeper standing by, one attempt a second) passes the same map to every attempt, so
   * that the count is not started afresh each time.
   */
  firstSeen?: Map<string, number>;
}

interface LockOwner {
  owner: string;
  pid: number;
  host: string;
  at: number;
}

const HOST = hostname();
/** Clocks of hosts sharing a home may differ this much before a stamp counts as "in the future". */
const CLOCK_SLACK_MS = 2_000;
const DEFAULT_CREATE_GRACE_MS = 2_000;

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
  const judge: Judgement = {
    staleMs: options.staleMs ?? DEFAULT_STALE_MS,
    graceMs: options.createGraceMs ?? DEFAULT_CREATE_GRACE_MS,
    firstSeen: options.firstSeen ?? new Map(),
  };
  const timeoutMs = options.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const me: LockOwner = { owner: await ownerToken(), pid: process.pid, host: HOST, at: Date.now() };
  let delay = 2;
  for (;;) {
    if (options.signal?.aborted) throw stoppedWaiting(path, options.label);
    me.at = Date.now();
    if (await tryCreate(path, me)) return me;
    const observed = await readOwner(path);
    if (observed === 'gone') continue;
    if (await isStale(path, observed, judge)) {
      await breakStaleLock(path, observed, judge);
      continue;
    }
    // A nameless lock file is decided within the create grace: wait that out before giving up.
    const giveUpAt = observed === undefined ? deadline + judge.graceMs : deadline;
    if (Date.now() >= giveUpAt) throw lockTimeout(path, observed, timeoutMs, options.label);
    await abortableWait(delay + Math.random() * delay, options.signal);
    delay = Math.min(delay * 2, 50);
  }
}

/** How a waiter judges staleness; `firstSeen` remembers when each sign of life was first seen unchanged. */
interface Judgement {
  staleMs: number;
  graceMs: number;
  firstSeen: Map<string, number>;
}

function lockTimeout(path: string, observed: LockOwner | undefined, timeoutMs: number, label: string | undefined): LatchkeyError {
  const what = label ? `the lock ${label} (${path})` : `the lock ${path}`;
  if (observed === undefined) {
    return new LatchkeyError(
      'LK_LOCK_TIMEOUT',
      `timed out after ${timeoutMs} ms waiting for ${what}: it holds no owner's name. If no latchkey process is running, delete ${path}`,
      { fix: `rm ${path}` },
    );
  }
  const holder = describeLockHolder(observed);
  const since = Number.isFinite(observed.at) ? `, stamped ${new Date(observed.at).toISOString()}` : '';
  const local = observed.host === HOST;
  const advice = local
    ? `If pid ${observed.pid} is a stuck latchkey, stop it (kill ${observed.pid}): its lock is then taken over at once`
    : `If pid ${observed.pid} no longer runs on ${observed.host}, delete ${path}`;
  return new LatchkeyError('LK_LOCK_TIMEOUT', `timed out after ${timeoutMs} ms waiting for ${what}, held by ${holder}${since}. ${advice}`, {
    fix: local ? `kill ${observed.pid}` : `rm ${path}   (only once pid ${observed.pid} no longer runs on ${observed.host})`,
  });
}

/** Describes a holder for a message: "pid 4242 on this host" / "pid 4242 on build-2". */
export function describeLockHolder(h: Pick<LockHolder, 'pid' | 'host'> | undefined): string {
  if (!h) return 'another process';
  return `pid ${h.pid} ${h.host === HOST ? 'on this host' : `on ${h.host}`}`;
}

/** A fresh owner token. node:crypto is loaded on the first lock, not at start-up: readers never lock. */
async function ownerToken(): Promise<string> {
  const { randomUUID } = await import('node:crypto');
  return randomUUID();
}

/**
 * Takes the lock if it is free: the owner line is written to a temp file which is then
 * hard-linked to `path`, so the lock file never exists empty. Where hard links are not
 * supported (some FUSE and FAT mounts), falls back to O_EXCL create-then-write.
 */
async function tryCreate(path: string, me: LockOwner): Promise<boolean> {
  const text = JSON.stringify(me);
  const tmp = await tempPathFor(path);
  try {
    await writeFile(tmp, text, { flag: 'wx', mode: 0o600 });
    await link(tmp, path);
    return true;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return false;
    if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS') return createExclusive(path, text);
    throw err;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

async function createExclusive(path: string, text: string): Promise<boolean> {
  let fh;
  try {
    fh = await open(path, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  try {
    await fh.writeFile(text);
  } finally {
    await fh.close();
  }
  return true;
}

/**
 * `undefined` = exists but holds no owner (empty or garbage); 'gone' = no file. Anything but a
 * regular file at the lock path (a directory, a FIFO) is an error naming the path: it would
 * otherwise block every caller, and only a person can remove it.
 */
async function readOwner(path: string): Promise<LockOwner | undefined | 'gone'> {
  let text: string;
  try {
    // Not through a symbolic link: a dangling one would look free yet never be creatable.
    text = (await readRegularFile(path, { maxBytes: 64 * 1024, noFollow: true })).text;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'gone';
    if ((err instanceof FileReadError && code === 'ENOTREG') || code === 'ELOOP') {
      const what = code === 'ELOOP' ? `${path} is a symbolic link` : (err as Error).message;
      throw new LatchkeyError('LK_STORE_IO', `${what}: a lock file must be a regular file. Nothing else may live at that path: remove it and try again`, {
        fix: (err as Error).message.includes('a directory') ? `rmdir ${path}` : `rm ${path}`,
        cause: err,
      });
    }
    if (err instanceof FileReadError) return undefined; // larger than any owner line: garbage
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as LockOwner;
    if (typeof parsed.owner === 'string' && typeof parsed.pid === 'number' && typeof parsed.at === 'number') return parsed;
  } catch {
    // fall through: no owner, judged by the create grace
  }
  return undefined;
}

async function isStale(path: string, owner: LockOwner | undefined, judge: Judgement): Promise<boolean> {
  if (owner && owner.host === HOST && owner.pid !== process.pid && !pidAlive(owner.pid)) return true;
  // The last sign of life: when it was taken (or re-stamped), or its holder's last touch.
  let st;
  try {
    st = await stat(path);
  } catch {
    return false;
  }
  const now = Date.now();
  const lastSign = Math.max(owner?.at ?? 0, st.mtimeMs);
  const limit = owner ? judge.staleMs : judge.graceMs;
  if (lastSign <= now + CLOCK_SLACK_MS) return now - lastSign > limit;
  // Stamped in the future: aged from when we first saw this very stamp (a touch or a re-stamp
  // by a live holder changes it and starts the count again).
  const key = `${st.ino}:${st.mtimeMs}:${owner?.owner ?? ''}:${owner?.at ?? ''}`;
  const seen = judge.firstSeen.get(key);
  if (seen === undefined) {
    judge.firstSeen.set(key, now);
    return false;
  }
  return now - seen > limit;
}

/**
 * Two waiters may both judge the same lock stale; only one may remove it, and neither may
 * remove a *new* lock taken meanwhile. A short-lived guard file serialises the breakers, and
 * the owner token is checked again under it.
 */
async function breakStaleLock(path: string, observed: LockOwner | undefined, judge: Judgement): Promise<void> {
  const guard = `${path}.break`;
  const guardOwner: LockOwner = { owner: await ownerToken(), pid: process.pid, host: HOST, at: Date.now() };
  if (!(await tryCreate(guard, guardOwner))) {
    const g = await readOwner(guard);
    if (g !== 'gone' && (await isStale(guard, g, { ...judge, staleMs: 5_000 }))) await unlink(guard).catch(() => undefined);
    await abortableWait(2 + Math.random() * 5);
    return;
  }
  try {
    const now = await readOwner(path);
    if (now === 'gone') return;
    const same = observed === undefined ? now === undefined : now !== undefined && now.owner === observed.owner;
    // Judged again under the guard: the holder may have shown a sign of life meanwhile.
    if (same && (await isStale(path, now, judge))) await unlink(path).catch(() => undefined);
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

function stoppedWaiting(path: string, label: string | undefined): LatchkeyError {
  return new LatchkeyError('LK_LOCK_TIMEOUT', `stopped waiting for ${label ? `the lock ${label} (${path})` : `the lock ${path}`}: the caller no longer needs it`);
}
