import * as oauth from 'oauth4webapi';
import { LatchkeyError, ExitCode } from '../core/errors.js';
import type { LoginContext } from '../context.js';
import type { AuthorizationServerContext } from './authorization-server.js';
import { ORIGINAL_STATUS_HEADER } from '../oauth/endpoint.js';
import { describeNetworkError } from '../net/describe-network-error.js';
import { sanitizeRemoteText } from '../core/sanitize.js';

/** How a login obtained its grant. */
export type LoginFlow = 'authorization_code' | 'device_code';

/** What a successful login stored (never the tokens themselves). */
export interface LoginResult {
  source: string;
  flow: LoginFlow;
  hasRefreshToken: boolean;
  /** Milliseconds since the epoch; absent when the IdP gave no `expires_in`. */
  expiresAt?: number;
  scope?: string;
  /** The issuer whose ID token was validated, when there was one. */
  issuer?: string;
}

/**
 * Stores the grant a login obtained, under the source's lock (through
 * {@link LoginContext.installGrant}), with the endpoint and client it belongs to. Only the fields
 * a grant needs are passed on; the ID token is validated by the caller and not stored.
 */
export async function installLoginGrant(lk: LoginContext, ctx: AuthorizationServerContext, flow: LoginFlow, response: oauth.TokenEndpointResponse): Promise<LoginResult> {
  const grant = await lk.installGrant(
    ctx.source,
    {
      access_token: response.access_token,
      ...(typeof response.refresh_token === 'string' ? { refresh_token: response.refresh_token } : {}),
      ...(typeof response.expires_in === 'number' ? { expires_in: response.expires_in } : {}),
      ...(typeof response.scope === 'string' ? { scope: response.scope } : {}),
      token_type: response.token_type,
    },
    { tokenEndpoint: ctx.as.token_endpoint, issuer: ctx.issuerKnown ? ctx.as.issuer : undefined, clientId: ctx.clientId },
  );
  const result: LoginResult = { source: ctx.source, flow, hasRefreshToken: grant.refreshToken !== undefined };
  if (grant.expiresAt !== undefined) result.expiresAt = grant.expiresAt;
  if (grant.scope !== undefined) result.scope = grant.scope;
  if (ctx.issuerKnown && typeof response.id_token === 'string') result.issuer = ctx.as.issuer;
  return result;
}

/** A failed login: exit 4 (a person must act), the fix is to log in again. */
export function loginFailed(source: string, message: string, options: { exitCode?: ExitCode; operatorAction?: 'relogin' | 'fix_config' | 'check_network' } = {}): LatchkeyError {
  const operatorAction = options.operatorAction ?? 'relogin';
  return new LatchkeyError(operatorAction === 'check_network' ? 'LK_UNREACHABLE' : 'LK_LOGIN_FAILED', message, {
    source,
    operatorAction,
    exitCode: options.exitCode ?? (operatorAction === 'check_network' ? ExitCode.unreachable : operatorAction === 'fix_config' ? ExitCode.usage : ExitCode.actionRequired),
  });
}

/**
 * Maps whatever a login's token-endpoint exchange threw to a LatchkeyError. The message names
 * the failed check (from oauth4webapi's stable error codes), never a token, code or verifier;
 * the raw error is not attached as `cause` because oauth4webapi's errors carry the response
 * body (tokens included).
 */
export function classifyLoginTokenError(err: unknown, source: string, what: string, signal?: AbortSignal): LatchkeyError {
  if (err instanceof LatchkeyError) {
    if (err.code === 'LK_CONFIG_INVALID' || err.code === 'LK_INSECURE_ENDPOINT' || err.code === 'LK_LOGIN_FAILED') return err;
    if (err.code === 'LK_TOKEN_ENDPOINT') return loginFailed(source, `${what}: ${err.message}; nothing was stored`);
    return err;
  }
  if (signal?.aborted) return loginFailed(source, `login cancelled; nothing was stored`);
  if (err instanceof oauth.ResponseBodyError) {
    const desc = err.error_description ? `: ${sanitizeRemoteText(err.error_description)}` : '';
    const error = sanitizeRemoteText(err.error, 64);
    if (err.status >= 500) {
      return loginFailed(source, `${what}: the IdP answered HTTP ${err.status} ${error}${desc}; nothing was stored, try again later`, { operatorAction: 'check_network' });
    }
    if (err.error === 'invalid_client' || err.error === 'unauthorized_client') {
      return loginFailed(source, `${what}: the IdP rejected the client: ${error}${desc} (check sources.${source}.oauth.clientId / clientSecret / clientAuth); nothing was stored`, {
        operatorAction: 'fix_config',
      });
    }
    return loginFailed(source, `${what}: the IdP refused it: ${error}${desc} (HTTP ${sentStatus(err)}); nothing was stored`);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return loginFailed(source, `${what}: the IdP rejected the client's authentication (HTTP ${err.status}); check sources.${source}.oauth.clientSecret; nothing was stored`, {
      operatorAction: 'fix_config',
    });
  }
  if (err instanceof oauth.OperationProcessingError) {
    const claim = claimOf(err);
    if (claim === 'nonce') {
      return loginFailed(
        source,
        `${what}: the ID token's nonce does not match this login (the authorization code was not issued for this login: a replayed or injected code); nothing was stored`,
      );
    }
    if (err.code === oauth.JWT_CLAIM_COMPARISON || err.code === oauth.JWT_TIMESTAMP_CHECK) {
      return loginFailed(source, `${what}: the ID token failed validation: ${sanitizeRemoteText(err.message)}${claim ? ` (claim "${claim}")` : ''}; nothing was stored`);
    }
    return loginFailed(source, `${what}: the token endpoint's answer is not a valid token response (${sanitizeRemoteText(err.message)}); nothing was stored`);
  }
  if (err instanceof oauth.UnsupportedOperationError) {
    return loginFailed(source, `${what}: the token endpoint's answer is not usable (${sanitizeRemoteText(err.message)}); nothing was stored`);
  }
  const e = err as Error & { cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') {
    return loginFailed(source, `${what}: timed out waiting for the IdP; nothing was stored`, { operatorAction: 'check_network' });
  }
  return loginFailed(source, `${what}: cannot reach the IdP: ${sanitizeRemoteText(describeNetworkError(err), 160)}; nothing was stored`, { operatorAction: 'check_network' });
}

function claimOf(err: oauth.OperationProcessingError): string | undefined {
  const cause = err.cause as { claim?: unknown } | undefined;
  return typeof cause?.claim === 'string' ? cause.claim : undefined;
}

/** Marks a response re-labelled by {@link errorIn200AsError}, so messages quote the status the IdP sent. */


/** The HTTP status the IdP really answered with. */
function sentStatus(err: oauth.ResponseBodyError): number {
  const original = Number(err.response.headers.get(ORIGINAL_STATUS_HEADER));
  return Number.isInteger(original) && original > 0 ? original : err.status;
}

export { withoutIdToken, errorIn200AsError, RECOGNIZED_TOKEN_TYPES, withTimeout } from '../oauth/endpoint.js';
