import * as v from 'valibot';
import { jsonSyntaxWhere, LatchkeyError } from '../core/errors.js';
import { jsonWithoutComments, UnclosedCommentError } from './jsonc.js';
import { ConfigSchema, type ConfigFile } from './schema.js';

/** Parses and validates config text; errors name the file and each offending field path. */
export function validateConfigText(text: string, file: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(jsonWithoutComments(text));
  } catch (err) {
    if (err instanceof UnclosedCommentError) throw new LatchkeyError('LK_CONFIG_INVALID', `${file}: not valid JSON (${err.message})`);
    // Not the parser's message: it quotes the text around the error, and a raw secret pasted
    // into the config by mistake must not be echoed.
    throw new LatchkeyError('LK_CONFIG_INVALID', `${file}: not valid JSON (${jsonSyntaxWhere(err, text)})`);
  }
  const result = v.safeParse(ConfigSchema, json);
  if (!result.success) {
    const lines = result.issues.slice(0, 5).map((issue) => `  ${v.getDotPath(issue) ?? '(top level)'}: ${describeIssue(issue)}`);
    throw new LatchkeyError('LK_CONFIG_INVALID', `${file} is invalid:\n${lines.join('\n')}`);
  }
  const misplaced = arrayReadAsObject(json, result.output, '');
  if (misplaced !== undefined) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `${file} is invalid:\n  ${misplaced || '(top level)'}: expected an object, got an array`);
  }
  return result.output;
}

/**
 * valibot's object and record schemas accept an array and return `{}`: `"sources": [ … ]` would
 * pass as "no sources". Walks the input beside the output and names the first array that came
 * out as a plain object.
 */
function arrayReadAsObject(input: unknown, output: unknown, path: string): string | undefined {
  if (Array.isArray(input)) {
    if (!Array.isArray(output)) return path;
    for (let i = 0; i < input.length; i++) {
      const found = arrayReadAsObject(input[i], output[i], `${path}.${i}`);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  if (input === null || typeof input !== 'object' || output === null || typeof output !== 'object') return undefined;
  for (const [key, value] of Object.entries(input)) {
    if (!Object.prototype.hasOwnProperty.call(output, key)) continue;
    const found = arrayReadAsObject(value, (output as Record<string, unknown>)[key], path ? `${path}.${key}` : key);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** A config saved by an editor that starts files with a byte-order mark is still JSON to us. */
export function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  if (issue.kind === 'schema' && issue.expected === 'never') return 'unknown key (check the spelling)';
  if (issue.kind === 'schema' && issue.message.startsWith('Invalid')) return `expected ${issue.expected}, got ${issue.received}`;
  return issue.message;
}
