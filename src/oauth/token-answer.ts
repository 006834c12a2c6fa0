import { ExitCode, type OperatorAction } from '../core/errors.js';
import { retryAfterMs } from '../http/retry-after.js';

/** How a refresh failed, which decides what the engine does next. */
export type RefreshFailureKind = 'invalid_grant' | 'transient' | 'rejected';

/**
 * Every answer a token endpoint can give to a refresh (RFC 6749 §6), sorted into classes, and
 * one table that says, per class, what the engine persists, what the caller gets, the state,
 * the operator action and the exit code. docs/DESIGN.md "Token-endpoint answers" prints the same
 * table (test/unit/token-answer.test.ts keeps them in agreement).
 *
 * The rule above every row: a refresh token the IdP may have consumed is never sent again unless
 * the store holds no newer one and the answer proves it was not consumed. Whatever part of a
 * 2xx is usable (the new refresh token above all) is persisted, under the lock, before anything
 * else happens.
 */
export type TokenAnswerClass =
  /** 2xx, a valid token response with a new refresh token. */
  | 'token'
  /** 2xx, a valid token response without `refresh_token` (RFC 6749 §6: the old one stays valid). */
  | 'token_without_refresh_token'
  /** 2xx carrying a new `refresh_token`, but otherwise invalid (no access_token, bad token_type…). */
  | 'rotation_unusable'
  /** 2xx that is not a token response and holds no refresh token (HTML, non-JSON, `{}`). */
  | 'unusable_2xx'
  /** RFC 6749 §5.2 `invalid_grant` (GitHub: `bad_refresh_token`), with HTTP 4xx or 200. */
  | 'invalid_grant'
  /** HTTP 400 with an empty or non-JSON body: servers that answer every refused refresh so. */
  | 'refused_without_error'
  /** `invalid_client`, or HTTP 401 without an RFC 6749 error: the client's authentication. */
  | 'invalid_client'
  /** `unauthorized_client`: the client may not use the refresh_token grant. */
  | 'unauthorized_client'
  /** `invalid_scope`. */
  | 'invalid_scope'
  /** `invalid_request`. */
  | 'invalid_request'
  /** `unsupported_grant_type`. */
  | 'unsupported_grant_type'
  /** Any other RFC 6749 error code with HTTP 4xx or 200. */
  | 'other_error'
  /** Any other 4xx without an RFC 6749 error (403 from a firewall, 404, 405…). */
  | 'http_4xx'
  /** 429 (RFC 6585 §4) or 408: refused before processing; Retry-After is honoured. */
  | 'retry_later'
  /** 5xx (with the IdP's `error` and description when it sent them); Retry-After is honoured. */
  | 'server_error'
  /** 3xx: the configured token endpoint is not the token endpoint. */
  | 'redirect'
  /** Connection refused, DNS, TLS, connect timeout: the request never left. */
  | 'not_sent'
  /** Timed out after the request may have been sent: the IdP may have rotated the token. */
  | 'timeout_after_send'
  /** Connection reset or closed after the request may have been sent. */
  | 'reset'
  /** An answer beyond the size limit (it is not read, whatever it holds). */
  | 'oversized';

/** What the engine does with a class (the machine-readable part of a row). */
export type TokenAnswerHandling =
  /** Persist the new grant under the lock, then hand out its access token. */
  | 'persist'
  /** Persist the new refresh token (the access token marked expired), then refresh once with it. */
  | 'persist_refresh_token'
  /** Pause, re-read under the lock: adopt a newer refresh token, or send the same one once more; a second refusal marks the grant revoked. */
  | 'confirm_then_revoke'
  /** Keep the grant, fail open with the current access token, cool down. */
  | 'fail_open';

/** Whether the refresh token just sent may have been consumed (rotated) by the IdP. */
export type Consumption = 'yes' | 'no' | 'maybe';

export interface TokenAnswerRow {
  handling: TokenAnswerHandling;
  consumed: Consumption;
  /** How a failure is recorded (lastFailure.kind); undefined for a success. */
  failure?: RefreshFailureKind;
  persisted: string;
  callerGets: string;
  /** `latchkey status` state. */
  state: string;
  operatorAction: OperatorAction | null;
  /** Exit code of `latchkey token` (fail open answers 0; preflight answers 3 or 4 once the access token is refused). */
  exitCode: ExitCode;
}

const FAIL_OPEN = 'the current access token (fail open; `token` warns on stderr when it has expired)';

/** The table. Row order is the order of docs/DESIGN.md. */
export const TOKEN_ANSWERS: Readonly<Record<TokenAnswerClass, TokenAnswerRow>> = {
  token: { handling: 'persist', consumed: 'yes', persisted: 'the whole new grant', callerGets: 'the new access token', state: 'ok', operatorAction: null, exitCode: ExitCode.ok },
  token_without_refresh_token: {
    handling: 'persist',
    consumed: 'no',
    persisted: 'the new access token; the refresh token sent is kept (RFC 6749 §6)',
    callerGets: 'the new access token',
    state: 'ok',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  rotation_unusable: {
    handling: 'persist_refresh_token',
    consumed: 'yes',
    failure: 'transient',
    persisted: 'the new refresh token, first; the access token marked expired',
    callerGets: 'the access token of an immediate second refresh with the new refresh token; if that fails too, the old access token (fail open)',
    state: 'ok, or failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  unusable_2xx: {
    handling: 'fail_open',
    consumed: 'maybe',
    failure: 'transient',
    persisted: 'nothing but lastFailure (maybeConsumed)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  invalid_grant: {
    handling: 'confirm_then_revoke',
    consumed: 'no',
    failure: 'invalid_grant',
    persisted: 'after a confirmed second refusal: the grant marked revoked (nothing blanked)',
    callerGets: 'LK_GRANT_REVOKED with `latchkey login <source>`',
    state: 'revoked',
    operatorAction: 'reauthorize',
    exitCode: ExitCode.actionRequired,
  },
  refused_without_error: {
    handling: 'confirm_then_revoke',
    consumed: 'no',
    failure: 'invalid_grant',
    persisted: 'after a confirmed second refusal: the grant marked revoked (nothing blanked)',
    callerGets: 'LK_GRANT_REVOKED with `latchkey login <source>`',
    state: 'revoked',
    operatorAction: 'reauthorize',
    exitCode: ExitCode.actionRequired,
  },
  invalid_client: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: `${FAIL_OPEN}; the message names \`--client-auth client_secret_post\``,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  unauthorized_client: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  invalid_scope: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  invalid_request: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  unsupported_grant_type: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  other_error: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected, with the IdP\'s error)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  http_4xx: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  retry_later: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'transient',
    persisted: 'nothing but lastFailure with `until` = now + max(cool-down, Retry-After), capped at 1 h',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  server_error: {
    handling: 'fail_open',
    consumed: 'maybe',
    failure: 'transient',
    persisted: 'nothing but lastFailure (maybeConsumed; the IdP\'s error and description; Retry-After honoured)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  redirect: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'rejected',
    persisted: 'nothing but lastFailure (rejected)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: 'fix_config',
    exitCode: ExitCode.ok,
  },
  not_sent: {
    handling: 'fail_open',
    consumed: 'no',
    failure: 'transient',
    persisted: 'nothing but lastFailure',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  timeout_after_send: {
    handling: 'fail_open',
    consumed: 'maybe',
    failure: 'transient',
    persisted: 'nothing but lastFailure (maybeConsumed)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  reset: {
    handling: 'fail_open',
    consumed: 'maybe',
    failure: 'transient',
    persisted: 'nothing but lastFailure (maybeConsumed)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
  oversized: {
    handling: 'fail_open',
    consumed: 'maybe',
    failure: 'transient',
    persisted: 'nothing but lastFailure (maybeConsumed)',
    callerGets: FAIL_OPEN,
    state: 'failing',
    operatorAction: null,
    exitCode: ExitCode.ok,
  },
};

/** Upper bound on a cool-down asked for by Retry-After: an IdP cannot park a grant for days. */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** An HTTP answer, classified. */
export interface TokenAnswer {
  class: TokenAnswerClass;
  status?: number;
  /** The JSON object body, when the body was one. */
  body?: Record<string, unknown>;
  /** RFC 6749 §5.2 `error` and `error_description` (raw: quote them only through a redaction). */
  error?: string;
  errorDescription?: string;
  /** Retry-After (RFC 9110 §10.2.3) in ms, bounded by {@link MAX_RETRY_AFTER_MS}. */
  retryAfterMs?: number;
  /** The new refresh token in a 2xx (present for `rotation_unusable`; for `token` too). */
  refreshToken?: string;
}

/** error codes that mean "this refresh token is dead" (GitHub says bad_refresh_token). */
const DEAD_REFRESH_TOKEN = new Set(['invalid_grant', 'bad_refresh_token', 'invalid_refresh_token']);

const NAMED_ERRORS: Record<string, TokenAnswerClass> = {
  invalid_client: 'invalid_client',
  unauthorized_client: 'unauthorized_client',
  invalid_scope: 'invalid_scope',
  invalid_request: 'invalid_request',
  unsupported_grant_type: 'unsupported_grant_type',
};

/**
 * Classifies the raw HTTP answer of a refresh (status, headers, the whole body as read). A 2xx
 * that holds a token response is returned as `token` / `token_without_refresh_token` here only
 * provisionally: oauth4webapi validates it next, and a failure there makes it
 * `rotation_unusable` or `unusable_2xx` (see {@link unusable2xx}).
 */
export function classifyTokenAnswer(status: number, headers: Headers, text: string, now: number): TokenAnswer {
  const body = jsonObject(text);
  const error = typeof body?.error === 'string' ? body.error : undefined;
  const errorDescription = typeof body?.error_description === 'string' ? body.error_description : undefined;
  const base: TokenAnswer = { class: 'unusable_2xx', status, ...(body ? { body } : {}), ...(error !== undefined ? { error } : {}), ...(errorDescription !== undefined ? { errorDescription } : {}) };
  const retryAfterMs = retryAfter(headers.get('retry-after'), now);
  if (retryAfterMs !== undefined) base.retryAfterMs = retryAfterMs;
  if (status >= 200 && status < 300) {
    const refreshToken = usableRefreshToken(body?.refresh_token);
    // GitHub and Slack answer errors with HTTP 200 and {"error": …} (no access_token). One that
    // carries a new refresh token all the same is a rotation: its refresh token must be kept.
    if (error !== undefined && body && !('access_token' in body) && refreshToken === undefined) return { ...base, class: errorClass(error) };
    if (!body) return base;
    if (refreshToken !== undefined) return { ...base, class: 'token', refreshToken };
    return { ...base, class: 'token_without_refresh_token' };
  }
  if (status === 429 || status === 408) return { ...base, class: 'retry_later' };
  if (status >= 500) return { ...base, class: 'server_error' };
  if (status >= 300 && status < 400) return { ...base, class: 'redirect' };
  if (status >= 400) {
    if (error !== undefined) return { ...base, class: errorClass(error) };
    if (status === 400) return { ...base, class: 'refused_without_error' };
    if (status === 401) return { ...base, class: 'invalid_client' };
    return { ...base, class: 'http_4xx' };
  }
  return { ...base, class: 'server_error' };
}

/** A 2xx that failed validation: what its refresh token (if any) makes of it. */
export function unusable2xx(answer: TokenAnswer): TokenAnswer {
  const refreshToken = usableRefreshToken(answer.body?.refresh_token);
  return refreshToken !== undefined ? { ...answer, class: 'rotation_unusable', refreshToken } : { ...answer, class: 'unusable_2xx' };
}

function errorClass(error: string): TokenAnswerClass {
  if (DEAD_REFRESH_TOKEN.has(error)) return 'invalid_grant';
  return NAMED_ERRORS[error] ?? 'other_error';
}

/** A refresh token we can store and send back: a non-empty string without whitespace or controls. */
function usableRefreshToken(v: unknown): string | undefined {
  if (typeof v !== 'string' || v === '') return undefined;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c <= 0x20 || c === 0x7f) return undefined;
  }
  return v;
}

function jsonObject(text: string): Record<string, unknown> | undefined {
  if (text.trim() === '') return undefined;
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Retry-After: delay-seconds or an HTTP-date (RFC 9110 §10.2.3), in ms from `now`, capped. */
export function retryAfter(value: string | null, now: number): number | undefined {
  const ms = retryAfterMs(value, now);
  return ms === undefined ? undefined : Math.min(MAX_RETRY_AFTER_MS, ms);
}

/**
 * A fetch that threw: was the request sent? Only failures that happen before a connection
 * carries the request prove it was not (refused, DNS, unreachable, TLS handshake, connect
 * timeout). A timeout or reset after that may have reached the IdP, which then rotated the
 * token: the answer we never read held its successor.
 */
export function classifyTransportError(err: unknown): 'not_sent' | 'timeout_after_send' | 'reset' {
  const e = err as { name?: unknown; code?: unknown; cause?: unknown } | undefined;
  const codes: string[] = [];
  for (let c: unknown = e, depth = 0; c && depth < 4; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as { code?: unknown }).code;
    if (typeof code === 'string') codes.push(code);
  }
  if (codes.some((c) => NOT_SENT_CODES.has(c) || c.startsWith('ERR_TLS') || c.startsWith('CERT_') || c.includes('CERT'))) return 'not_sent';
  // fetch refuses some ports outright (the Fetch standard's "bad port" list): nothing was sent.
  if ((e?.cause as { message?: unknown } | undefined)?.message === 'bad port') return 'not_sent';
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError' || codes.some((c) => c === 'UND_ERR_HEADERS_TIMEOUT' || c === 'UND_ERR_BODY_TIMEOUT' || c === 'ETIMEDOUT')) {
    return 'timeout_after_send';
  }
  return 'reset';
}

const NOT_SENT_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
  'ERR_INVALID_URL',
  'ERR_INVALID_ARG_VALUE',
]);
