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

/**
 * Process exit codes (docs/DESIGN.md "Health, exit codes"): the only place they are written as
 * numbers. 3 and 4 follow `gh` (4: authentication required, a person must act).
 */
export const ExitCode = {
  /** Healthy / done. */
  ok: 0,
  /** Usage or configuration error: fix the command line or the config. */
  usage: 1,
  /** Unreachable or transient: try again later. */
  unreachable: 3,
  /** A person must act (log in again, replace a token, renew a session). */
  actionRequired: 4,
  /** Stopped by Ctrl-C / SIGINT (the shell convention 128 + 2). */
  interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** One entry of the error table. */
export interface ErrorSpec<C extends string = string> {
  /** Equal to its key in {@link ERRORS} (checked by a test, as Fastify does). */
  readonly code: C;
  /** The CLI exit code when nothing more specific is known (a caller may pass another one). */
  readonly exitCode: ExitCode;
  /** The HTTP status an HTTP surface (keeper API, gateway) answers with. */
  readonly httpStatus: number;
  /** What the code means, for the docs and for a reader of `--json` output. */
  readonly summary: string;
}

const spec = <C extends string>(code: C, exitCode: ExitCode, httpStatus: number, summary: string): ErrorSpec<C> => ({ code, exitCode, httpStatus, summary });

/**
 * Every error code, with its default exit code and HTTP status: one table, so the CLI, the
 * library and the HTTP surfaces cannot disagree. Stable: codes are part of the public API.
 */
export const ERRORS = {
  LK_USAGE: spec('LK_USAGE', ExitCode.usage, 400, 'the command or call was used wrongly'),
  LK_CONFIG_MISSING: spec('LK_CONFIG_MISSING', ExitCode.usage, 500, 'there is no config file'),
  LK_CONFIG_INVALID: spec('LK_CONFIG_INVALID', ExitCode.usage, 500, 'the config is invalid (the message names the file and field)'),
  LK_UNKNOWN_SOURCE: spec('LK_UNKNOWN_SOURCE', ExitCode.usage, 404, 'no source by that name in the config'),
  LK_SECRET_UNRESOLVED: spec('LK_SECRET_UNRESOLVED', ExitCode.usage, 500, 'a secret reference (env:, file:, keyring:) does not resolve'),
  LK_STORE_CORRUPT: spec('LK_STORE_CORRUPT', ExitCode.usage, 500, 'the store cannot be parsed (left untouched)'),
  LK_STORE_PERMISSIONS: spec('LK_STORE_PERMISSIONS', ExitCode.usage, 500, 'the store or its directory is readable by others or not ours'),
  LK_STORE_IO: spec('LK_STORE_IO', ExitCode.usage, 500, 'the store could not be read or written (disk full, I/O error)'),
  LK_STORE_CONFLICT: spec('LK_STORE_CONFLICT', ExitCode.unreachable, 503, 'another writer changed the record in between (compare-and-set failed)'),
  LK_LOCK_TIMEOUT: spec('LK_LOCK_TIMEOUT', ExitCode.unreachable, 503, "a source's lock stayed held longer than the wait"),
  LK_NO_GRANT: spec('LK_NO_GRANT', ExitCode.actionRequired, 401, 'no grant is stored for the source: log in'),
  LK_GRANT_INVALID: spec('LK_GRANT_INVALID', ExitCode.usage, 400, 'a grant handed in (import, token response) is not usable'),
  LK_GRANT_REVOKED: spec('LK_GRANT_REVOKED', ExitCode.actionRequired, 401, 'the IdP refused the refresh token for good: log in again'),
  LK_REFRESH_FAILED: spec('LK_REFRESH_FAILED', ExitCode.unreachable, 503, 'a refresh failed for now (network, 5xx, timeout)'),
  LK_TOKEN_ENDPOINT: spec('LK_TOKEN_ENDPOINT', ExitCode.unreachable, 502, 'the token endpoint answered something unusable'),
  LK_INSECURE_ENDPOINT: spec('LK_INSECURE_ENDPOINT', ExitCode.usage, 500, 'an endpoint is plain http to a non-loopback host'),
  LK_UNAUTHORIZED: spec('LK_UNAUTHORIZED', ExitCode.actionRequired, 401, 'the API still answered 401 after one recovery'),
  LK_UNREACHABLE: spec('LK_UNREACHABLE', ExitCode.unreachable, 502, 'a host did not answer (the message names host:port)'),
  LK_LOGIN_FAILED: spec('LK_LOGIN_FAILED', ExitCode.actionRequired, 401, 'an interactive login did not complete; nothing was stored'),
  LK_SESSION: spec('LK_SESSION', ExitCode.actionRequired, 401, 'the browser session is missing or expired'),
  LK_KEYRING: spec('LK_KEYRING', ExitCode.usage, 500, 'the OS keyring is unavailable or refused'),
  LK_KEEPER: spec('LK_KEEPER', ExitCode.usage, 500, 'the keeper cannot run (port in use, another keeper, a bad health.json)'),
  LK_STORE_SCHEMA: spec('LK_STORE_SCHEMA', ExitCode.usage, 500, 'the PostgreSQL schema is missing, older (run `latchkey migrate`) or newer than this Latchkey'),
  LK_CLAIM_LOST: spec('LK_CLAIM_LOST', ExitCode.unreachable, 503, "a PostgreSQL claim's lease expired and another process took it over: nothing was written under it"),
  LK_STORE_KEY: spec('LK_STORE_KEY', ExitCode.usage, 500, 'the master key is missing, malformed or not the one the stored secrets were sealed with'),
} as const satisfies { [C in string]: ErrorSpec<C> };

/** A stable error code (the keys of {@link ERRORS}). */
export type ErrorCode = keyof typeof ERRORS;

/** Options of a {@link LatchkeyError}. */
export interface LatchkeyErrorOptions {
  /** The source the error is about (named in messages and `--json`). */
  source?: string;
  /** What a person must do, when a person must act. */
  operatorAction?: OperatorAction;
  /** Overrides the table's exit code (e.g. a transient cause of a usually fatal code). */
  exitCode?: ExitCode;
  cause?: unknown;
  /** The exact command or URL that fixes it. */
  fix?: string;
}

/**
 * The one error type of the library and CLI: a stable {@link ErrorCode}, the exit code, and
 * (when a person must act) the operator action and the command that fixes it.
 */
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
    this.exitCode = options.exitCode ?? ERRORS[code].exitCode;
  }

  /** The HTTP status an HTTP surface answers this error with (from {@link ERRORS}). */
  get httpStatus(): number {
    return ERRORS[this.code].httpStatus;
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
