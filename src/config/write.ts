import { LatchkeyError } from '../core/errors.js';
import { ensurePrivateDir, writeFileAtomic } from '../store/atomic-file.js';
import { readFailure } from '../store/regular-file.js';
import { parseConfig, readConfigText, type Config } from './load.js';
import { hasJsonComments } from './jsonc.js';
import type { ConfigFile } from './schema.js';
import { dirname } from 'node:path';

/** Said when a rewrite of config.json could not keep its comments. */
export const COMMENTS_DROPPED = 'note: config.json was rewritten as plain JSON; the comments it had were not kept\n';

/**
 * Read-modify-write of config.json. The current file must parse (a broken file is reported
 * and left alone, never replaced by a fresh one), and the result is validated before it is
 * written atomically. The file is rewritten as plain JSON: comments in it are not kept
 * (`droppedComments` says so, for the caller to tell the operator).
 */
export async function updateConfigFile(file: string, change: (raw: ConfigFile) => ConfigFile | void): Promise<{ config: Config; droppedComments: boolean }> {
  let text: string | undefined;
  try {
    text = await readConfigText(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new LatchkeyError('LK_CONFIG_INVALID', `cannot read the config ${file}: ${readFailure(err)}`);
    }
    throw new LatchkeyError('LK_CONFIG_MISSING', `no config at ${file}. Run \`latchkey init\` first`);
  }
  const current = await parseConfig(text, file);
  const raw = structuredClone(current.raw);
  const next = change(raw) ?? raw;
  const serialized = `${JSON.stringify(next, null, 2)}\n`;
  const validated = await parseConfig(serialized, file, { useStamp: false });
  await ensurePrivateDir(dirname(file));
  await writeFileAtomic(file, serialized, 0o600);
  return { config: validated, droppedComments: hasJsonComments(text) };
}
