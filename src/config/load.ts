import { readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LatchkeyError } from '../errors.js';
import { applyPreset, getPreset } from './presets.js';
import type { MethodName } from './constants.js';
import type { ConfigFile, SourceConfig } from './schema.js';

/** A source after presets are applied and its method order is settled. */
export interface ResolvedSource extends SourceConfig {
  name: string;
  methods: MethodName[];
}

export interface Config {
  /** The file it came from (named in every message). */
  file: string;
  raw: ConfigFile;
  sources: Map<string, ResolvedSource>;
}

export function emptyConfigFile(): ConfigFile {
  return { version: 1, sources: {} };
}

/** Reads and validates `config.json`; a missing file is an error that says to run `latchkey init`. */
export async function loadConfig(file: string, options: { allowMissing?: boolean } = {}): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      if (options.allowMissing) return resolveConfig(emptyConfigFile(), file);
      throw new LatchkeyError('LK_CONFIG_MISSING', `no config at ${file}. Run \`latchkey init\` (or set LATCHKEY_HOME to the profile you meant)`);
    }
    throw new LatchkeyError('LK_CONFIG_INVALID', `cannot read the config ${file}: ${code ?? String(err)}`);
  }
  return parseConfig(text, file);
}

/**
 * Validates config text against the schema. The validator is loaded only when the text differs
 * from the last text that passed (kept beside the config with the schema version: comparing
 * the text itself needs no hashing, and node:crypto alone costs `latchkey token` a few ms to
 * load), so `latchkey token` does not pay for it on every run. The config holds references,
 * never secrets, and the stamp is 0600 like the config.
 */
export async function parseConfig(text: string, file: string, options: { useStamp?: boolean } = {}): Promise<Config> {
  const digest = `${SCHEMA_STAMP_VERSION}\n${text}`;
  const stampFile = join(dirname(file), '.config-validated');
  if (options.useStamp !== false) {
    const stamp = await readFile(stampFile, 'utf8').catch(() => '');
    if (stamp === digest) return resolveConfig(JSON.parse(text) as ConfigFile, file);
  }
  const { validateConfigText } = await import('./validate.js');
  const raw = validateConfigText(text, file);
  const config = resolveConfig(raw, file);
  if (options.useStamp !== false) await writeFile(stampFile, digest, { mode: 0o600 }).catch(() => undefined);
  return config;
}

/** Bump when the schema changes, so old stamps stop vouching for texts the new schema rejects. */
const SCHEMA_STAMP_VERSION = 'v2';

export function resolveConfig(raw: ConfigFile, file: string): Config {
  const sources = new Map<string, ResolvedSource>();
  for (const [name, src] of Object.entries(raw.sources ?? {})) {
    sources.set(name, resolveSource(name, src, file));
  }
  return { file, raw, sources };
}

function resolveSource(name: string, src: SourceConfig, file: string): ResolvedSource {
  let merged: SourceConfig = src;
  if (src.preset) {
    const preset = getPreset(src.preset);
    if (!preset) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `${file}: sources.${name}.preset: unknown preset "${src.preset}" (see \`latchkey add --help\`)`);
    }
    merged = applyPreset(preset, src);
  }
  const configured: MethodName[] = [];
  if (merged.token) configured.push('token');
  if (merged.oauth) configured.push('oauth');
  if (merged.session) configured.push('session');
  const methods = src.methods ?? merged.methods?.filter((m) => configured.includes(m)) ?? configured;
  for (const m of methods) {
    if (!merged[m]) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `${file}: sources.${name}.methods lists "${m}" but sources.${name}.${m} is not configured`);
    }
  }
  if (merged.oauth && !merged.oauth.tokenEndpoint && !merged.oauth.issuer) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `${file}: sources.${name}.oauth needs "tokenEndpoint" or "issuer"`);
  }
  if (merged.session) checkSession(merged.session, `${file}: sources.${name}.session`);
  return { ...merged, name, methods };
}

/** Session rules that need the preset applied first (the schema sees only the source's own keys). */
function checkSession(session: NonNullable<SourceConfig['session']>, at: string): void {
  if (!session.origin) throw new LatchkeyError('LK_CONFIG_INVALID', `${at} needs "origin" (the site whose cookies are used)`);
  if ((session.csrfCookie === undefined) !== (session.csrfHeader === undefined)) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `${at}: set "csrfCookie" and "csrfHeader" together`);
  }
  if (session.renewUrl && new URL(session.renewUrl).hostname !== new URL(session.origin).hostname) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `${at}.renewUrl must be on the host of "origin" (the session cookies are sent to it)`);
  }
}

export function getSource(config: Config, name: string): ResolvedSource {
  const src = config.sources.get(name);
  if (!src) {
    const known = [...config.sources.keys()];
    throw new LatchkeyError(
      'LK_UNKNOWN_SOURCE',
      `unknown source "${name}" in ${config.file}${known.length ? ` (known: ${known.join(', ')})` : ' (no sources yet: `latchkey add`)'}`,
    );
  }
  return src;
}
