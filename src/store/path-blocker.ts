import { stat } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * Why a directory path cannot be used, found by walking up from it: the nearest component that
 * exists but is not a directory (a file where a directory must be), or undefined when every
 * existing component is a directory. Messages then name that component instead of the errno of
 * a path below it (ENOTDIR about `…/config.json/config.json`).
 */
export async function nonDirectoryOnPath(dir: string): Promise<string | undefined> {
  for (let p = dir; ; p = dirname(p)) {
    try {
      return (await stat(p)).isDirectory() ? undefined : p;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // ENOENT: missing, look further up; ENOTDIR: a component above is a file, look further up.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return undefined;
    }
    if (dirname(p) === p) return undefined;
  }
}
