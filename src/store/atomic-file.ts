import { open, rename, unlink, mkdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LatchkeyError } from '../errors.js';
import { privateDirProblem } from './private-mode.js';

/**
 * Writes `data` to `path` so that a reader sees either the old or the new bytes, never a mix,
 * and a crash never leaves a truncated file: fresh temp file (0600) → fsync → rename over →
 * fsync the directory (so the rename itself survives a power cut).
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode = 0o600): Promise<void> {
  const dir = dirname(path);
  // node:crypto is loaded here, not at start-up: readers (`latchkey token`) never need it.
  const { randomBytes } = await import('node:crypto');
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx', mode);
  try {
    await fh.writeFile(data);
    await fh.sync();
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
    const what = code === 'EEXIST' || code === 'ENOTDIR' ? 'a file is in the way (it must be a directory)' : (code ?? String(err));
    throw new LatchkeyError('LK_STORE_IO', `cannot create the directory ${dir}: ${what}`, { cause: err });
  }
  if (process.platform === 'win32') return;
  const problem = privateDirProblem(dir, await stat(dir));
  if (problem) throw problem;
}
