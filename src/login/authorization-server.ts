import * as oauth from 'oauth4webapi';
import type { ResolvedSource } from '../config/load.js';
import type { OAuthConfig } from '../config/schema.js';
import { resolveSecretRef } from '../config/secret-ref.js';
import { LatchkeyError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import { discoverIssuer, type DiscoveredEndpoints } from '../oauth/discovery.js';
import { checkEndpoint, type FetchLike } from '../oauth/endpoint.js';
import { clientAuthentication } from '../oauth/refresh.js';
import type { AuthorizationServerContext } from '../oauth/server-context.js';

export { includesOpenIdScope, type AuthorizationServerContext } from '../oauth/server-context.js';

/** Which endpoint an operation cannot do without. */
export type RequiredEndpoint = 'authorization' | 'device_authorization' | 'revocation' | 'token';

export interface ResolveAuthorizationServerOptions {
  fetch: FetchLike;
  env: NodeJS.ProcessEnv;
  /** Endpoints the caller needs; a missing one is a config error naming the key to set. */
  require: RequiredEndpoint[];
  /** Discovery timeout (default 10 s). */
  timeoutMs?: number;
  /**
   * Whether a failed discovery is fatal when the config already has every required endpoint
   * (default false: the configured endpoints are used).
   */
  discoveryRequired?: boolean;
  /** The client that obtained a stored grant (used by logout: revoke as the client the token belongs to). */
  clientIdOverride?: string;
}

const CONFIG_KEY: Record<RequiredEndpoint, keyof OAuthConfig> = {
  authorization: 'authorizationEndpoint',
  device_authorization: 'deviceAuthorizationEndpoint',
  revocation: 'revocationEndpoint',
  token: 'tokenEndpoint',
};

const METADATA_KEY: Record<RequiredEndpoint, keyof oauth.AuthorizationServer> = {
  authorization: 'authorization_endpoint',
  device_authorization: 'device_authorization_endpoint',
  revocation: 'revocation_endpoint',
  token: 'token_endpoint',
};

/**
 * Resolves a source's authorization server. Configured endpoints win; when `oauth.issuer` is
 * set the server's metadata is fetched (RFC 8414 / OIDC discovery) for whatever the config
 * leaves out, and for `code_challenge_methods_supported` (the S256 check). Every endpoint must
 * be https (plain http only on loopback).
 */
export async function resolveAuthorizationServer(src: ResolvedSource, options: ResolveAuthorizationServerOptions): Promise<AuthorizationServerContext> {
  const source = src.name;
  const o = src.oauth;
  if (!o) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `source "${source}" has no oauth method; add one with \`latchkey add ${source} --issuer <url> --client-id <id>\``, {
      source,
      operatorAction: 'fix_config',
    });
  }
  let discovered: DiscoveredEndpoints | undefined;
  if (o.issuer) {
    const missing = options.require.some((need) => !o[CONFIG_KEY[need]]);
    try {
      discovered = await discoverIssuer(o.issuer, options.fetch, options.timeoutMs);
    } catch (err) {
      if (missing || options.discoveryRequired) {
        if (err instanceof LatchkeyError) throw new LatchkeyError(err.code, `${source}: ${err.message}`, { source, operatorAction: err.code === 'LK_UNREACHABLE' ? 'check_network' : 'fix_config', exitCode: err.exitCode });
        throw err;
      }
    }
  }
  const server = discovered?.server;
  const pick = (need: RequiredEndpoint): string | undefined => {
    const configured = o[CONFIG_KEY[need]];
    if (typeof configured === 'string') return configured;
    const published = server?.[METADATA_KEY[need]];
    return typeof published === 'string' ? published : undefined;
  };
  // oauth4webapi's metadata type is read-only; it is assembled here, then handed over frozen.
  const meta: { -readonly [K in keyof oauth.AuthorizationServer]: oauth.AuthorizationServer[K] } = {
    ...(server ?? {}),
    issuer: discovered?.issuer ?? o.issuer ?? '',
  };
  for (const need of ['authorization', 'device_authorization', 'revocation', 'token'] as const) {
    const url = pick(need);
    const key = METADATA_KEY[need] as 'authorization_endpoint' | 'device_authorization_endpoint' | 'revocation_endpoint' | 'token_endpoint';
    if (url === undefined) {
      delete meta[key];
      if (options.require.includes(need)) {
        const where = o.issuer ? `the issuer ${o.issuer} publishes none and ` : '';
        throw new LatchkeyError('LK_CONFIG_INVALID', `source "${source}": no ${need.replace('_', ' ')} endpoint (${where}sources.${source}.oauth.${CONFIG_KEY[need]} is not set)`, {
          source,
          operatorAction: 'fix_config',
        });
      }
      continue;
    }
    meta[key] = checkEndpoint(url, `${need.replace('_', ' ')} endpoint`, source).href;
  }
  const issuerKnown = meta.issuer !== '';
  if (!issuerKnown) {
    // oauth4webapi needs an issuer string; without a configured one there is nothing to check
    // an ID token's `iss` against, and callers drop or refuse ID tokens accordingly.
    meta.issuer = new URL(meta.token_endpoint ?? meta.authorization_endpoint ?? meta.revocation_endpoint ?? 'http://127.0.0.1/').origin;
  }
  const as: oauth.AuthorizationServer = Object.freeze(meta);
  const clientId = options.clientIdOverride ?? o.clientId;
  let clientSecret: Secret | undefined;
  if (o.clientSecret) {
    clientSecret = await resolveSecretRef(o.clientSecret, options.env).catch((err: unknown) => {
      if (err instanceof LatchkeyError) throw new LatchkeyError(err.code, `${source}: client secret ${err.message}`, { source, operatorAction: 'fix_config' });
      throw err;
    });
  }
  const clientAuth = clientAuthentication({ clientId, clientSecret, clientAuth: o.clientAuth });
  const ctx: AuthorizationServerContext = {
    source,
    as,
    issuerKnown,
    client: { client_id: clientId },
    clientAuth,
    clientId,
    clientSecret,
    clientAuthMethod: o.clientAuth,
    scope: o.scope,
    authorizationParams: o.authorizationParams,
  };
  if (discovered?.codeChallengeMethods) ctx.codeChallengeMethods = discovered.codeChallengeMethods;
  return ctx;
}
