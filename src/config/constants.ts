/** Names and patterns shared by the schema and the CLI (kept apart so the CLI need not load the validator). */
export const SOURCE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const SECRET_REF = /^(env:[A-Za-z_][A-Za-z0-9_]*|file:\/.+|keyring:[^/\s]+\/[^\s]+)$/;

/**
 * Why `value` is not a usable secret reference, or undefined when it is one. A `file:` reference
 * that is relative (or starts with `~`, which no shell expands inside the word) is named as such:
 * it is a path mistake, not a secret pasted where a reference belongs. Any other non-reference
 * is described without echoing it (it may be the secret itself).
 */
export function secretRefProblem(value: string): string | undefined {
  if (SECRET_REF.test(value)) return undefined;
  if (value.startsWith('file:')) {
    const path = value.slice('file:'.length);
    if (path === '') return 'file: references need a path: file:/absolute/path';
    if (path.startsWith('~')) return `file: references must be absolute; "~" is not expanded (write file:/home/<you>/${path.replace(/^~[^/]*\/?/, '')} instead of ${value})`;
    return `file: references must be absolute (file:/absolute/path), got the relative path "${path}"`;
  }
  const scheme = /^([a-z]+):/.exec(value)?.[1];
  const what = scheme ? `"${scheme}:…" (${value.length} chars)` : `a value of ${value.length} chars`;
  return `expected a secret reference: env:NAME, file:/absolute/path or keyring:service/account (never the secret itself), got ${what}`;
}

/** A `file:` reference whose path is not absolute (a path mistake, safe to name). */
export function isRelativeFileRef(value: string): boolean {
  return value.startsWith('file:') && !value.startsWith('file:/');
}

export const methodNames = ['token', 'oauth', 'session'] as const;
/** An auth method's name, as listed in `sources.<name>.methods`. */
export type MethodName = (typeof methodNames)[number];

export const clientAuthMethods = ['none', 'client_secret_basic', 'client_secret_post'] as const;
