import { dirname, join } from 'node:path';
import { jsonWithoutComments } from './jsonc.js';
import { resolveConfig, type Config } from './resolve.js';
import type { ConfigFile } from './schema.js';

/**
 * The config validation stamp: `.config-validated` beside the config holds the schema version
 * and the last config text that passed validation. While the config text is unchanged, the
 * validator (valibot) is not loaded: comparing the text itself needs no hashing (node:crypto
 * alone costs `latchkey token` a few ms to load). The config holds references, never secrets,
 * and the stamp is 0600 like the config.
 */

/** Bump when validation tightens, so old stamps stop vouching for texts it now rejects (v3: arrays read as objects). */
const SCHEMA_STAMP_VERSION = 'v3';

/** Where the stamp of `configFile` lives. */
export function stampPathFor(configFile: string): string {
  return join(dirname(configFile), '.config-validated');
}

/** The stamp that vouches for `configText` (what is written after it passes validation). */
export function stampFor(configText: string): string {
  return `${SCHEMA_STAMP_VERSION}\n${configText}`;
}

/** The resolved config when `stampText` vouches for `configText`; undefined when it must be validated first. */
export function stampedConfig(configText: string, stampText: string, file: string): Config | undefined {
  if (stampText !== stampFor(configText)) return undefined;
  // Without the validator's module (the fast path must not load valibot): the same BOM and comment rules.
  return resolveConfig(JSON.parse(jsonWithoutComments(configText)) as ConfigFile, file);
}
