import { Secret } from '../core/secret.js';
import { MAX_SECRET_FILE_BYTES } from '../store/regular-file.js';
import { readRegularFileSync } from '../store/read-file-sync.js';
import { plainSecretValue } from './secret-value.js';

/**
 * The values behind the config's `env:` and `file:` secret references, as `Secret`s held for
 * the lifetime of a Latchkey: text from elsewhere is redacted of every secret the profile
 * holds (src/sanitize.ts), even in a process that never used that one (`latchkey logout api`
 * meeting a revocation endpoint that echoes the PAT of another source). `keyring:` values are
 * known once a method resolves them: reading them all up front would cost a D-Bus round trip
 * (or an unlock prompt) per command. A reference that does not resolve is skipped here; the
 * method that needs it reports it.
 */
export function holdProfileSecrets(rawConfig: unknown, env: NodeJS.ProcessEnv): Secret[] {
  const held: Secret[] = [];
  for (const ref of secretRefsIn(rawConfig)) {
    let value: string | undefined;
    try {
      value = plainSecretValue(ref, env, readSecretFile);
    } catch {
      continue;
    }
    if (value !== undefined) held.push(new Secret(value));
  }
  return held;
}

const readSecretFile = (path: string): string => readRegularFileSync(path, { maxBytes: MAX_SECRET_FILE_BYTES }).text;

/** Every string in the config that is an `env:` or `file:` reference, wherever it sits. */
function secretRefsIn(value: unknown, out = new Set<string>()): Set<string> {
  if (typeof value === 'string') {
    if (/^(env|file):./.test(value)) out.add(value);
  } else if (Array.isArray(value)) {
    for (const v of value) secretRefsIn(v, out);
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) secretRefsIn(v, out);
  }
  return out;
}
