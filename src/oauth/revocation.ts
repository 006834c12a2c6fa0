import * as oauth from 'oauth4webapi';
import { LatchkeyError, ExitCode } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import type { AuthorizationServerContext } from './server-context.js';
import { requestOptions, withTimeout, type FetchLike } from './endpoint.js';
import { sanitizeRemoteText } from '../core/sanitize.js';
import { DEFAULT_TOKEN_TIMEOUT_MS } from './refresh-error.js';
import { describeNetworkError } from '../net/describe-network-error.js';

/** Why a revocation failed: `transient` (network, timeout, 5xx) or `rejected` (the IdP said no). */
export type RevocationFailureKind = 'transient' | 'rejected';

/** A revocation (RFC 7009) that failed: `transient` (network, timeout, 5xx) or `rejected` (the IdP said no). */
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
