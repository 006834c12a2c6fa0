import * as oauth from 'oauth4webapi';
import { LatchkeyError, ExitCode } from '../core/errors.js';
import type { LoginContext } from '../context.js';
import { includesOpenIdScope, resolveAuthorizationServer, type AuthorizationServerContext } from './authorization-server.js';
import { requestOptions } from '../oauth/endpoint.js';
import {
  classifyLoginTokenError,
  errorIn200AsError,
  installLoginGrant,
  loginFailed,
  RECOGNIZED_TOKEN_TYPES,
  withoutIdToken,
  withTimeout,
  type LoginResult,
} from './login-grant.js';
import { startLoopbackRedirect, type ReceivedCallback } from './loopback-redirect.js';
import { DEFAULT_TOKEN_TIMEOUT_MS } from '../oauth/refresh-error.js';
import { sanitizeRemoteText } from '../core/sanitize.js';

/** How long a login waits for the browser by default (5 minutes). */
export const DEFAULT_LOGIN_TIMEOUT_MS = 300_000;

/** Authorization request parameters Latchkey sets itself; `oauth.authorizationParams` may not override them. */
const RESERVED_AUTHORIZATION_PARAMS = new Set(['client_id', 'response_type', 'redirect_uri', 'state', 'nonce', 'code_challenge', 'code_challenge_method', 'scope']);

/** Options of {@link loginWithAuthorizationCode}: how the browser is opened, where the URL is shown, the timeout, a cancel signal. */
export interface AuthorizationCodeLoginOptions {
  /**
   * Hands the authorization URL to a browser. When it rejects the login stops (the URL was
   * already given to {@link onUrl}). Without it, nothing is opened: the caller shows the URL.
   */
  openUrl?: (url: string) => Promise<void>;
  /** Called once with the authorization URL, before {@link openUrl}. */
  onUrl?: (url: string, info: { redirectUri: string; deadline: number }) => void;
  /** How long to wait for the browser to come back (default 300 s). */
  timeoutMs?: number;
  /** Aborts the login (the loopback server is closed, nothing is stored). */
  signal?: AbortSignal;
}

/**
 * Logs a source in with the authorization code grant and PKCE (RFC 6749 §4.1, RFC 7636 S256)
 * through a loopback redirect (RFC 8252 §7.3), all protocol steps through oauth4webapi:
 *
 * - the endpoints come from the config, or from discovery when `oauth.issuer` is set;
 * - the server must support S256 when it publishes `code_challenge_methods_supported`;
 * - `state` is always sent and checked; `nonce` is sent when the scope includes `openid` and
 *   the ID token is validated against it (and the issuer, audience and expiry);
 * - on success the grant is installed under the source's lock; on any failure nothing is
 *   written and an existing grant stays as it was.
 *
 * Errors are {@link LatchkeyError}s (`LK_LOGIN_FAILED`, exit code 4, action `relogin`, unless
 * the cause is the config or the network); no message contains the code, the verifier or a token.
 */
export async function loginWithAuthorizationCode(lk: LoginContext, source: string, options: AuthorizationCodeLoginOptions = {}): Promise<LoginResult> {
  const src = lk.source(source);
  const ctx = await resolveAuthorizationServer(src, { fetch: lk.fetchImpl, env: lk.env, require: ['authorization', 'token'] });
  checkS256Supported(ctx);
  const openid = includesOpenIdScope(ctx.scope);
  if (openid && !ctx.issuerKnown) {
    throw new LatchkeyError(
      'LK_CONFIG_INVALID',
      `source "${source}": the scope includes "openid" but no issuer is configured, so the ID token cannot be validated; set sources.${source}.oauth.issuer (or \`latchkey add ${source} --issuer <url> ... --force\`)`,
      { source, operatorAction: 'fix_config' },
    );
  }
  const extraParams = checkedAuthorizationParams(ctx);

  const timeoutMs = options.timeoutMs ?? DEFAULT_LOGIN_TIMEOUT_MS;
  const deadline = lk.clock.now() + timeoutMs;
  const codeVerifier = oauth.generateRandomCodeVerifier();
  const codeChallenge = await oauth.calculatePKCECodeChallenge(codeVerifier);
  const state = oauth.generateRandomState();
  const nonce = openid ? oauth.generateRandomNonce() : undefined;

  const loopback = await startLoopbackRedirect();
  let callback: ReceivedCallback | undefined;
  try {
    const url = new URL(ctx.as.authorization_endpoint!);
    for (const [k, v] of Object.entries(extraParams)) url.searchParams.set(k, v);
    url.searchParams.set('client_id', ctx.clientId);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('redirect_uri', loopback.redirectUri);
    if (ctx.scope) url.searchParams.set('scope', ctx.scope);
    url.searchParams.set('state', state);
    if (nonce) url.searchParams.set('nonce', nonce);
    url.searchParams.set('code_challenge', codeChallenge);
    url.searchParams.set('code_challenge_method', 'S256');

    options.onUrl?.(url.href, { redirectUri: loopback.redirectUri, deadline });
    const waitSignal = withTimeout(timeoutMs, options.signal);
    const opened = options.openUrl ? options.openUrl(url.href) : Promise.resolve();
    // A browser launcher that fails stops the login at once instead of at the timeout.
    const launchFailed = new Promise<never>((_resolve, reject) => {
      opened.catch((err: unknown) => {
        reject(
          new LatchkeyError('LK_LOGIN_FAILED', `could not open the browser: ${sanitizeRemoteText((err as Error)?.message ?? String(err))}; nothing was stored`, {
            source,
            exitCode: ExitCode.usage,
          }),
        );
      });
    });
    // Handled by the race below; a launcher failing after the callback arrived changes nothing.
    launchFailed.catch(() => undefined);
    try {
      callback = await Promise.race([loopback.waitForCallback(waitSignal), launchFailed]);
    } catch (err) {
      if (err instanceof LatchkeyError) throw err;
      if (options.signal?.aborted) throw loginFailed(source, 'login cancelled; nothing was stored');
      throw loginFailed(
        source,
        `login timed out after ${Math.round(timeoutMs / 1000)} s waiting for the browser to return to ${loopback.redirectUri}; nothing was stored (run it again, with --timeout <seconds> for more time)`,
      );
    }

    const params = validateCallback(ctx, callback.params, state);
    let tokenResponse: oauth.TokenEndpointResponse;
    try {
      const tokenUrl = new URL(ctx.as.token_endpoint!);
      const reqOptions = requestOptions(tokenUrl, lk.fetchImpl, DEFAULT_TOKEN_TIMEOUT_MS);
      reqOptions.signal = withTimeout(DEFAULT_TOKEN_TIMEOUT_MS, options.signal);
      const response = await errorIn200AsError(await oauth.authorizationCodeGrantRequest(ctx.as, ctx.client, ctx.clientAuth, params, loopback.redirectUri, codeVerifier, reqOptions));
      const usable = ctx.issuerKnown ? response : await withoutIdToken(response);
      tokenResponse = await oauth.processAuthorizationCodeResponse(ctx.as, ctx.client, usable, {
        recognizedTokenTypes: RECOGNIZED_TOKEN_TYPES,
        ...(openid ? { expectedNonce: nonce, requireIdToken: true } : {}),
      });
    } catch (err) {
      throw classifyLoginTokenError(err, source, 'exchanging the authorization code failed', options.signal);
    }
    const result = await installLoginGrant(lk, ctx, 'authorization_code', tokenResponse);
    callback.respond({ ok: true, source });
    return result;
  } catch (err) {
    callback?.respond({ ok: false, message: err instanceof LatchkeyError ? err.message : 'Latchkey could not complete the sign-in' });
    throw err;
  } finally {
    await loopback.close();
  }
}

/** RFC 9700 §2.1.1: PKCE with S256; a server that publishes its methods must list S256. */
function checkS256Supported(ctx: AuthorizationServerContext): void {
  const methods = ctx.codeChallengeMethods;
  if (methods !== undefined && !methods.includes('S256')) {
    throw new LatchkeyError(
      'LK_CONFIG_INVALID',
      `source "${ctx.source}": the authorization server does not support PKCE with S256 (code_challenge_methods_supported: ${methods.map((m) => sanitizeRemoteText(m, 32)).join(', ') || 'none'}); Latchkey logs in only with S256`,
      { source: ctx.source, operatorAction: 'fix_config' },
    );
  }
}

function checkedAuthorizationParams(ctx: AuthorizationServerContext): Record<string, string> {
  const params = ctx.authorizationParams ?? {};
  for (const key of Object.keys(params)) {
    if (RESERVED_AUTHORIZATION_PARAMS.has(key)) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `source "${ctx.source}": oauth.authorizationParams may not set "${key}" (Latchkey sets it${key === 'scope' ? '; use oauth.scope' : ''})`, {
        source: ctx.source,
        operatorAction: 'fix_config',
      });
    }
  }
  return params;
}

/**
 * Validates the authorization response with oauth4webapi (`state`, RFC 9207 `iss`, error
 * responses) and checks there is a code. Without a known issuer an `iss` parameter cannot be
 * checked and is dropped.
 */
function validateCallback(ctx: AuthorizationServerContext, received: URLSearchParams, state: string): URLSearchParams {
  const params = new URLSearchParams(received);
  if (!ctx.issuerKnown) params.delete('iss');
  let validated: URLSearchParams;
  try {
    validated = oauth.validateAuthResponse(ctx.as, ctx.client, params, state);
  } catch (err) {
    if (err instanceof oauth.AuthorizationResponseError) {
      const desc = err.error_description ? `: ${sanitizeRemoteText(err.error_description)}` : '';
      const denied = err.error === 'access_denied';
      return failWith(
        ctx.source,
        `${denied ? 'the sign-in was denied' : 'the IdP returned an error'} (${sanitizeRemoteText(err.error, 64)}${desc}); nothing was stored`,
      );
    }
    if (err instanceof oauth.OperationProcessingError) {
      if (/state/.test(err.message)) {
        return failWith(
          ctx.source,
          received.has('state')
            ? 'the authorization response carries a state that does not belong to this login (a stale tab or a forged request); nothing was stored'
            : 'the authorization response has no state parameter (a forged request or a broken IdP); nothing was stored',
        );
      }
      if (/"iss"/.test(err.message)) {
        return failWith(ctx.source, `the authorization response names a different issuer than ${ctx.as.issuer} (a mix-up attack or a misconfigured issuer); nothing was stored`);
      }
      return failWith(ctx.source, `the authorization response is invalid (${sanitizeRemoteText(err.message)}); nothing was stored`);
    }
    return failWith(ctx.source, `the authorization response is not usable (${sanitizeRemoteText((err as Error)?.message ?? 'unknown error')}); nothing was stored`);
  }
  const codes = validated.getAll('code');
  if (codes.length !== 1 || codes[0] === '') {
    return failWith(ctx.source, `the authorization response has ${codes.length > 1 ? 'more than one' : 'no'} authorization code; nothing was stored`);
  }
  return validated;
}

function failWith(source: string, message: string): never {
  throw loginFailed(source, message);
}
