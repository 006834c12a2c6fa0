import { decodeJwt } from 'jose';

/** The time claims of an access token that is a JWT (RFC 7519 §4.1.4, §4.1.6), in seconds. */
export interface AccessTokenTimes {
  exp?: number;
  iat?: number;
}

/**
 * Reads `exp` and `iat` from an access token that is a JWT, without verifying it: the token is
 * the resource server's business, only its stated lifetime matters here (an unverified claim
 * can only make us refresh earlier, see expiresAtOf). An opaque token, or one that does not
 * decode, gives nothing.
 */
export function accessTokenTimes(accessToken: string): AccessTokenTimes {
  // A JWS compact serialization has three dot-separated parts; anything else is opaque.
  if (accessToken.split('.').length !== 3) return {};
  try {
    const claims = decodeJwt(accessToken);
    const out: AccessTokenTimes = {};
    if (typeof claims.exp === 'number' && Number.isFinite(claims.exp)) out.exp = claims.exp;
    if (typeof claims.iat === 'number' && Number.isFinite(claims.iat)) out.iat = claims.iat;
    return out;
  } catch {
    return {};
  }
}
