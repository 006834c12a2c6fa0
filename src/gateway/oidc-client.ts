import * as oauth from 'oauth4webapi';
import { createRemoteJWKSet, customFetch, jwtVerify, type JWTPayload } from 'jose';
import type { Clock } from '../core/clock.js';
import { LatchkeyError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { sanitizeRemoteText } from '../core/sanitize.js';
import { clientAuthentication, type ClientAuthMethod } from '../oauth/client-auth.js';
import { discoverIssuer, type DiscoveredEndpoints } from '../oauth/discovery.js';
import { errorIn200AsError, RECOGNIZED_TOKEN_TYPES, requestOptions, type FetchLike } from '../oauth/endpoint.js';
import { readExpiresIn } from '../lifetime.js';
import type { OAuthClientSettings } from '../engine/rotation-core.js';
import { revokeToken } from '../oauth/revocation.js';
import type { AuthorizationServerContext } from '../oauth/server-context.js';

/**
 * The gateway's relying party: discovery (cached; retried after a failure), the authorization
 * request (code + PKCE S256, state, nonce), the code exchange through oauth4webapi, the ID token
 * validated with jose against the IdP's JWKS (signature, `iss`, `aud`, `exp`, `nonce`),
 * revocation (RFC 7009) and RP-initiated logout.
 */

export interface OidcClientOptions {
  issuer: string;
  clientId: string;
  clientSecret?: Secret;
  clientAuth?: ClientAuthMethod;
  scopes: string;
  fetch: FetchLike;
  clock: Clock;
  timeoutMs?: number;
}

/** A code exchange's result: tokens and the validated ID token's claims. */
export interface CodeExchange {
  accessToken: string;
  refreshToken?: string;
  idToken: string;
  tokenType: string;
  scope?: string;
  expiresIn?: number;
  /** `refresh_expires_in` when the IdP sent one (Keycloak does). */
  refreshExpiresIn?: number;
  claims: JWTPayload;
}

/** Why a login's callback failed, as the 4xx/502 it becomes. */
export class CallbackError extends Error {
  readonly status: number;
  readonly error: string;
  constructor(status: number, error: string, message: string) {
    super(message);
    this.status = status;
    this.error = error;
  }
}

export class OidcClient {
  readonly #o: OidcClientOptions;
  #discovered: DiscoveredEndpoints | undefined;
  #discovering: Promise<DiscoveredEndpoints> | undefined;
  #jwks: ReturnType<typeof createRemoteJWKSet> | undefined;
  /** The IdP refused this client's introspection once (4xx): not asked again. */
  #introspectionRefused = false;
  readonly #client: oauth.Client;
  readonly #auth: oauth.ClientAuth;

  constructor(options: OidcClientOptions) {
    this.#o = options;
    this.#client = { client_id: options.clientId };
    this.#auth = clientAuthentication({ clientId: options.clientId, clientSecret: options.clientSecret, clientAuth: options.clientAuth });
  }

  get ready(): boolean {
    return this.#discovered !== undefined;
  }

  /** The IdP's metadata (discovered once; a failure is retried on the next call). */
  async server(): Promise<DiscoveredEndpoints> {
    if (this.#discovered) return this.#discovered;
    this.#discovering ??= discoverIssuer(this.#o.issuer, this.#o.fetch, this.#o.timeoutMs ?? 10_000)
      .then((d) => {
        const methods = d.codeChallengeMethods;
        if (methods !== undefined && !methods.includes('S256')) throw new LatchkeyError('LK_CONFIG_INVALID', `the IdP ${d.issuer} does not support PKCE with S256`);
        if (!d.authorizationEndpoint) throw new LatchkeyError('LK_CONFIG_INVALID', `the IdP ${d.issuer} publishes no authorization_endpoint`);
        if (!d.server.jwks_uri) throw new LatchkeyError('LK_CONFIG_INVALID', `the IdP ${d.issuer} publishes no jwks_uri (ID tokens cannot be validated)`);
        this.#discovered = d;
        return d;
      })
      .finally(() => {
        this.#discovering = undefined;
      });
    return this.#discovering;
  }

  /** The settings the rotation core refreshes a session's grant with. */
  async refreshSettings(skewMs: number): Promise<OAuthClientSettings> {
    const d = await this.server();
    return { tokenEndpoint: d.tokenEndpoint, issuer: d.issuer, clientId: this.#o.clientId, clientSecret: this.#o.clientSecret, clientAuth: this.#o.clientAuth, skewMs };
  }

  async authorizationUrl(p: { redirectUri: string; state: string; nonce: string; codeChallenge: string }): Promise<string> {
    const d = await this.server();
    const url = new URL(d.authorizationEndpoint as string);
    url.searchParams.set('client_id', this.#o.clientId);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('redirect_uri', p.redirectUri);
    url.searchParams.set('scope', this.#o.scopes);
    url.searchParams.set('state', p.state);
    url.searchParams.set('nonce', p.nonce);
    url.searchParams.set('code_challenge', p.codeChallenge);
    url.searchParams.set('code_challenge_method', 'S256');
    return url.href;
  }

  /**
   * Validates the authorization response (state, `iss` per RFC 9207, an error answer), exchanges
   * the code with the PKCE verifier, and validates the ID token. Throws {@link CallbackError}.
   */
  async exchange(received: URLSearchParams, p: { state: string; nonce: string; verifier: string; redirectUri: string }): Promise<CodeExchange> {
    const d = await this.server();
    let params: URLSearchParams;
    try {
      params = oauth.validateAuthResponse(d.server, this.#client, received, p.state);
    } catch (err) {
      if (err instanceof oauth.AuthorizationResponseError) {
        const desc = err.error_description ? `: ${sanitizeRemoteText(err.error_description, 120)}` : '';
        throw new CallbackError(400, err.error === 'access_denied' ? 'access_denied' : 'idp_error', `the IdP answered the sign-in with an error (${sanitizeRemoteText(err.error, 64)}${desc})`);
      }
      throw new CallbackError(400, 'invalid_callback', `the authorization response is not valid (${/state/.test((err as Error).message) ? 'state' : /"iss"/.test((err as Error).message) ? 'issuer' : 'parameters'})`);
    }
    let res: oauth.TokenEndpointResponse;
    try {
      const opts = requestOptions(new URL(d.tokenEndpoint), this.#o.fetch, this.#o.timeoutMs ?? 10_000);
      const response = await errorIn200AsError(await oauth.authorizationCodeGrantRequest(d.server, this.#client, this.#auth, params, p.redirectUri, p.verifier, opts));
      res = await oauth.processAuthorizationCodeResponse(d.server, this.#client, response, { expectedNonce: p.nonce, requireIdToken: true, recognizedTokenTypes: RECOGNIZED_TOKEN_TYPES });
    } catch (err) {
      if (err instanceof oauth.ResponseBodyError) {
        if (err.status >= 500) throw new CallbackError(503, 'idp_unavailable', `the IdP's token endpoint answered HTTP ${err.status}; try again shortly`);
        throw new CallbackError(400, 'code_rejected', `the IdP refused the authorization code (${sanitizeRemoteText(err.error, 64)}); sign in again`);
      }
      if (err instanceof oauth.OperationProcessingError) {
        throw new CallbackError(400, 'invalid_token_response', `the IdP's token response is not valid (${sanitizeRemoteText(err.message, 120)}); start the sign-in again`);
      }
      throw new CallbackError(503, 'idp_unavailable', 'the IdP did not answer the code exchange; try again shortly');
    }
    const idToken = res.id_token;
    if (!idToken) throw new CallbackError(400, 'invalid_token_response', 'the IdP sent no ID token; start the sign-in again');
    const claims = await this.verifyIdToken(idToken, p.nonce);
    const expiry = readExpiresIn(res.expires_in);
    const rexp = readExpiresIn((res as Record<string, unknown>).refresh_expires_in);
    return {
      accessToken: res.access_token,
      ...(res.refresh_token ? { refreshToken: res.refresh_token } : {}),
      idToken,
      tokenType: res.token_type,
      ...(res.scope ? { scope: res.scope } : {}),
      ...(expiry.seconds !== undefined ? { expiresIn: expiry.seconds } : {}),
      ...(rexp.seconds !== undefined ? { refreshExpiresIn: rexp.seconds } : {}),
      claims,
    };
  }

  /** The ID token's signature (the IdP's JWKS), `iss`, `aud`, `exp` and `nonce`, by our clock. */
  async verifyIdToken(idToken: string, nonce: string): Promise<JWTPayload> {
    const d = await this.server();
    this.#jwks ??= this.#remoteJwks(d);
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(idToken, this.#jwks, { issuer: d.issuer, audience: this.#o.clientId, currentDate: new Date(this.#o.clock.now()), clockTolerance: 30, requiredClaims: ['sub', 'exp', 'iat'] }));
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'ERR_JWT_INVALID';
      throw new CallbackError(400, 'invalid_id_token', `the ID token is not valid (${sanitizeRemoteText(code, 48)}); start the sign-in again`);
    }
    if (payload.nonce !== nonce) throw new CallbackError(400, 'invalid_id_token', 'the ID token is not valid (nonce); start the sign-in again');
    return payload;
  }

  /**
   * The UserInfo claims (OIDC Core §5.3) when the ID token lacks `email` or `name` (many IdPs put
   * only `sub` in it). Best effort: the sign-in does not fail for want of an e-mail address; the
   * `sub` must match the ID token's (oauth4webapi checks it).
   */
  async userInfo(accessToken: string, expectedSub: string): Promise<Record<string, unknown>> {
    const d = await this.server();
    if (!d.server.userinfo_endpoint) return {};
    try {
      const opts = requestOptions(new URL(d.server.userinfo_endpoint), this.#o.fetch, this.#o.timeoutMs ?? 10_000);
      const res = await oauth.userInfoRequest(d.server, this.#client, accessToken, opts);
      return (await oauth.processUserInfoResponse(d.server, this.#client, expectedSub, res)) as Record<string, unknown>;
    } catch {
      return {};
    }
  }

  /**
   * Whether an access token is still good, checked at the IdP's own terms: a JWT against the
   * JWKS (signature, `iss`, `exp`), an opaque token by introspection (RFC 7662) when the IdP
   * offers it. The caller goes by the stored expiry when it cannot be told: `unknown` for now
   * (the IdP unreachable), `uncheckable` for good (no introspection, or not for this client).
   */
  async checkAccessToken(accessToken: string): Promise<'active' | 'inactive' | 'unknown' | 'uncheckable'> {
    let d: DiscoveredEndpoints;
    try {
      d = await this.server();
    } catch {
      return 'unknown';
    }
    const parts = accessToken.split('.');
    if (parts.length === 3) {
      let header: { alg?: unknown } | undefined;
      try {
        header = JSON.parse(Buffer.from(parts[0] as string, 'base64url').toString('utf8')) as { alg?: unknown };
      } catch {
        header = undefined;
      }
      if (header && typeof header.alg === 'string' && header.alg !== 'none') {
        try {
          this.#jwks ??= this.#remoteJwks(d);
          await jwtVerify(accessToken, this.#jwks, { issuer: d.issuer, currentDate: new Date(this.#o.clock.now()), clockTolerance: 5 });
          return 'active';
        } catch (err) {
          const code = (err as { code?: string }).code ?? '';
          // A key we cannot fetch says nothing about the token.
          return code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JOSE_GENERIC' ? 'unknown' : 'inactive';
        }
      }
    }
    const endpoint = d.server.introspection_endpoint;
    // No introspection, or not for this client (a public client usually may not): never asked again.
    if (!endpoint || this.#introspectionRefused) return 'uncheckable';
    try {
      const opts = requestOptions(new URL(endpoint), this.#o.fetch, this.#o.timeoutMs ?? 10_000);
      const res = await oauth.introspectionRequest(d.server, this.#client, this.#auth, accessToken, { ...opts, additionalParameters: { token_type_hint: 'access_token' } });
      const answer = await oauth.processIntrospectionResponse(d.server, this.#client, res);
      return answer.active ? 'active' : 'inactive';
    } catch (err) {
      const status = err instanceof oauth.ResponseBodyError || err instanceof oauth.WWWAuthenticateChallengeError ? err.status : undefined;
      if (status !== undefined && status >= 400 && status < 500) {
        this.#introspectionRefused = true;
        return 'uncheckable';
      }
      return 'unknown';
    }
  }

  #remoteJwks(d: DiscoveredEndpoints): ReturnType<typeof createRemoteJWKSet> {
    return createRemoteJWKSet(new URL(d.server.jwks_uri as string), {
      [customFetch]: (url: string, init: RequestInit) => this.#o.fetch(url, init),
      timeoutDuration: this.#o.timeoutMs ?? 10_000,
    } as Parameters<typeof createRemoteJWKSet>[1]);
  }

  /** RFC 7009: revokes a refresh token where the IdP offers it (best effort). */
  async revoke(refreshToken: Secret): Promise<'revoked' | 'unsupported' | 'failed'> {
    let d: DiscoveredEndpoints;
    try {
      d = await this.server();
    } catch {
      return 'failed';
    }
    if (!d.revocationEndpoint) return 'unsupported';
    const ctx: AuthorizationServerContext = { source: 'gateway', as: d.server, issuerKnown: true, client: this.#client, clientAuth: this.#auth, clientId: this.#o.clientId, clientSecret: this.#o.clientSecret };
    try {
      await revokeToken(ctx, this.#o.fetch, refreshToken, 'refresh_token', { timeoutMs: 5_000 });
      return 'revoked';
    } catch {
      return 'failed';
    }
  }

  /** The RP-initiated logout URL (OpenID Connect RP-Initiated Logout 1.0), when the IdP publishes `end_session_endpoint`. */
  async endSessionUrl(idTokenHint: string | undefined, postLogoutRedirectUri: string | undefined): Promise<string | undefined> {
    const d = this.#discovered;
    const endpoint = d?.server.end_session_endpoint;
    if (!endpoint) return undefined;
    const url = new URL(endpoint);
    if (idTokenHint) url.searchParams.set('id_token_hint', idTokenHint);
    url.searchParams.set('client_id', this.#o.clientId);
    if (postLogoutRedirectUri) url.searchParams.set('post_logout_redirect_uri', postLogoutRedirectUri);
    return url.href;
  }
}
