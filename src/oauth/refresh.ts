import * as oauth from 'oauth4webapi';
import { readExpiresIn } from '../lifetime.js';
import { LatchkeyError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { sanitizeRemoteText } from '../core/sanitize.js';
import { clientAuthentication, clientAuthMethodOf, type ClientParams } from './client-auth.js';
import { checkEndpoint, RECOGNIZED_TOKEN_TYPES, requestOptions, ResponseTooLargeError, type FetchLike } from './endpoint.js';
import { accessTokenTimes, type AccessTokenTimes } from './jwt-claims.js';
import { DEFAULT_TOKEN_TIMEOUT_MS, RefreshError } from './refresh-error.js';
import { describeNetworkError, hostPortOf } from '../net/describe-network-error.js';
import { classifyTokenAnswer, classifyTransportError, TOKEN_ANSWERS, unusable2xx, type TokenAnswer, type TokenAnswerClass } from './token-answer.js';

export { RefreshError, type RefreshFailureKind } from './refresh-error.js';
export { clientAuthentication, type ClientAuthMethod, type ClientParams } from './client-auth.js';

export interface TokenEndpointParams extends ClientParams {
  tokenEndpoint: string;
  /** The issuer identifier when known (needed to validate an ID token in the response). */
  issuer?: string;
  fetch: FetchLike;
  timeoutMs?: number;
  /** The caller's clock (ms since the epoch), for Retry-After dates. */
  now?: () => number;
}

/** A validated token response. */
export interface TokenSet {
  accessToken: Secret;
  refreshToken?: Secret;
  tokenType: string;
  /** Seconds, when the IdP said something usable (bounded, see readExpiresIn). */
  expiresIn?: number;
  scope?: string;
  /** `exp` / `iat` of an access token that is a JWT (seconds). */
  jwt?: AccessTokenTimes;
}

/**
 * What a refresh that reached a 2xx came to: a token set, or (`rotation_unusable`) only the new
 * refresh token of an answer that is otherwise unusable, which must be persisted all the same.
 */
export type RefreshAnswer =
  | { answer: 'token' | 'token_without_refresh_token'; set: TokenSet; warnings: string[]; receivedAt: number }
  | { answer: 'rotation_unusable'; refreshToken: Secret; problem: string; warnings: string[]; receivedAt: number };

export function authorizationServerFor(p: { tokenEndpoint: string; issuer?: string }): oauth.AuthorizationServer {
  return { issuer: p.issuer ?? new URL(p.tokenEndpoint).origin, token_endpoint: p.tokenEndpoint };
}

/**
 * The refresh_token grant (RFC 6749 §6) through oauth4webapi, its answer classified by
 * src/oauth/token-answer.ts. Returns the usable part of a 2xx; throws {@link RefreshError}
 * for every other class, carrying the class, whether the refresh token may have been consumed,
 * and Retry-After. `receivedAt` is `performance.now()` when the answer arrived (the start of the
 * window in which a crash loses a rotated token).
 */
export async function refreshTokenGrant(params: TokenEndpointParams, refreshToken: Secret): Promise<RefreshAnswer> {
  try {
    return await refreshTokenGrantUnredacted(params, refreshToken);
  } catch (err) {
    // The IdP's text quoted in the message went through sanitizeRemoteText, which redacts every
    // secret this process holds (the refresh token, the client secret, the access token…) before it cuts.
    throw classifyTokenEndpointError(err, 'refresh');
  }
}

async function refreshTokenGrantUnredacted(params: TokenEndpointParams, refreshToken: Secret): Promise<RefreshAnswer> {
  const url = checkEndpoint(params.tokenEndpoint, 'token endpoint');
  const as = authorizationServerFor(params);
  const client: oauth.Client = { client_id: params.clientId };
  const auth = clientAuthentication(params);
  const timeoutMs = params.timeoutMs ?? DEFAULT_TOKEN_TIMEOUT_MS;
  let receivedAt = 0;
  const timed: FetchLike = async (input, init) => {
    const res = await params.fetch(input, init);
    receivedAt = performance.now();
    return res;
  };
  let response: Response;
  try {
    response = await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken.reveal(), requestOptions(url, timed, timeoutMs));
  } catch (err) {
    throw transportFailure(err, url);
  }
  // Already read whole (and bounded) by limitedFetch: no wait here.
  const text = await response.text();
  const answer = classifyTokenAnswer(response.status, response.headers, text, params.now?.() ?? Date.now());
  if (answer.class !== 'token' && answer.class !== 'token_without_refresh_token') throw answerFailure(answer, params);
  const warnings: string[] = [];
  const body = { ...(answer.body as Record<string, unknown>) };
  // Bounded before oauth4webapi sees it: a negative or absurd expires_in would fail its
  // validation and lose the rotation the answer carries (issue 7, items 1 and 5).
  const expiry = readExpiresIn(body.expires_in);
  if (expiry.warning) warnings.push(expiry.warning);
  if (expiry.seconds === undefined) delete body.expires_in;
  else body.expires_in = expiry.seconds;
  // Without a configured issuer an ID token cannot be validated (its `iss` has nothing to
  // match) and the grant does not need it.
  if (!params.issuer) delete body.id_token;
  let r: oauth.TokenEndpointResponse;
  try {
    const normalized = new Response(JSON.stringify(body), { status: 200, headers: { 'content-type': 'application/json' } });
    r = await oauth.processRefreshTokenResponse(as, client, normalized, { recognizedTokenTypes: RECOGNIZED_TOKEN_TYPES });
  } catch (err) {
    const unusable = unusable2xx(answer);
    const problem = `the token endpoint's answer (HTTP ${answer.status}) is not a valid token response: ${sanitizeRemoteText((err as Error)?.message ?? String(err))}`;
    if (unusable.class === 'rotation_unusable' && unusable.refreshToken !== undefined) {
      return { answer: 'rotation_unusable', refreshToken: new Secret(unusable.refreshToken), problem, warnings, receivedAt };
    }
    throw new RefreshError('transient', `refresh failed: ${problem}`, undefined, { answer: 'unusable_2xx', consumed: 'maybe' });
  }
  return { answer: answer.class, set: tokenSetFrom(r), warnings, receivedAt };
}

export function tokenSetFrom(r: oauth.TokenEndpointResponse): TokenSet {
  const set: TokenSet = { accessToken: new Secret(r.access_token), tokenType: r.token_type ?? 'bearer' };
  if (typeof r.refresh_token === 'string' && r.refresh_token !== '') set.refreshToken = new Secret(r.refresh_token);
  const expiresIn = readExpiresIn(r.expires_in).seconds;
  if (expiresIn !== undefined) set.expiresIn = expiresIn;
  if (typeof r.scope === 'string') set.scope = r.scope;
  const jwt = accessTokenTimes(r.access_token);
  if (jwt.exp !== undefined) set.jwt = jwt;
  return set;
}

/** The RefreshError for a non-2xx (or unusable) answer: the IdP's own error and description where it sent them. */
function answerFailure(answer: TokenAnswer, params: ClientParams): RefreshError {
  const row = TOKEN_ANSWERS[answer.class];
  const details = { answer: answer.class, consumed: row.consumed, ...(answer.retryAfterMs !== undefined ? { retryAfterMs: answer.retryAfterMs } : {}) };
  const kind = row.failure ?? 'transient';
  const http = `HTTP ${answer.status}`;
  const idpSaid = answer.error !== undefined ? `${answer.error}${answer.errorDescription ? `: ${sanitizeRemoteText(answer.errorDescription)}` : ''}` : undefined;
  return new RefreshError(kind, failureMessage(answer.class, http, idpSaid, answer, params), undefined, details);
}

function failureMessage(cls: TokenAnswerClass, http: string, idpSaid: string | undefined, answer: TokenAnswer, params: ClientParams): string {
  const retry = answer.retryAfterMs !== undefined ? `, Retry-After ${Math.round(answer.retryAfterMs / 1000)} s` : '';
  switch (cls) {
    case 'invalid_grant':
      return `refresh rejected by the IdP: ${idpSaid} (${http})`;
    case 'refused_without_error':
      return `refresh refused by the IdP: ${http} without an OAuth error (an empty or non-JSON body), read as a refused refresh token`;
    case 'invalid_client':
      return `the IdP refused the client's authentication (${idpSaid ?? 'no OAuth error'}, ${http}): ${clientAuthHint(params)}`;
    case 'server_error':
      return `refresh failed: the IdP answered ${http}${idpSaid ? ` ${idpSaid}` : ''}${retry} (the refresh token may have been used; it is sent again only after the cool-down)`;
    case 'retry_later':
      return `refresh failed: the IdP asked to retry later (${http}${retry})${idpSaid ? `: ${idpSaid}` : ''}`;
    case 'redirect':
      return `refresh failed: the token endpoint answered a redirect (${http}); set the source's tokenEndpoint (or issuer) to the IdP's real token endpoint`;
    case 'http_4xx':
      return `refresh failed: the token endpoint answered ${http} without an OAuth error; check the source's tokenEndpoint`;
    case 'unusable_2xx':
      return `refresh failed: the token endpoint's answer (${http}) is not a token response (the refresh token may have been used; it is sent again only after the cool-down)`;
    default:
      return `refresh rejected by the IdP: ${idpSaid ?? 'no error'} (${http})`;
  }
}

/** What to change when the IdP refuses the client (RFC 6749 §5.2 invalid_client). */
function clientAuthHint(p: ClientParams): string {
  const method = clientAuthMethodOf(p);
  if (method === 'client_secret_basic') {
    return 'check the client id and secret; if they are right, the IdP may not decode HTTP Basic credentials: send them in the body with `latchkey add <source> … --client-auth client_secret_post` ("clientAuth": "client_secret_post")';
  }
  if (method === 'none') return 'the IdP may require a client secret: add one with `latchkey add <source> … --client-secret <ref>`';
  return 'check the client id and secret, or try `--client-auth client_secret_basic`';
}

/** A fetch that threw (or an oversized answer): was the request sent, may the token be consumed? */
function transportFailure(err: unknown, url?: URL): unknown {
  if (err instanceof ResponseTooLargeError) {
    return new RefreshError('transient', `refresh failed: the token endpoint's answer (HTTP ${err.status}) ${err.message.replace(/^response /, '')}; it was not read (the refresh token may have been used; it is sent again only after the cool-down)`, undefined, {
      answer: 'oversized',
      consumed: 'maybe',
    });
  }
  if (err instanceof LatchkeyError) return err;
  const cls = classifyTransportError(err);
  // Names the token endpoint's host:port and what happened ("connection refused by 127.0.0.1:9 (ECONNREFUSED)").
  const detail = describeNetworkError(err, url);
  if (cls === 'not_sent') return new RefreshError('transient', `refresh failed: ${detail} (the request was not sent)`, undefined, { answer: 'not_sent', consumed: 'no' });
  if (cls === 'timeout_after_send') {
    return new RefreshError('transient', `refresh timed out waiting for the token endpoint${url ? ` ${hostPortOf(url)}` : ''} (the refresh token may have been used; it is sent again only after the cool-down)`, undefined, {
      answer: 'timeout_after_send',
      consumed: 'maybe',
    });
  }
  return new RefreshError('transient', `refresh failed: the connection ended before an answer: ${detail} (the refresh token may have been used; it is sent again only after the cool-down)`, undefined, {
    answer: 'reset',
    consumed: 'maybe',
  });
}

/** Maps whatever a token-endpoint exchange threw to a RefreshError. Never includes token values. */
export function classifyTokenEndpointError(err: unknown, op: string): RefreshError {
  if (err instanceof RefreshError) return err;
  if (err instanceof oauth.ResponseBodyError) {
    const desc = err.error_description ? `: ${sanitizeRemoteText(err.error_description)}` : '';
    // GitHub says bad_refresh_token for a dead refresh token; it means what invalid_grant means.
    if (err.error === 'invalid_grant' || err.error === 'bad_refresh_token' || err.error === 'invalid_refresh_token') {
      return new RefreshError('invalid_grant', `${op} rejected by the IdP: ${err.error}${desc}`, undefined, { answer: 'invalid_grant', consumed: 'no' });
    }
    // A 5xx with an RFC 6749 JSON error: the IdP's own words are the most useful part.
    if (err.status >= 500) return new RefreshError('transient', `${op} failed: IdP answered ${err.status} ${err.error}${desc}`, undefined, { answer: 'server_error', consumed: 'maybe' });
    return new RefreshError('rejected', `${op} rejected by the IdP: ${err.error}${desc} (HTTP ${err.status})`, undefined, { answer: 'other_error', consumed: 'no' });
  }
  if (err instanceof oauth.OperationProcessingError) {
    const status = statusOf(err);
    return new RefreshError('transient', `${op} failed: the token endpoint's response is not a valid token response${status ? ` (HTTP ${status})` : ''}: ${sanitizeRemoteText(err.message)}`);
  }
  if (err instanceof LatchkeyError) {
    if (err.code === 'LK_CONFIG_INVALID' || err.code === 'LK_INSECURE_ENDPOINT') throw err;
    return new RefreshError('transient', `${op} failed: ${err.message}`);
  }
  const failure = transportFailure(err);
  return failure instanceof RefreshError ? failure : new RefreshError('transient', `${op} failed: ${String(err)}`);
}

function statusOf(err: oauth.OperationProcessingError): number | undefined {
  const cause = err.cause as { status?: number } | Response | undefined;
  if (cause instanceof Response) return cause.status;
  return typeof cause?.status === 'number' ? cause.status : undefined;
}


