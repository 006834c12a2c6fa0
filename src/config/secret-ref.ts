import { LatchkeyError } from '../core/errors.js';
import { secretRefProblem } from './constants.js';
import { readRegularFile } from '../store/read-file.js';
import { MAX_SECRET_FILE_BYTES, readFailure } from '../store/regular-file.js';
import { Secret } from '../core/secret.js';
import { envSecretValue, fileSecretValue } from './secret-value.js';

/**
 * Resolves a secret reference: `env:NAME`, `file:/path`, `keyring:service/account`.
 * Messages name the reference, never the value.
 */
/** The exact step that puts a new value behind a reference. */
export function fixForSecretRef(ref: string): string {
  if (ref.startsWith('env:')) return `export ${ref.slice(4)}=<the new value>   (in the environment that runs latchkey; or switch to a keyring: reference)`;
  return `latchkey secrets set ${ref}`;
}

export async function resolveSecretRef(ref: string, env: NodeJS.ProcessEnv = process.env): Promise<Secret> {
  if (ref.startsWith('env:')) {
    const name = ref.slice(4);
    const value = envSecretValue(name, env);
    if (value === undefined) {
      throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: environment variable ${name} is not set`, { operatorAction: 'replace_token', fix: fixForSecretRef(ref) });
    }
    return new Secret(value);
  }
  if (ref.startsWith('file:')) {
    const path = ref.slice(5);
    // A relative path would resolve against whatever directory the caller runs in (a cron job's is not yours).
    const problem = secretRefProblem(ref);
    if (problem) throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: ${problem}`, { operatorAction: 'fix_config' });
    let text: string;
    try {
      // A regular file of bounded size: a FIFO must not hang the caller, /dev/zero must not eat memory.
      ({ text } = await readRegularFile(path, { maxBytes: MAX_SECRET_FILE_BYTES }));
    } catch (err) {
      throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: cannot read ${path} (${readFailure(err)})`, {
        operatorAction: 'replace_token',
        fix: fixForSecretRef(ref),
      });
    }
    const value = fileSecretValue(text);
    if (value === undefined) throw new LatchkeyError('LK_SECRET_UNRESOLVED', `secret reference ${ref}: ${path} is empty`, { operatorAction: 'replace_token', fix: fixForSecretRef(ref) });
    return new Secret(value);
  }
  if (ref.startsWith('keyring:')) {
    const { readKeyringSecret } = await import('./keyring.js');
    return readKeyringSecret(ref, { env });
  }
  throw new LatchkeyError('LK_SECRET_UNRESOLVED', `"${redactRef(ref)}" is not a secret reference (env:NAME, file:/path, keyring:service/account)`);
}

/** For messages about a value that should have been a reference: never echo it whole. */
function redactRef(value: string): string {
  return value.length <= 4 ? '****' : `${value.slice(0, 2)}…(${value.length} chars)`;
}
