/**
 * Errors carry a stable `code`, the CLI exit code, and (where a person must act) the operator
 * action. Messages name the offending thing (file, field, source) and never a secret value.
 */
import { sanitizeMessage } from './sanitize.js';

/** What a person must do to fix a source. */
export type OperatorAction =
  | 'relogin'
  | 'reauthorize'
  | 'renew_session'
  | 'replace_token'
  | 'check_network'
  | 'fix_config';

/** CLI exit codes (see DESIGN.md "Health, exit codes"). */
export const ExitCode = {
  ok: 0,
  usage: 1,
  unreachable: 3,
  actionRequired: 4,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

export type ErrorCode =
  | 'LK_USAGE'
  | 'LK_CONFIG_MISSING'
  | 'LK_CONFIG_INVALID'
  | 'LK_UNKNOWN_SOURCE'
  | 'LK_SECRET_UNRESOLVED'
  | 'LK_STORE_CORRUPT'
  | 'LK_STORE_PERMISSIONS'
  | 'LK_STORE_IO'
  | 'LK_STORE_CONFLICT'
  | 'LK_LOCK_TIMEOUT'
  | 'LK_NO_GRANT'
  | 'LK_GRANT_INVALID'
  | 'LK_GRANT_REVOKED'
  | 'LK_REFRESH_FAILED'
  | 'LK_TOKEN_ENDPOINT'
  | 'LK_INSECURE_ENDPOINT'
  | 'LK_UNAUTHORIZED'
  | 'LK_UNREACHABLE'
  | 'LK_LOGIN_FAILED'
  | 'LK_SESSION'
  | 'LK_KEYRING'
  | 'LK_KEEPER';

export interface LatchkeyErrorOptions {
  source?: string;
  operatorAction?: OperatorAction;
  exitCode?: ExitCode;
  cause?: unknown;
  /** The exact command or URL that fixes it. */
  fix?: string;
}

const DEFAULT_EXIT: Partial<Record<ErrorCode, ExitCode>> = {
  LK_UNREACHABLE: ExitCode.unreachable,
  LK_REFRESH_FAILED: ExitCode.unreachable,
  LK_TOKEN_ENDPOINT: ExitCode.unreachable,
  LK_LOCK_TIMEOUT: ExitCode.unreachable,
  LK_STORE_CONFLICT: ExitCode.unreachable,
  LK_GRANT_REVOKED: ExitCode.actionRequired,
  LK_NO_GRANT: ExitCode.actionRequired,
  LK_UNAUTHORIZED: ExitCode.actionRequired,
  LK_SESSION: ExitCode.actionRequired,
  LK_LOGIN_FAILED: ExitCode.actionRequired,
};

export class LatchkeyError extends Error {
  readonly code: ErrorCode;
  readonly exitCode: ExitCode;
  readonly source: string | undefined;
  readonly operatorAction: OperatorAction | undefined;
  readonly fix: string | undefined;

  constructor(code: ErrorCode, message: string, options: LatchkeyErrorOptions = {}) {
    // Every message reaches stderr, the store, health.json or an HTTP answer, and may quote
    // upstream text: no piece of a held secret and no escape sequence survives, whoever built it.
    super(sanitizeMessage(message), options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'LatchkeyError';
    this.code = code;
    this.source = options.source;
    this.operatorAction = options.operatorAction;
    this.fix = options.fix !== undefined ? sanitizeMessage(options.fix) : options.source && options.operatorAction ? fixFor(options.source, options.operatorAction) : undefined;
    this.exitCode = options.exitCode ?? DEFAULT_EXIT[code] ?? ExitCode.usage;
  }
}

/**
 * The command that resolves an operator action for a source when nothing else is known about
 * it. Where the source's config is at hand, `fixForSource` (src/config/source-fix.ts) decides
 * instead: it knows whether `latchkey login` can run for the source and which reference holds
 * its token, so it never suggests a command that cannot work.
 */
export function fixFor(source: string, action: OperatorAction): string {
  switch (action) {
    case 'relogin':
    case 'reauthorize':
      return `latchkey login ${source}`;
    case 'renew_session':
      return `sign in to ${source} in the browser, then: latchkey preflight ${source} --live`;
    case 'replace_token':
      return `latchkey secrets set <the reference that \`latchkey status --json\` shows for ${source}>`;
    case 'check_network':
      // The message names the host and port that did not answer; this re-checks once it does.
      return `latchkey preflight ${source} --live`;
    case 'fix_config':
      return `edit sources.${source} in the config (its path: latchkey status), then: latchkey preflight ${source} --live`;
  }
}

/** True for errors a caller may retry later (network, 5xx, timeouts, lock contention). */
export function isTransient(err: unknown): boolean {
  return err instanceof LatchkeyError && err.exitCode === ExitCode.unreachable;
}

/**
 * Where a JSON text stopped parsing ("at line 3, column 14"), from a JSON.parse error, without
 * the error's own message: V8 quotes the text around an unexpected token
 * (`Unexpected token 'S', ..."shToken": SECRETSECR"... is not valid JSON`), and the text may be a
 * store full of tokens.
 */
export function jsonSyntaxWhere(err: unknown, text: string): string {
  const message = err instanceof Error ? err.message : '';
  if (/Unexpected end of JSON input/i.test(message)) return 'it ends too early (truncated?)';
  const m = /at position (\d+)/.exec(message);
  if (!m) return 'at an unexpected character';
  const pos = Math.min(Number(m[1]), text.length);
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  return `at line ${line}, column ${column}`;
}
