import type * as oauth from 'oauth4webapi';
import type { Secret } from '../core/secret.js';
import type { ClientAuthMethod } from './refresh.js';

/**
 * Everything a login or logout needs to talk to a source's authorization server: its metadata
 * (from the config, completed by discovery when an `issuer` is configured), the client and its
 * authentication.
 */
export interface AuthorizationServerContext {
  source: string;
  /** The metadata handed to oauth4webapi. `issuer` is a placeholder unless {@link issuerKnown}. */
  as: oauth.AuthorizationServer;
  /** True when the issuer identifier is configured or discovered (ID tokens can be validated). */
  issuerKnown: boolean;
  client: oauth.Client;
  clientAuth: oauth.ClientAuth;
  clientId: string;
  clientSecret?: Secret;
  clientAuthMethod?: ClientAuthMethod;
  /** `code_challenge_methods_supported` when the server published it. */
  codeChallengeMethods?: string[];
  scope?: string;
  authorizationParams?: Record<string, string>;
}

/** Whether a space-separated scope string asks for OpenID Connect. */
export function includesOpenIdScope(scope: string | undefined): boolean {
  return scope !== undefined && scope.split(/\s+/).includes('openid');
}
