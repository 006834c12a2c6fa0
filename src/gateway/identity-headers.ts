import type { IncomingHttpHeaders } from 'node:http';
import type { SessionIdentity } from './session-store.js';

/**
 * The identity headers the upstream trusts (oauth2-proxy's names, which apps and nginx configs
 * already read). Whatever a client sent under these names is removed before the gateway sets
 * its own: the upstream can only ever see the gateway's.
 */
export const IDENTITY_HEADERS = [
  'x-forwarded-user',
  'x-forwarded-email',
  'x-forwarded-preferred-username',
  'x-forwarded-groups',
  'x-auth-request-user',
  'x-auth-request-email',
  'x-auth-request-preferred-username',
  'x-auth-request-groups',
  'x-auth-request-access-token',
  'x-forwarded-access-token',
] as const;

/** A header value that is safe to send (printable ASCII, bounded); undefined otherwise. */
export function headerSafe(value: string | undefined): string | undefined {
  return value !== undefined && value.length > 0 && value.length <= 256 && /^[\x20-\x7e]+$/.test(value) ? value : undefined;
}

/** The identity headers for a session (only values that are safe to send). */
export function identityHeaders(identity: SessionIdentity): Record<string, string> {
  const out: Record<string, string> = {};
  const user = headerSafe(identity.sub);
  const email = headerSafe(identity.email);
  if (user) {
    out['x-forwarded-user'] = user;
    out['x-auth-request-user'] = user;
  }
  if (email) {
    out['x-forwarded-email'] = email;
    out['x-auth-request-email'] = email;
  }
  return out;
}

/** Removes every identity header from incoming headers (in place). */
export function stripIdentityHeaders(headers: IncomingHttpHeaders): void {
  for (const h of IDENTITY_HEADERS) delete headers[h];
}
