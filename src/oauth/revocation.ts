import * as oauth from 'oauth4webapi';
import { LatchkeyError, ExitCode } from '../errors.js';
import type { Latchkey } from '../latchkey.js';
import type { Secret } from '../secret.js';
import { resolveAuthorizationServer, type AuthorizationServerContext } from './authorization-server.js';
import { requestOptions, type FetchLike } from './endpoint.js';
import { withTimeout } from './login-grant.js';
import { sanitizeRemoteText } from '../sanitize.js';
import { DEFAULT_TOKEN_TIMEOUT_MS } from './refresh-error.js';
import { describeNetworkError } from '../net/describe-network-error.js';

/** Why a revocation failed: `transient` (network, timeout, 5xx) or `rejected` (the IdP said no). */
export type RevocationFailureKind = 'transient' | 'rejected';

export class RevocationError extends LatchkeyError {
  readonly kind: RevocationFailureKind;
  constructor(kind: RevocationFailureKind, message: string, source?: string) {
    super(kind === 'transient' ? 'LK_UNREACHABLE' : 'LK_TOKEN_ENDPOINT', message, {
      source,
      exitCode: kind === 'transient' ? ExitCode.unreachable : ExitCode.usage,
      operatorAction: kind === 'transient' ? 'check_network' : 'fix_config',
    });
    this.kind = kind;
  }
}

/**
 * Token revocation (RFC 7009 §2.1) through oauth4webapi: sends `token` with its
 * `token_type_hint` to the revocation endpoint, authenticated as the client. An unknown or
 * already invalid token is a success (§2.2: the server answers 200). Throws
 * {@link RevocationError}; messages never contain the token.
 */
export async function revokeToken(
  ctx: AuthorizationServerContext,
  fetchImpl: FetchLike,
  token: Secret,
  tokenTypeHint: 'refresh_token' | 'access_token',
  options: { timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<void> {
  const endpoint = ctx.as.revocation_endpoint;
  if (!endpoint) throw new RevocationError('rejected', `source "${ctx.source}": the IdP offers no revocation endpoint`, ctx.source);
  const timeoutMs = options.timeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
  try {
    const reqOptions = requestOptions(new URL(endpoint), fetchImpl, timeoutMs);
    reqOptions.signal = withTimeout(timeoutMs, options.signal);
    const response = await oauth.revocationRequest(ctx.as, ctx.client, ctx.clientAuth, token.reveal(), {
      ...reqOptions,
      additionalParameters: { token_type_hint: tokenTypeHint },
    });
    await oauth.processRevocationResponse(response);
  } catch (err) {
    throw classifyRevocationError(err, ctx.source, tokenTypeHint);
  }
}

function classifyRevocationError(err: unknown, source: string, hint: string): RevocationError {
  const what = `revoking the ${hint.replace('_', ' ')}`;
  if (err instanceof RevocationError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    const desc = err.error_description ? `: ${sanitizeRemoteText(err.error_description)}` : '';
    const kind = err.status >= 500 ? 'transient' : 'rejected';
    return new RevocationError(kind, `${what} failed: the IdP answered HTTP ${err.status} ${sanitizeRemoteText(err.error, 64)}${desc}`, source);
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    return new RevocationError('rejected', `${what} failed: the IdP rejected the client's authentication (HTTP ${err.status})`, source);
  }
  if (err instanceof oauth.OperationProcessingError) {
    const status = err.cause instanceof Response ? err.cause.status : undefined;
    const kind = status !== undefined && status >= 500 ? 'transient' : 'rejected';
    return new RevocationError(kind, `${what} failed: unexpected answer from the revocation endpoint${status ? ` (HTTP ${status})` : ''}: ${sanitizeRemoteText(err.message)}`, source);
  }
  if (err instanceof LatchkeyError) {
    if (err.code === 'LK_CONFIG_INVALID' || err.code === 'LK_INSECURE_ENDPOINT') throw err;
    return new RevocationError('transient', `${what} failed: ${err.message}`, source);
  }
  const e = err as Error & { cause?: { code?: string } };
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new RevocationError('transient', `${what} timed out waiting for the IdP`, source);
  return new RevocationError('transient', `${what} failed: cannot reach the IdP: ${sanitizeRemoteText(describeNetworkError(err), 160)}`, source);
}

/** What {@link logout} did. */
export interface LogoutResult {
  source: string;
  /** Whether a grant was stored when logout started. */
  hadGrant: boolean;
  /** Whether the stored grant was removed. */
  removed: boolean;
  /**
   * `revoked`: the IdP revoked the tokens; `not_offered`: the IdP has no revocation endpoint
   * (removed locally only); `failed_forced`: revocation failed and `force` removed it anyway;
   * `none`: there was nothing to revoke.
   */
  revocation: 'revoked' | 'not_offered' | 'failed_forced' | 'none';
  revoked: { refreshToken: boolean; accessToken: boolean };
  revocationEndpoint?: string;
  /** Problems that did not stop the logout (e.g. the access token could not be revoked). */
  warnings: string[];
}

export interface LogoutOptions {
  /** Remove the grant locally even when revocation at the IdP fails. */
  force?: boolean;
  signal?: AbortSignal;
}

/**
 * Logs a source out: revokes its refresh token, then its access token, at the IdP's
 * revocation endpoint (RFC 7009; from the config or discovery), then removes the stored grant.
 *
 * Revocation runs under the source's lock, so it revokes the refresh token that is current
 * (a concurrent refresh cannot rotate it in between). When revocation fails (the IdP is
 * unreachable or refuses, or the client secret does not resolve) the grant is kept and a
 * {@link LatchkeyError} is thrown (exit 3 when transient), unless `force` is set: then the
 * grant is removed locally and the failure is reported in {@link LogoutResult.warnings}.
 */
export async function logout(lk: Latchkey, source: string, options: LogoutOptions = {}): Promise<LogoutResult> {
  const src = lk.source(source);
  const result: LogoutResult = { source, hadGrant: false, removed: false, revocation: 'none', revoked: { refreshToken: false, accessToken: false }, warnings: [] };
  const initial = await lk.store.read(source);
  if (!initial?.grant) return result;
  result.hadGrant = true;

  let ctx: AuthorizationServerContext | undefined;
  let failure: LatchkeyError | undefined;
  if (src.oauth) {
    try {
      ctx = await resolveAuthorizationServer(src, {
        fetch: lk.fetchImpl,
        env: lk.env,
        require: [],
        // Without a configured revocation endpoint only discovery can tell whether there is one.
        discoveryRequired: !src.oauth.revocationEndpoint && !!src.oauth.issuer,
        clientIdOverride: initial.grant.clientId,
      });
    } catch (err) {
      if (!(err instanceof LatchkeyError)) throw err;
      // Unreachable discovery, or a client secret that does not resolve: revocation is
      // impossible right now; --force may still remove the grant locally.
      failure =
        err.exitCode === ExitCode.unreachable
          ? new RevocationError('transient', `cannot find the revocation endpoint: ${err.message}`, source)
          : new LatchkeyError(err.code, `cannot revoke: ${err.message}`, { source, exitCode: err.exitCode, operatorAction: err.operatorAction ?? 'fix_config' });
    }
  }

  if (ctx && !ctx.as.revocation_endpoint) {
    result.revocation = 'not_offered';
  } else if (ctx) {
    result.revocationEndpoint = ctx.as.revocation_endpoint;
    const endpointCtx = ctx;
    await lk.store.withLock(source, async (tx) => {
      const rec = await tx.read(source);
      const grant = rec?.grant;
      if (!grant) return;
      if (grant.refreshToken) {
        try {
          await revokeToken(endpointCtx, lk.fetchImpl, grant.refreshToken, 'refresh_token', { signal: options.signal });
          result.revoked.refreshToken = true;
        } catch (err) {
          if (!(err instanceof RevocationError)) throw err;
          failure = err;
          return;
        }
      }
      try {
        await revokeToken(endpointCtx, lk.fetchImpl, grant.accessToken, 'access_token', { signal: options.signal });
        result.revoked.accessToken = true;
      } catch (err) {
        if (!(err instanceof RevocationError)) throw err;
        // With the refresh token revoked, RFC 7009 §2.1 says the server SHOULD drop the grant's
        // access tokens too; some servers cannot revoke access tokens (unsupported_token_type).
        if (result.revoked.refreshToken) result.warnings.push(`${err.message} (the refresh token was revoked)`);
        else failure = err;
      }
    });
    if (!failure) result.revocation = result.revoked.refreshToken || result.revoked.accessToken ? 'revoked' : 'none';
  } else if (!failure) {
    result.revocation = 'not_offered';
  }

  if (failure) {
    if (!options.force) {
      throw new LatchkeyError(failure.code, `${failure.message}; the grant for "${source}" was kept`, {
        source,
        exitCode: failure.exitCode,
        operatorAction: failure.operatorAction,
        fix: `retry \`latchkey logout ${source}\`, or \`latchkey logout ${source} --force\` to remove it locally (it then stays valid at the IdP until it expires)`,
      });
    }
    result.revocation = 'failed_forced';
    result.warnings.push(failure.message);
  }
  result.removed = await lk.removeGrant(source);
  return result;
}
