import { LatchkeyError } from '../core/errors.js';

/**
 * The permission rules for where credentials live (the store's directory and `store.json`),
 * as pure checks on a stat result: FileStore applies them after an async stat, the CLI's
 * synchronous fast path (src/cli/fast-path.ts) after a sync one, and declines to answer when
 * they fail (so the full path reports it).
 */

/** The fields of a `Stats` the checks read. */
export interface ModeStat {
  mode: number;
  uid: number;
  isDirectory(): boolean;
}

/** Why `dir` may not hold credentials (not a directory, open to other users, owned by someone else), or undefined. */
export function privateDirProblem(dir: string, st: ModeStat): LatchkeyError | undefined {
  if (process.platform === 'win32') return undefined;
  if (!st.isDirectory()) {
    return new LatchkeyError('LK_STORE_PERMISSIONS', `${dir} is not a directory`);
  }
  if ((st.mode & 0o077) !== 0) {
    return new LatchkeyError(
      'LK_STORE_PERMISSIONS',
      `${dir} is accessible to other users (mode ${(st.mode & 0o777).toString(8)}); it holds credentials. Fix: chmod 700 ${dir}`,
    );
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    return new LatchkeyError('LK_STORE_PERMISSIONS', `${dir} is owned by another user (uid ${st.uid}); refusing to use it`);
  }
  return undefined;
}

/** Why the store file `file` may not be used (readable by other users, owned by someone else), or undefined. */
export function privateFileProblem(file: string, st: Omit<ModeStat, 'isDirectory'>): LatchkeyError | undefined {
  if (process.platform === 'win32') return undefined;
  if ((st.mode & 0o077) !== 0) {
    return new LatchkeyError('LK_STORE_PERMISSIONS', `${file} is readable by other users (mode ${(st.mode & 0o777).toString(8)}). Fix: chmod 600 ${file}`);
  }
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    // Typically left by `sudo latchkey …`: rewriting it would hand the user's store to root, or fail.
    return new LatchkeyError(
      'LK_STORE_PERMISSIONS',
      `${file} is owned by another user (uid ${st.uid}, this is uid ${process.getuid()}); refusing to use it (was latchkey run with sudo?). Fix: chown it back to this user`,
    );
  }
  return undefined;
}

/** The store file is a symbolic link: refused (an atomic replace renames over the link, not its target). */
export function symlinkedStoreProblem(file: string): LatchkeyError {
  return new LatchkeyError(
    'LK_STORE_PERMISSIONS',
    `${file} is a symbolic link; refusing to use it: the store is replaced atomically (rename), which would replace the link and leave its target stale. Fix: set LATCHKEY_HOME to the directory that holds the real file`,
  );
}
