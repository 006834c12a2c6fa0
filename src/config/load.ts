import { writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { LatchkeyError } from '../core/errors.js';
import { homeProblem } from './home-problem.js';
import { readRegularFile } from '../store/read-file.js';
import { readFailure } from '../store/regular-file.js';
import { emptyConfigFile, resolveConfig, type Config } from './resolve.js';
import { stampedConfig, stampFor, stampPathFor } from './stamp.js';

export { bearerMethod, emptyConfigFile, getSource, resolveConfig, type Config, type ResolvedSource } from './resolve.js';

/** Reads and validates `config.json`; a missing file is an error that says to run `latchkey init`. */
export async function loadConfig(file: string, options: { allowMissing?: boolean } = {}): Promise<Config> {
  let text: string;
  try {
    text = await readConfigText(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOTDIR' || code === 'ENOENT') {
      // The config's directory is the profile (LATCHKEY_HOME): name it, not a path below a file.
      const problem = await homeProblem(dirname(file));
      if (problem) throw problem;
    }
    if (code === 'ENOENT') {
      if (options.allowMissing) return resolveConfig(emptyConfigFile(), file);
      throw new LatchkeyError('LK_CONFIG_MISSING', `no config at ${file}. Run \`latchkey init\` (or set LATCHKEY_HOME to the profile you meant)`);
    }
    throw new LatchkeyError('LK_CONFIG_INVALID', `cannot read the config ${file}: ${readFailure(err)}`);
  }
  return parseConfig(text, file);
}

/** The config's text: a regular file only (a FIFO must not hang), at most 16 MiB. */
export async function readConfigText(file: string): Promise<string> {
  return (await readRegularFile(file, { maxBytes: 16 * 1024 * 1024 })).text;
}

/**
 * Validates config text against the schema. The validator is loaded only when the text differs
 * from the last text that passed (the stamp, src/config/stamp.ts), so `latchkey token` does not
 * pay for it on every run.
 */
export async function parseConfig(text: string, file: string, options: { useStamp?: boolean } = {}): Promise<Config> {
  const stampFile = stampPathFor(file);
  if (options.useStamp !== false) {
    const stamped = stampedConfig(text, await readConfigText(stampFile).catch(() => ''), file);
    if (stamped) return stamped;
  }
  const { validateConfigText } = await import('./validate.js');
  const raw = validateConfigText(text, file);
  const config = resolveConfig(raw, file);
  if (options.useStamp !== false) await writeFile(stampFile, stampFor(text), { mode: 0o600 }).catch(() => undefined);
  return config;
}
