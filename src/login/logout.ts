import { LatchkeyError, ExitCode } from '../core/errors.js';
import type { LoginContext } from '../context.js';
import { revokeToken, RevocationError } from '../oauth/revocation.js';
import { resolveAuthorizationServer, type AuthorizationServerContext } from './authorization-server.js';

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

/** Options of {@link logout}. */
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
export async function logout(lk: LoginContext, source: string, options: LogoutOptions = {}): Promise<LogoutResult> {
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
