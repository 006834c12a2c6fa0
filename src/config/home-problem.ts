import { LatchkeyError } from '../core/errors.js';
import { homeLabel } from '../paths.js';
import { nonDirectoryOnPath } from '../store/path-blocker.js';

/**
 * Why the profile directory (LATCHKEY_HOME) cannot be one: it, or a directory above it, is a
 * file. Named by the home itself (`LATCHKEY_HOME=/x is a file, not a directory`), not by the
 * ENOTDIR of a path below it. Undefined when nothing is in the way (a missing home is fine:
 * `latchkey init` creates it). Checked only after a failure: costs nothing on the fast path.
 */
export async function homeProblem(home: string): Promise<LatchkeyError | undefined> {
  const blocker = await nonDirectoryOnPath(home);
  if (blocker === undefined) return undefined;
  const what = blocker === home ? 'is a file, not a directory' : `cannot be a directory: ${blocker} is a file`;
  return new LatchkeyError('LK_CONFIG_INVALID', `${homeLabel(home)} ${what}. Point LATCHKEY_HOME at a directory (\`latchkey init\` creates it)`, {
    fix: 'export LATCHKEY_HOME=<a directory>; latchkey init',
  });
}
