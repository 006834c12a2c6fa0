import * as oauth from 'oauth4webapi';
import { LatchkeyError } from '../core/errors.js';
import { checkEndpoint, requestOptions, type FetchLike } from './endpoint.js';

export interface DiscoveredEndpoints {
  issuer: string;
  tokenEndpoint: string;
  authorizationEndpoint?: string;
  deviceAuthorizationEndpoint?: string;
  revocationEndpoint?: string;
  codeChallengeMethods?: string[];
  server: oauth.AuthorizationServer;
}

/** OIDC discovery, then RFC 8414 metadata, through oauth4webapi (which checks the issuer matches). */
export async function discoverIssuer(issuer: string, fetchImpl: FetchLike, timeoutMs = 10_000): Promise<DiscoveredEndpoints> {
  const url = checkEndpoint(issuer, 'issuer');
  let server: oauth.AuthorizationServer | undefined;
  let lastError: unknown;
  for (const algorithm of ['oidc', 'oauth2'] as const) {
    try {
      const res = await oauth.discoveryRequest(url, { ...requestOptions(url, fetchImpl, timeoutMs), algorithm });
      server = await oauth.processDiscoveryResponse(url, res);
      break;
    } catch (err) {
      lastError = err;
    }
  }
  if (!server) {
    throw new LatchkeyError('LK_UNREACHABLE', `discovery failed for issuer ${url.href}: ${(lastError as Error)?.message ?? 'no metadata'}`, { cause: lastError });
  }
  if (!server.token_endpoint) throw new LatchkeyError('LK_CONFIG_INVALID', `issuer ${url.href} publishes no token_endpoint`);
  checkEndpoint(server.token_endpoint, 'token endpoint');
  return {
    issuer: server.issuer,
    tokenEndpoint: server.token_endpoint,
    authorizationEndpoint: server.authorization_endpoint,
    deviceAuthorizationEndpoint: server.device_authorization_endpoint,
    revocationEndpoint: server.revocation_endpoint,
    codeChallengeMethods: server.code_challenge_methods_supported,
    server,
  };
}
