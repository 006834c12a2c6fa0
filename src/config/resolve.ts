import { LatchkeyError } from '../core/errors.js';
import { didYouMean } from '../text/closest-name.js';
import { applyPreset, getPreset } from './presets.js';
import type { MethodName } from './constants.js';
import type { ConfigFile, SourceConfig } from './schema.js';

/**
 * A parsed config made usable: presets applied, each source's method order settled. Pure (no
 * I/O, no validator), so the CLI's synchronous fast path (src/cli/fast-path.ts) resolves a
 * config exactly as `loadConfig` does.
 */

/** A source after presets are applied and its method order is settled. */
export interface ResolvedSource extends SourceConfig {
  name: string;
  methods: MethodName[];
}

/** A loaded and validated config: its file, its raw JSON and every source resolved (presets applied). */
export interface Config {
  /** The file it came from (named in every message). */
  file: string;
  raw: ConfigFile;
  sources: Map<string, ResolvedSource>;
}

export function emptyConfigFile(): ConfigFile {
  return { version: 1, sources: {} };
}

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
      `unknown source "${name}" in ${config.file}${didYouMean(name, known)}${known.length ? ` (known: ${known.join(', ')})` : ' (no sources yet: `latchkey add`)'}`,
    );
  }
  return src;
}

/**
 * The method `lk.token(source)` hands out: the first of the source's methods that is a bearer
 * credential (`token` or `oauth`); undefined for a session-only source.
 */
export function bearerMethod(src: ResolvedSource): 'token' | 'oauth' | undefined {
  return src.methods.find((m): m is 'token' | 'oauth' => m === 'token' || m === 'oauth');
}
