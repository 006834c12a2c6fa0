/**
 * config.json may carry comments (JSONC, as the README's config reference and most editors'
 * settings files do): `//` to the end of the line and `/* … *\/`, outside strings only, and a
 * leading byte-order mark. They are replaced by spaces (newlines kept), so a JSON syntax error
 * still points at the right line and column. Pure and small: the CLI's fast path uses it too.
 * Trailing commas are not accepted (they are not JSONC's, and would hide a truncated file).
 */

/** A `/*` comment that is never closed (it would swallow the rest of the file). */
export class UnclosedCommentError extends Error {
  constructor(text: string, at: number) {
    const before = text.slice(0, at);
    super(`a /* comment opened at line ${before.split('\n').length}, column ${at - before.lastIndexOf('\n')} is never closed`);
    this.name = 'UnclosedCommentError';
  }
}

/** `text` as plain JSON: BOM dropped, comments blanked. Text inside strings is never touched. Throws UnclosedCommentError. */
export function jsonWithoutComments(text: string): string {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  if (!src.includes('/')) return src; // the common case: no comment can be present
  let out = '';
  let i = 0;
  let inString = false;
  while (i < src.length) {
    const c = src[i]!;
    if (inString) {
      out += c;
      if (c === '\\' && i + 1 < src.length) {
        out += src[i + 1];
        i += 2;
        continue;
      }
      if (c === '"') inString = false;
      i += 1;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      i += 1;
      continue;
    }
    if (c === '/' && src[i + 1] === '/') {
      const end = src.indexOf('\n', i);
      const stop = end === -1 ? src.length : end;
      out += ' '.repeat(stop - i);
      i = stop;
      continue;
    }
    if (c === '/' && src[i + 1] === '*') {
      const end = src.indexOf('*/', i + 2);
      if (end === -1) throw new UnclosedCommentError(src, i);
      const stop = end + 2;
      out += src.slice(i, stop).replace(/[^\n]/g, ' ');
      i = stop;
      continue;
    }
    out += c;
    i += 1;
  }
  return out;
}

/** True when `text` has a comment outside strings (so rewriting it as JSON would drop them). */
export function hasJsonComments(text: string): boolean {
  const src = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return jsonWithoutComments(src) !== src;
  } catch {
    return true;
  }
}
