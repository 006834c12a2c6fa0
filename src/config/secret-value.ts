/**
 * What an `env:` or `file:` secret reference yields, as pure functions: resolveSecretRef
 * (src/config/secret-ref.ts) and the CLI's synchronous fast path (src/cli/fast-path.ts) apply
 * the same rules. Undefined means "no value" (resolveSecretRef turns that into its error).
 */

/** The value of `env:NAME`: undefined when the variable is unset or empty. */
export function envSecretValue(name: string, env: NodeJS.ProcessEnv): string | undefined {
  const value = env[name];
  return value === undefined || value === '' ? undefined : value;
}

/** The value of a `file:` reference from the file's text: one trailing newline dropped; undefined when empty. */
export function fileSecretValue(text: string): string | undefined {
  const value = text.replace(/\r?\n$/, '');
  return value === '' ? undefined : value;
}

/**
 * For a synchronous caller: the value behind an `env:` or `file:` reference (the file read with
 * `readText`, which must apply resolveSecretRef's file rules: a regular file of at most
 * MAX_SECRET_FILE_BYTES), with resolveSecretRef's rules; undefined when there is none, or for
 * any other kind of reference (`keyring:` needs the native keyring module).
 */
export function plainSecretValue(ref: string, env: NodeJS.ProcessEnv, readText: (path: string) => string): string | undefined {
  if (ref.startsWith('env:')) return envSecretValue(ref.slice(4), env);
  if (ref.startsWith('file:')) return fileSecretValue(readText(ref.slice(5)));
  return undefined;
}
