import { open, rename, unlink, mkdir, stat, readdir } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LatchkeyError } from '../core/errors.js';
import { nonDirectoryOnPath } from './path-blocker.js';
import { pidAlive } from './pid-alive.js';
import { privateDirProblem } from './private-mode.js';

/**
 * A fresh temp file name next to `path`: `.<name>.<pid>.<12 hex>.tmp`. The writer's pid is in
 * the name so that a temp file left by a killed writer can be told from a live writer's
 * ({@link removeAbandonedTempFiles}).
 */
export async function tempPathFor(path: string): Promise<string> {
  // node:crypto is loaded here, not at start-up: readers (`latchkey token`) never need it.
  const { randomBytes } = await import('node:crypto');
  return join(dirname(path), `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

const TEMP_NAME = /^\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/**
 * A temp file is abandoned when its writer is gone (pid dead on this host) and it is older than
 * this: a live write (temp → fsync → rename) takes milliseconds to seconds, and the age also
 * covers a home shared over a network filesystem, where the pid in the name may be another host's.
 */
export const ABANDONED_TEMP_AGE_MS = 60_000;

/**
 * Removes the temp files {@link writeFileAtomic} and the lock files left in `dir` when their
 * writer was killed before its rename (`.store.json.<pid>.<hex>.tmp`…): only those older than
 * `minAgeMs` whose writer pid no longer runs, never a live writer's. Best effort: returns how
 * many were removed, never throws.
 */
export async function removeAbandonedTempFiles(dir: string, minAgeMs = ABANDONED_TEMP_AGE_MS): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  const now = Date.now();
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (!m) continue;
    const pid = Number(m[2]);
    if (pid === process.pid || pidAlive(pid)) continue;
    const file = join(dir, name);
    try {
      const st = await stat(file);
      // mtime in the future (another clock): not judged by age; the pid alone is not enough.
      if (!st.isFile() || now - st.mtimeMs < minAgeMs) continue;
      await unlink(file);
      removed++;
    } catch {
      // gone meanwhile, or not ours to remove: leave it
    }
  }
  return removed;
}

/**
 * Writes `data` to `path` so that a reader sees either the old or the new bytes, never a mix,
 * and a crash never leaves a truncated file: fresh temp file (0600) → fsync → rename over →
 * fsync the directory (so the rename itself survives a power cut). `data` may come in pieces
 * (an iterable of strings or bytes, written in turn): a large document is never one string.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array | Iterable<string | Uint8Array> | AsyncIterable<string | Uint8Array>,
  mode = 0o600,
): Promise<{ dev: number; ino: number }> {
  const dir = dirname(path);
  const tmp = await tempPathFor(path);
  const fh = await open(tmp, 'wx', mode);
  let written: { dev: number; ino: number };
  try {
    if (typeof data === 'string' || data instanceof Uint8Array) await fh.writeFile(data);
    else {
      for await (const piece of data) {
        const bytes = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
        for (let at = 0; at < bytes.length; ) at += (await fh.write(bytes, at, bytes.length - at)).bytesWritten;
      }
    }
    await fh.sync();
    const st = await fh.stat();
    written = { dev: st.dev, ino: st.ino };
  } catch (err) {
    await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  await fsyncDir(dir);
  // Which file was written (the renamed inode), so a writer can tell its own file from a later one.
  return written;
}

async function fsyncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

/**
 * Creates `dir` with mode 0700 if missing, and refuses one that others can read or write:
 * the store holds refresh tokens.
 */
export async function ensurePrivateDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    // EEXIST from a recursive mkdir: something that is not a directory is in the way.
    if (code === 'EEXIST' || code === 'ENOTDIR') {
      const blocker = await nonDirectoryOnPath(dir);
      const what = blocker && blocker !== dir ? `${blocker} is a file, not a directory` : 'a file is in the way (it must be a directory)';
      throw new LatchkeyError('LK_STORE_IO', `cannot create the directory ${dir}: ${what}`, { cause: err });
    }
    const what = code === 'EACCES' || code === 'EPERM' ? `permission denied (${code}): its parent ${dirname(dir)} is not writable by this user` : (code ?? String(err));
    throw new LatchkeyError('LK_STORE_IO', `cannot create the directory ${dir}: ${what}`, { cause: err });
  }
  if (process.platform === 'win32') return;
  const problem = privateDirProblem(dir, await stat(dir));
  if (problem) throw problem;
}
