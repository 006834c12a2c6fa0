import * as oauth from 'oauth4webapi';
import { LatchkeyError } from '../errors.js';
import { DEFAULT_TOKEN_TIMEOUT_MS, RefreshError } from './refresh-error.js';
export { RefreshError, type RefreshFailureKind } from './refresh-error.js';
import { Secret } from '../secret.js';
import { sanitizeRemoteText } from '../sanitize.js';
import { checkEndpoint, errorIn200AsError, RECOGNIZED_TOKEN_TYPES, requestOptions, withoutIdToken, type FetchLike } from './endpoint.js';

export type ClientAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post';

export interface ClientParams {
  clientId: string;
  clientSecret?: Secret;
  clientAuth?: ClientAuthMethod;
}

export interface TokenEndpointParams extends ClientParams {
  tokenEndpoint: string;
  /** The issuer identifier when known (needed to validate an ID token in the response). */
  issuer?: string;
  fetch: FetchLike;
  timeoutMs?: number;
}

/** A validated token response. */
export interface TokenSet {
  accessToken: Secret;
  refreshToken?: Secret;
  tokenType: string;
  /** Seconds, when the IdP said. */
  expiresIn?: number;
  scope?: string;
}


export function clientAuthentication(p: ClientParams): oauth.ClientAuth {
  const method = p.clientAuth ?? (p.clientSecret ? 'client_secret_basic' : 'none');
  if (method === 'none') return oauth.None();
  if (!p.clientSecret) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `client authentication ${method} needs a clientSecret reference`);
  }
  return method === 'client_secret_post' ? oauth.ClientSecretPost(p.clientSecret.reveal()) : oauth.ClientSecretBasic(p.clientSecret.reveal());
}

export function authorizationServerFor(p: { tokenEndpoint: string; issuer?: string }): oauth.AuthorizationServer {
  return { issuer: p.issuer ?? new URL(p.tokenEndpoint).origin, token_endpoint: p.tokenEndpoint };
}

/**
 * The refresh_token grant (RFC 6749 §6) through oauth4webapi. Throws {@link RefreshError}:
 * `invalid_grant` (the refresh token is dead), `rejected` (the IdP refused the client or
 * request), or `transient` (network, timeout, 5xx, a body that is not a token response).
 */
export async function refreshTokenGrant(params: TokenEndpointParams, refreshToken: Secret): Promise<TokenSet> {
  const url = checkEndpoint(params.tokenEndpoint, 'token endpoint');
  const as = authorizationServerFor(params);
  const client: oauth.Client = { client_id: params.clientId };
  const auth = clientAuthentication(params);
  const timeoutMs = params.timeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
  try {
    // Some IdPs (GitHub, Slack) answer refresh errors with HTTP 200 and {"error": …}.
    const response = await errorIn200AsError(await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken.reveal(), requestOptions(url, params.fetch, timeoutMs)));
    const usable = params.issuer ? response : await withoutIdToken(response);
    return tokenSetFrom(await oauth.processRefreshTokenResponse(as, client, usable, { recognizedTokenTypes: RECOGNIZED_TOKEN_TYPES }));
  } catch (err) {
    // The IdP's text is quoted in the message: sanitizeRemoteText redacts every secret this
    // process holds (the refresh token, the client secret, any other) before it cuts.
    throw classifyTokenEndpointError(err, 'refresh');
  }
}

export function tokenSetFrom(r: oauth.TokenEndpointResponse): TokenSet {
  const set: TokenSet = { accessToken: new Secret(r.access_token), tokenType: r.token_type ?? 'bearer' };
  if (typeof r.refresh_token === 'string' && r.refresh_token !== '') set.refreshToken = new Secret(r.refresh_token);
  if (typeof r.expires_in === 'number' && Number.isFinite(r.expires_in) && r.expires_in > 0) set.expiresIn = r.expires_in;
  if (typeof r.scope === 'string') set.scope = r.scope;
  return set;
}


/** Maps whatever a token-endpoint exchange threw to a RefreshError. Never includes token values. */
export function classifyTokenEndpointError(err: unknown, op: string): RefreshError {
  if (err instanceof RefreshError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    const desc = err.error_description ? `: ${sanitizeRemoteText(err.error_description)}` : '';
    // GitHub says bad_refresh_token for a dead refresh token; it means what invalid_grant means.
    if (err.error === 'invalid_grant' || err.error === 'bad_refresh_token' || err.error === 'invalid_refresh_token') {
      return new RefreshError('invalid_grant', `${op} rejected by the IdP: ${err.error}${desc}`);
    }
    if (err.status >= 500) return new RefreshError('transient', `${op} failed: IdP answered ${err.status} ${err.error}`);
    return new RefreshError('rejected', `${op} rejected by the IdP: ${err.error}${desc} (HTTP ${err.status})`);
  }
  if (err instanceof oauth.OperationProcessingError) {
    const status = statusOf(err);
    return new RefreshError('transient', `${op} failed: the token endpoint's response is not a valid token response${status ? ` (HTTP ${status})` : ''}: ${sanitizeRemoteText(err.message)}`);
  }
  if (err instanceof LatchkeyError) {
    if (err.code === 'LK_CONFIG_INVALID' || err.code === 'LK_INSECURE_ENDPOINT') throw err;
    return new RefreshError('transient', `${op} failed: ${err.message}`);
  }
  const e = err as Error;
  if (e?.name === 'TimeoutError' || e?.name === 'AbortError') return new RefreshError('transient', `${op} timed out waiting for the token endpoint`);
  // fetch's own message is "fetch failed"; what went wrong is in its cause (ECONNREFUSED, "bad port"…).
  const cause = (e as { cause?: { code?: unknown; message?: unknown } })?.cause;
  const detail = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? sanitizeRemoteText(cause.message, 100) : (e?.name ?? 'error');
  return new RefreshError('transient', `${op} failed: ${detail} ${sanitizeRemoteText(e?.message ?? String(err))}`);
}

function statusOf(err: oauth.OperationProcessingError): number | undefined {
  const cause = err.cause as { status?: number } | Response | undefined;
  if (cause instanceof Response) return cause.status;
  return typeof cause?.status === 'number' ? cause.status : undefined;
}
