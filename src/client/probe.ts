import type { Clock } from '../core/clock.js';
import type { ResolvedSource } from '../config/load.js';
import type { ProbeConfig } from '../config/schema.js';
import { ExitCode, fixFor, LatchkeyError, type OperatorAction } from '../core/errors.js';
import { WrongDestinationError, type AuthMethod } from '../methods/method.js';
import type { FetchLike } from '../oauth/endpoint.js';
import { asMethodFailure, fixForMethod, type MethodFailure, type SourceAuth } from './auth-path.js';
import { discard, networkErrorText, sendAuthorized } from './fetch.js';
import type { HealthStatus, MethodFailureSummary, ProbeOptions, ProbeResult } from './probe-types.js';
import { sourceAwareFix } from '../config/source-fix.js';
import { sanitizeMessage, sanitizeRemoteText } from '../core/sanitize.js';
import { untilAborted } from '../core/wait.js';
import { callDeadline } from '../core/deadline.js';
import { readCappedBody } from '../http/capped-body.js';

/** A probe with neither its own `timeoutMs` nor a caller's bound gives up after this long. */
export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;

/** What a probe needs from Latchkey (kept narrow so the keeper and tests can supply it). */
export interface ProbeContext {
  source: ResolvedSource;
  auth: SourceAuth;
  fetch: FetchLike;
  clock: Clock;
}

/**
 * Answers "can I call this source right now?" (DESIGN.md "Health").
 *
 * With a `probe` configured: the probe request goes out through the same logic as `lk.fetch`
 * (one recovery, one retry) with each method in order of preference until one works (the
 * `session` method to `probe.sessionUrl` when set), and the answer is judged by its status,
 * and by its body only when `probe.expectJson` asks for JSON (otherwise an HTML page is fine
 * when the status is right):
 *
 * | answer                               | status            | operator action            |
 * | ------------------------------------ | ----------------- | -------------------------- |
 * | `expectStatus` (default: any 2xx)    | `ok` / `expiring` | none / renew before expiry |
 * | 401 / 403 with every method          | `action_required` | the preferred method's     |
 * | expected status, `expectJson` unmet  | `action_required` | the method's (as a 401)    |
 * | 429, 5xx                             | `degraded`        | none: transient, try later |
 * | network error, timeout, budget spent | `unreachable`     | `check_network`            |
 * | anything else (404, 400, a 3xx…)     | `action_required` | `fix_config` (the probe)   |
 *
 * `degraded` rather than `unreachable` for 5xx/429: the upstream answered, so the network
 * path is fine and nothing on this side needs fixing; both mean "try later" (exit 3).
 *
 * Without a probe: a no-network check of the credential (present, not revoked, not past its
 * declared expiry), judged by the same table minus the request.
 */
export async function probeSource(ctx: ProbeContext, options: ProbeOptions = {}): Promise<ProbeResult> {
  const started = performance.now();
  const checkedAt = new Date(ctx.clock.now()).toISOString();
  const config = ctx.source.probe;
  const timeoutMs = Math.max(1, Math.round(options.timeoutMs ?? config?.timeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS));
  const deadline = callDeadline(options.signal, timeoutMs);
  const signal = deadline.signal;
  const verdict = (v: Verdict): ProbeResult => finish(ctx, v, checkedAt, started);
  const progress: Progress = { method: undefined, failures: [], phase: 'credentials' };
  try {
    const v = await untilAborted(config ? liveProbe(ctx, config, signal, progress) : credentialCheck(ctx, progress), signal);
    return verdict(v);
  } catch (err) {
    return verdict({ ...verdictForError(ctx, err, signal, timeoutMs, progress), method: progress.method, failures: progress.failures });
  } finally {
    deadline.dispose();
  }
}

/** How far a probe got: read when it is cut short by its deadline. */
interface Progress {
  /** The method being tried. */
  method: AuthMethod | undefined;
  /** Methods that did not work so far. */
  failures: MethodFailure[];
  /**
   * What the method being tried is waiting for: its credentials (a refresh, a session's
   * DevTools visit or renewal), the probe request, or the answer's body.
   */
  phase: 'credentials' | 'request' | 'answer';
}

/** What a probe concluded, before the common fields are filled in. */
interface Verdict {
  status: HealthStatus;
  method: AuthMethod | undefined;
  operatorAction: OperatorAction | null;
  message: string;
  expiresAt?: number | null;
  httpStatus?: number | null;
  failures?: MethodFailure[];
  /** The fix, when the verdict knows better than the method's fix for its action. */
  fix?: string;
}

function finish(ctx: ProbeContext, v: Verdict, checkedAt: string, started: number): ProbeResult {
  const method = v.method ?? ctx.auth.methods[0];
  const fix = v.fix ?? (v.operatorAction ? fixForMethod(ctx.source.name, methodFor(ctx, v), v.operatorAction) : null);
  // The one place a probe's verdict is made: its text may quote an error's (upstream) message.
  const result: ProbeResult = {
    source: ctx.source.name,
    status: v.status,
    authPath: method?.name ?? null,
    operatorAction: v.operatorAction,
    // Whoever built the fix, the source's config has the last word on "latchkey login" (src/config/source-fix.ts).
    fix: fix === null ? null : sanitizeMessage(v.operatorAction ? sourceAwareFix(ctx.source.name, ctx.source, v.operatorAction, fix) : fix),
    message: sanitizeMessage(v.message),
    latencyMs: Math.round(performance.now() - started),
    expiresAt: v.expiresAt !== undefined && v.expiresAt !== null && Number.isFinite(v.expiresAt) ? new Date(v.expiresAt).toISOString() : null,
    checkedAt,
    from: 'live',
  };
  if (v.httpStatus !== undefined) result.httpStatus = v.httpStatus;
  if (v.failures && v.failures.length > 0) result.methodFailures = v.failures.map(summary);
  return result;
}

/** The method whose fix applies: the one that failed first, else the one in use. */
function methodFor(ctx: ProbeContext, v: Verdict): AuthMethod | undefined {
  const failed = v.status === 'ok' || v.status === 'expiring' ? undefined : v.failures?.[0]?.method;
  return failed ? ctx.auth.methods.find((m) => m.name === failed) : (v.method ?? ctx.auth.methods[0]);
}

function summary(f: MethodFailure): MethodFailureSummary {
  return { method: f.method, operatorAction: f.operatorAction, reason: sanitizeMessage(f.reason) };
}

function isExpected(config: ProbeConfig, status: number): boolean {
  const expect = config.expectStatus;
  if (expect === undefined) return status >= 200 && status < 300;
  return Array.isArray(expect) ? expect.includes(status) : expect === status;
}

function expectedText(config: ProbeConfig): string {
  const expect = config.expectStatus;
  if (expect === undefined) return '2xx';
  return Array.isArray(expect) ? expect.join(' or ') : String(expect);
}

async function liveProbe(ctx: ProbeContext, config: ProbeConfig, signal: AbortSignal, progress: Progress): Promise<Verdict> {
  const failures = progress.failures;
  const name = ctx.source.name;
  const { methods } = ctx.auth;
  let lastStatus: number | null = null;
  // The probe request itself goes through here, so a deadline can tell which wait it cut short.
  const fetchImpl: typeof ctx.fetch = (input, init) => {
    progress.phase = 'request';
    return ctx.fetch(input, init).finally(() => {
      progress.phase = 'credentials';
    });
  };
  for (let i = 0; i < methods.length; i++) {
    const method = methods[i]!;
    progress.method = method;
    progress.phase = 'credentials';
    const availability = await method.available();
    if (!availability.ok) {
      failures.push({ method: method.name, reason: availability.reason, operatorAction: availability.operatorAction });
      continue;
    }
    const url = method.name === 'session' && config.sessionUrl !== undefined ? config.sessionUrl : config.url;
    let outcome;
    try {
      const init: RequestInit = { method: config.method ?? 'GET', signal, headers: { accept: 'application/json, */*;q=0.5', ...config.headers } };
      if (config.body !== undefined && init.method === 'POST') init.body = config.body;
      outcome = await sendAuthorized(ctx.auth, fetchImpl, url, init, { only: i, honourRejections: false });
    } catch (err) {
      if (err instanceof WrongDestinationError) {
        // This method's credential cannot go to the probe URL: it is not checked (a config gap).
        const host = new URL(url).host;
        failures.push({
          method: method.name,
          reason: `not checked: the probe URL is on ${host}, where its credentials are not sent; set sources.${name}.probe.sessionUrl to an API URL on the session's site`,
          operatorAction: 'fix_config',
        });
        continue;
      }
      const failure = asMethodFailure(method, err);
      if (!failure) throw err;
      failures.push(failure);
      continue;
    }
    const status = outcome.response.status;
    lastStatus = status;
    progress.phase = 'answer';
    if (isExpected(config, status)) {
      const unmet = config.expectJson === undefined ? undefined : await unmetJson(outcome.response, config.expectJson);
      if (unmet === undefined) {
        await discard(outcome.response);
        return healthy(method, failures, `${method.name}: probe answered ${status}`, status);
      }
      // A dead credential answered with a success status: Slack's {"ok": false, "error":
      // "invalid_auth"}, or a session's sign-in page. Judged as a rejection of the credential.
      failures.push({ method: method.name, reason: `probe answered ${status} but ${unmet}`, operatorAction: method.rejectedAction });
      continue;
    }
    await discard(outcome.response);
    if (status === 401 || status === 403) {
      const rejected = outcome.rejected[0];
      failures.push({
        method: method.name,
        reason: status === 401 ? (rejected?.reason ?? 'rejected (401)') : 'forbidden (403): the credential is valid but lacks access to the probe URL',
        operatorAction: rejected?.operatorAction ?? method.rejectedAction,
        ...(rejected?.error ? { error: rejected.error } : {}),
      });
      continue;
    }
    if (status === 429 || status >= 500) {
      return {
        status: 'degraded',
        method,
        operatorAction: null,
        httpStatus: status,
        failures,
        message: `${name}: probe answered ${status} (transient: the upstream is overloaded or failing; auth not verified); try later`,
      };
    }
    return {
      status: 'action_required',
      method,
      operatorAction: 'fix_config',
      httpStatus: status,
      failures,
      message: `${name}: probe ${config.method ?? 'GET'} ${new URL(config.url).pathname} answered ${status}, expected ${expectedText(config)}; check sources.${name}.probe`,
    };
  }
  return allFailed(ctx, failures, lastStatus);

  async function healthy(method: AuthMethod, failed: MethodFailure[], message: string, status: number | null): Promise<Verdict> {
    const expiry = await method.expiry?.();
    const fallback = failed.length ? `; ${failed.map((f) => `${f.method} not usable (${f.reason}, ${f.operatorAction})`).join('; ')}` : '';
    const expiring = expiry?.expiringSoon === true;
    return {
      status: expiring ? 'expiring' : 'ok',
      method,
      operatorAction: expiring ? (expiry?.operatorAction ?? method.rejectedAction) : null,
      expiresAt: expiry?.expiresAt ?? null,
      httpStatus: status,
      failures: failed,
      message: `${message}${expiring && expiry?.note ? `; ${expiry.note}` : ''}${fallback}`,
    };
  }
}

/** Largest probe answer read for `expectJson` (an auth check answers a few hundred bytes). */
const MAX_PROBE_BODY_BYTES = 1024 * 1024;

/**
 * Why the answer does not meet `expectJson` (undefined when it does): it must be JSON, and
 * contain `expected`'s members. The reason quotes no body content beyond an error code.
 */
async function unmetJson(response: Response, expected: true | Record<string, unknown>): Promise<string | undefined> {
  const type = (response.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
  const text = await readCapped(response, MAX_PROBE_BODY_BYTES);
  if (text === undefined) return `its body is larger than ${MAX_PROBE_BODY_BYTES} bytes, not the expected JSON`;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    const html = type === 'text/html' || /^\s*</.test(text);
    return html ? 'with an HTML page instead of JSON (a sign-in page?)' : `with something that is not JSON${type ? ` (${sanitizeRemoteText(type, 64)})` : ''}`;
  }
  if (expected === true || jsonContains(body, expected)) return undefined;
  const code = isRecord(body) && typeof body.error === 'string' && /^[\w.:-]{1,64}$/.test(body.error) ? ` (error: ${body.error})` : '';
  return `its JSON does not contain ${JSON.stringify(expected).slice(0, 120)}${code}`;
}

/** `actual` contains `expected`: objects as a subset (recursively), everything else by equality. */
export function jsonContains(actual: unknown, expected: unknown): boolean {
  if (isRecord(expected)) {
    if (!isRecord(actual)) return false;
    return Object.entries(expected).every(([k, v]) => Object.prototype.hasOwnProperty.call(actual, k) && jsonContains(actual[k], v));
  }
  if (Array.isArray(expected)) {
    return Array.isArray(actual) && actual.length === expected.length && expected.every((v, i) => jsonContains(actual[i], v));
  }
  return Object.is(actual, expected);
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** The body as text, or undefined when it exceeds `maxBytes` (the rest is not read). */
async function readCapped(response: Response, maxBytes: number): Promise<string | undefined> {
  const body = await readCappedBody(response.body, maxBytes);
  return body.ok ? Buffer.from(body.bytes).toString('utf8') : undefined;
}

function allFailed(ctx: ProbeContext, failures: MethodFailure[], httpStatus: number | null): Verdict {
  const first = failures[0];
  if (!first) {
    return { status: 'action_required', method: undefined, operatorAction: 'fix_config', httpStatus, message: `${ctx.source.name}: no auth method configured` };
  }
  const detail = failures.map((f) => `${f.method}: ${f.reason}`).join('; ');
  return {
    // A token endpoint that did not answer during recovery is a network problem, not a person's.
    status: first.operatorAction === 'check_network' ? 'unreachable' : 'action_required',
    method: ctx.auth.methods.find((m) => m.name === first.method),
    operatorAction: first.operatorAction,
    httpStatus,
    failures,
    message: `${ctx.source.name}: ${detail}`,
  };
}

/** No probe configured: is the credential there and usable, as far as can be told offline? */
async function credentialCheck(ctx: ProbeContext, progress: Progress): Promise<Verdict> {
  const failures = progress.failures;
  const now = ctx.clock.now();
  for (const method of ctx.auth.methods) {
    progress.method = method;
    const availability = await method.available();
    if (!availability.ok) {
      failures.push({ method: method.name, reason: availability.reason, operatorAction: availability.operatorAction });
      continue;
    }
    const expiry = await method.expiry?.();
    if (expiry?.expiringSoon && expiry.expiresAt !== null && expiry.expiresAt <= now) {
      failures.push({ method: method.name, reason: expiry.note ?? 'the credential has expired', operatorAction: expiry.operatorAction ?? method.rejectedAction });
      continue;
    }
    const expiring = expiry?.expiringSoon === true;
    const fallback = failures.length ? `; ${failures.map((f) => `${f.method} not usable (${f.reason})`).join('; ')}` : '';
    return {
      status: expiring ? 'expiring' : 'ok',
      method,
      operatorAction: expiring ? (expiry?.operatorAction ?? method.rejectedAction) : null,
      expiresAt: expiry?.expiresAt ?? null,
      httpStatus: null,
      failures,
      message: `${method.name}: credential present (not verified against the API: no probe configured for ${ctx.source.name})${expiring && expiry?.note ? `; ${expiry.note}` : ''}${fallback}`,
    };
  }
  return allFailed(ctx, failures, null);
}

function verdictForError(ctx: ProbeContext, err: unknown, signal: AbortSignal, timeoutMs: number, progress: Progress): Verdict {
  const name = ctx.source.name;
  if (signal.aborted) {
    const reason: unknown = signal.reason;
    const timedOut = reason instanceof Error && reason.name === 'TimeoutError';
    // The fix of the wait that was cut short (not of a method that failed before it).
    const verdict: Verdict = {
      status: 'unreachable',
      method: undefined,
      operatorAction: 'check_network',
      httpStatus: null,
      message: timedOut ? `${name}: no answer within ${timeoutMs} ms` : `${name}: probe cancelled`,
      fix: fixFor(name, 'check_network'),
    };
    // Cut short while a session was getting its cookies: the wait was on the operator's
    // browser (or the renewal URL), not on the API; say so, and what to look at.
    const method = progress.method;
    if (timedOut && progress.phase === 'credentials' && method?.name === 'session') {
      verdict.message += ' while the session method was getting its cookies (the Chrome DevTools visit or the renewal URL)';
      verdict.fix = method.fixFor?.('check_network') ?? verdict.fix;
    }
    return verdict;
  }
  if (err instanceof LatchkeyError) {
    if (err.operatorAction === 'check_network' || (!err.operatorAction && err.exitCode === ExitCode.unreachable)) {
      return { status: 'unreachable', method: undefined, operatorAction: 'check_network', httpStatus: null, message: err.message, fix: err.fix ?? fixFor(name, 'check_network') };
    }
    const action = err.operatorAction ?? 'fix_config';
    return { status: 'action_required', method: undefined, operatorAction: action, httpStatus: null, message: err.message, fix: err.fix ?? fixFor(name, action) };
  }
  return { status: 'unreachable', method: undefined, operatorAction: 'check_network', httpStatus: null, message: `${name}: ${networkErrorText(err, ctx.source.probe?.url)}`, fix: fixFor(name, 'check_network') };
}

