/**
 * Every preset's OAuth path, as `latchkey add <source> --preset <name> --client-id … [--client-secret …]`
 * writes it, gets through Latchkey's own checks to the browser: the authorization URL is built
 * (S256 challenge, state, a nonce only for an OpenID scope) and no config error comes first.
 * No network: discovery fails at once and the configured endpoints are used.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatchkeyError } from '../../../src/core/errors.js';
import { openLatchkey } from '../../../src/latchkey.js';
import { loginWithAuthorizationCode } from '../../../src/login/authorization-code.js';
import { presets } from '../../../src/config/presets.js';
import { includesOpenIdScope } from '../../../src/login/authorization-server.js';
import { makeHome } from '../../helpers/home.js';

const offline: typeof fetch = () => Promise.reject(new TypeError('fetch failed (no network in this test)'));

for (const p of Object.values(presets)) {
  if (!p.oauth || p.requiresIssuer || !p.oauth.authorizationEndpoint) continue;
  for (const secret of [false, true]) {
    // A preset that names a client authentication method needs the secret it sends.
    if (!secret && p.oauth.clientAuth && p.oauth.clientAuth !== 'none') continue;
    test(`${p.name}${secret ? ' with a client secret' : ' as a public client'}: the login reaches the browser`, async (t) => {
      const oauth: Record<string, unknown> = { clientId: 'client-1', ...(secret ? { clientSecret: 'env:SECRET' } : {}) };
      const h = await makeHome({ version: 1, sources: { s: { preset: p.name, oauth } } });
      t.after(() => h.cleanup());
      const lk = await openLatchkey({ home: h.home, env: { SECRET: 'shh' }, fetch: offline });
      t.after(() => lk.close());
      const abort = new AbortController();
      let authorizationUrl: URL | undefined;
      const err = await loginWithAuthorizationCode(lk, 's', {
        signal: abort.signal,
        onUrl: (href) => {
          authorizationUrl = new URL(href);
          abort.abort();
        },
      }).catch((e: unknown) => e);
      assert.ok(err instanceof LatchkeyError, String(err));
      assert.match(err.message, /login cancelled/, `${p.name}: ${err.message}`);
      assert.ok(authorizationUrl, 'the authorization URL was built');
      assert.equal(authorizationUrl.origin + authorizationUrl.pathname, p.oauth!.authorizationEndpoint);
      assert.equal(authorizationUrl.searchParams.get('code_challenge_method'), 'S256');
      assert.ok(authorizationUrl.searchParams.get('state'));
      assert.equal(authorizationUrl.searchParams.has('nonce'), includesOpenIdScope(p.oauth!.scope));
      assert.match(authorizationUrl.searchParams.get('redirect_uri') ?? '', /^http:\/\/127\.0\.0\.1:\d+\/callback$/);
      if (includesOpenIdScope(p.oauth!.scope)) assert.ok(p.oauth!.issuer, `${p.name}: an OpenID scope needs an issuer to check the ID token against`);
    });
  }
}
