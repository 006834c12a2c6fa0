import * as v from 'valibot';
import { jsonSyntaxWhere, LatchkeyError } from '../errors.js';
import { ConfigSchema, type ConfigFile } from './schema.js';

/** Parses and validates config text; errors name the file and each offending field path. */
export function validateConfigText(text: string, file: string): ConfigFile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    // Not the parser's message: it quotes the text around the error, and a raw secret pasted
    // into the config by mistake must not be echoed.
    throw new LatchkeyError('LK_CONFIG_INVALID', `${file}: not valid JSON (${jsonSyntaxWhere(err, text)})`);
  }
  const result = v.safeParse(ConfigSchema, json);
  if (!result.success) {
    const lines = result.issues.slice(0, 5).map((issue) => `  ${v.getDotPath(issue) ?? '(top level)'}: ${describeIssue(issue)}`);
    throw new LatchkeyError('LK_CONFIG_INVALID', `${file} is invalid:\n${lines.join('\n')}`);
  }
  return result.output;
}

function describeIssue(issue: v.BaseIssue<unknown>): string {
  if (issue.kind === 'schema' && issue.expected === 'never') return 'unknown key (check the spelling)';
  if (issue.kind === 'schema' && issue.message.startsWith('Invalid')) return `expected ${issue.expected}, got ${issue.received}`;
  return issue.message;
}
