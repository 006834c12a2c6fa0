import * as oauth from 'oauth4webapi';
import { LatchkeyError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';

export type ClientAuthMethod = 'none' | 'client_secret_basic' | 'client_secret_post';

export interface ClientParams {
  clientId: string;
  clientSecret?: Secret;
  clientAuth?: ClientAuthMethod;
}

/** The method actually used: the configured one, else Basic when there is a secret (RFC 6749 §2.3.1). */
export function clientAuthMethodOf(p: ClientParams): ClientAuthMethod {
  return p.clientAuth ?? (p.clientSecret ? 'client_secret_basic' : 'none');
}

export function clientAuthentication(p: ClientParams): oauth.ClientAuth {
  const method = clientAuthMethodOf(p);
  if (method === 'none') return oauth.None();
  if (!p.clientSecret) {
    throw new LatchkeyError('LK_CONFIG_INVALID', `client authentication ${method} needs a clientSecret reference`);
  }
  return method === 'client_secret_post' ? oauth.ClientSecretPost(p.clientSecret.reveal()) : clientSecretBasic(p.clientSecret.reveal());
}

/**
 * HTTP Basic client authentication that both kinds of server accept.
 *
 * RFC 6749 §2.3.1 says the client id and secret are form-encoded (application/x-www-form-urlencoded)
 * before Basic encoding, and oauth4webapi encodes even `-`, `.`, `_`, `~` (`lk-conf` is sent as
 * `lk%2Dconf`). Servers that decode (oidc-provider, most) are fine either way; servers that do
 * not (a common shortcut) compare `lk%2Dconf` with `lk-conf` and refuse the client. Encoding
 * only what must be encoded, everything outside RFC 3986 §2.3's unreserved characters
 * (`A-Z a-z 0-9 - . _ ~`), sends the common ids and secrets byte for byte, and what a decoding
 * server decodes is still exactly the original. A secret holding `+`, `/`, `=` or `%` cannot
 * satisfy both kinds: for a non-decoding server use `client_secret_post`.
 */
export function clientSecretBasic(clientSecret: string): oauth.ClientAuth {
  return (_as, client, _body, headers) => {
    const credentials = `${encodeOutsideUnreserved(client.client_id)}:${encodeOutsideUnreserved(clientSecret)}`;
    headers.set('authorization', `Basic ${Buffer.from(credentials, 'utf8').toString('base64')}`);
  };
}

/** Percent-encodes (UTF-8) every character outside RFC 3986 unreserved. */
export function encodeOutsideUnreserved(s: string): string {
  // encodeURIComponent leaves exactly unreserved plus !'()* unencoded.
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
