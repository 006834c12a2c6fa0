import * as oauth from 'oauth4webapi';
import { abortableWait } from '../core/wait.js';
import { LatchkeyError } from '../core/errors.js';
import type { LoginContext } from '../context.js';
import { resolveAuthorizationServer, type AuthorizationServerContext } from './authorization-server.js';
import { requestOptions } from '../oauth/endpoint.js';
import { classifyLoginTokenError, errorIn200AsError, installLoginGrant, loginFailed, RECOGNIZED_TOKEN_TYPES, withoutIdToken, withTimeout, type LoginResult } from './login-grant.js';
import { DEFAULT_TOKEN_TIMEOUT_MS } from '../oauth/refresh-error.js';

/** What the person must do to approve a device login (RFC 8628 §3.3). */
export interface DevicePrompt {
  /** The code the person types at {@link verificationUri}. */
  userCode: string;
  verificationUri: string;
  /** The same page with the code filled in, when the server offers it. */
  verificationUriComplete?: string;
  /** Seconds until the code expires. */
  expiresIn: number;
  /** Milliseconds since the epoch (by the Latchkey clock) when the code expires. */
  expiresAt: number;
  /** Seconds between polls, as the server asked (RFC 8628 §3.2, default 5). */
  interval: number;
}

/** Options of {@link loginWithDeviceCode}: where the prompt and the polling state go, a cancel signal. */
export interface DeviceCodeLoginOptions {
  /** Shows the user code and verification URI (called once, before polling starts). */
  onPrompt?: (prompt: DevicePrompt) => void;
  /** Called on every poll that is still pending, with the interval now in force (seconds). */
  onPoll?: (state: { pending: 'authorization_pending' | 'slow_down' | 'transient'; interval: number }) => void;
  /** Aborts polling (nothing is stored). */
  signal?: AbortSignal;
  /** Waits between polls; injectable so tests need not sleep (default: a real timer). */
  wait?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

/** RFC 8628 §3.2: the interval when the server gives none. */
const DEFAULT_INTERVAL_S = 5;
/** RFC 8628 §3.5: `slow_down` adds 5 seconds to this and every later interval. */
const SLOW_DOWN_STEP_S = 5;
/** Consecutive network failures tolerated while polling (each doubles the interval, §3.5). */
const MAX_TRANSIENT_POLL_FAILURES = 3;

/**
 * Logs a source in with the device authorization grant (RFC 8628) through oauth4webapi:
 * requests a device code, shows the user code ({@link DeviceCodeLoginOptions.onPrompt}), then
 * polls the token endpoint at the server's interval (plus 5 s after each `slow_down`, or the
 * interval a `slow_down` names when that is longer: GitHub) until
 * the person approves, denies (`access_denied`), or the code expires (`expired_token`, or the
 * `expires_in` deadline). On success the grant is installed under the source's lock; on any
 * failure nothing is written.
 */
export async function loginWithDeviceCode(lk: LoginContext, source: string, options: DeviceCodeLoginOptions = {}): Promise<LoginResult> {
  const src = lk.source(source);
  const ctx = await resolveAuthorizationServer(src, { fetch: lk.fetchImpl, env: lk.env, require: ['device_authorization', 'token'] });
  const wait = options.wait ?? abortableWait;

  let authorization: oauth.DeviceAuthorizationResponse;
  try {
    const url = new URL(ctx.as.device_authorization_endpoint!);
    const reqOptions = requestOptions(url, lk.fetchImpl, DEFAULT_TOKEN_TIMEOUT_MS);
    reqOptions.signal = withTimeout(DEFAULT_TOKEN_TIMEOUT_MS, options.signal);
    const response = await oauth.deviceAuthorizationRequest(ctx.as, ctx.client, ctx.clientAuth, ctx.scope ? { scope: ctx.scope } : {}, reqOptions);
    authorization = await oauth.processDeviceAuthorizationResponse(ctx.as, ctx.client, response);
  } catch (err) {
    throw classifyLoginTokenError(err, source, 'requesting a device code failed', options.signal);
  }

  let interval = Math.max(1, authorization.interval ?? DEFAULT_INTERVAL_S);
  const expiresAt = lk.clock.now() + authorization.expires_in * 1000;
  const prompt: DevicePrompt = {
    userCode: authorization.user_code,
    verificationUri: authorization.verification_uri,
    expiresIn: authorization.expires_in,
    expiresAt,
    interval,
  };
  if (typeof authorization.verification_uri_complete === 'string') prompt.verificationUriComplete = authorization.verification_uri_complete;
  options.onPrompt?.(prompt);

  const expired = (): LatchkeyError =>
    loginFailed(source, `the device code expired before the sign-in was approved (after ${Math.round(authorization.expires_in / 60)} min); nothing was stored, run the login again`);
  let transientFailures = 0;
  for (;;) {
    const remaining = expiresAt - lk.clock.now();
    if (remaining <= 0) throw expired();
    try {
      await wait(Math.min(interval * 1000, remaining), options.signal);
    } catch {
      throw loginFailed(source, 'login cancelled; nothing was stored');
    }
    if (options.signal?.aborted) throw loginFailed(source, 'login cancelled; nothing was stored');
    if (lk.clock.now() >= expiresAt) throw expired();
    const outcome = await pollOnce(lk, ctx, authorization.device_code, options.signal);
    if (outcome.kind === 'tokens') return installLoginGrant(lk, ctx, 'device_code', outcome.response);
    if (outcome.kind === 'slow_down') {
      interval = Math.max(interval + SLOW_DOWN_STEP_S, outcome.interval ?? 0);
      transientFailures = 0;
    } else if (outcome.kind === 'transient') {
      transientFailures += 1;
      if (transientFailures > MAX_TRANSIENT_POLL_FAILURES) throw outcome.error;
      interval = Math.min(interval * 2, 60);
    } else {
      transientFailures = 0;
    }
    options.onPoll?.({ pending: outcome.kind, interval });
  }
}

type PollOutcome =
  | { kind: 'tokens'; response: oauth.TokenEndpointResponse }
  | { kind: 'authorization_pending' }
  | { kind: 'slow_down'; interval?: number }
  | { kind: 'transient'; error: LatchkeyError };

/** One device access token request (RFC 8628 §3.4) and its outcome (§3.5). */
async function pollOnce(lk: LoginContext, ctx: AuthorizationServerContext, deviceCode: string, signal: AbortSignal | undefined): Promise<PollOutcome> {
  const source = ctx.source;
  try {
    const url = new URL(ctx.as.token_endpoint!);
    const reqOptions = requestOptions(url, lk.fetchImpl, DEFAULT_TOKEN_TIMEOUT_MS);
    reqOptions.signal = withTimeout(DEFAULT_TOKEN_TIMEOUT_MS, signal);
    const response = await errorIn200AsError(await oauth.deviceCodeGrantRequest(ctx.as, ctx.client, ctx.clientAuth, deviceCode, reqOptions));
    const usable = ctx.issuerKnown ? response : await withoutIdToken(response);
    return { kind: 'tokens', response: await oauth.processDeviceCodeResponse(ctx.as, ctx.client, usable, { recognizedTokenTypes: RECOGNIZED_TOKEN_TYPES }) };
  } catch (err) {
    if (err instanceof oauth.ResponseBodyError) {
      switch (err.error) {
        case 'authorization_pending':
          return { kind: 'authorization_pending' };
        case 'slow_down': {
          // GitHub names the new interval in the error response.
          const asked = (err.cause as { interval?: unknown }).interval;
          return typeof asked === 'number' && Number.isFinite(asked) && asked > 0 ? { kind: 'slow_down', interval: Math.min(asked, 300) } : { kind: 'slow_down' };
        }
        case 'access_denied':
          throw loginFailed(source, 'the sign-in was denied on the verification page (access_denied); nothing was stored');
        case 'expired_token':
          throw loginFailed(source, 'the device code expired before the sign-in was approved (expired_token); nothing was stored, run the login again');
      }
    }
    const failure = classifyLoginTokenError(err, source, 'polling for the device login failed', signal);
    if (failure.code === 'LK_UNREACHABLE' && !signal?.aborted) return { kind: 'transient', error: failure };
    throw failure;
  }
}
