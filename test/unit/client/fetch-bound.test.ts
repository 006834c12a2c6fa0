/**
 * The retry bound over every combination of methods, fallbacks and recovery outcomes: an API
 * that always answers 401 sees at most two requests per `lk.fetch`, whatever the source's
 * methods are and however their recoveries end (a new credential that is rejected again,
 * invalid_grant, a token endpoint that is down, a renewal URL that refuses), and the call ends
 * with a typed error carrying an operator action and a fix. Never a loop, never a hang.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { openLatchkey } from '../../../src/latchkey.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { REJECTION_HOLD_MS } from '../../../src/client/auth-path.js';
import { makeHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';
import { send, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
let minted = 0;
before(async () => {
  api = await startLoopbackApi((req, res) => {
    switch (req.path) {
      case '/token-rotates':
        minted += 1;
        return send(res, 200, JSON.stringify({ access_token: `at-${minted}`, refresh_token: `rt-${minted}`, token_type: 'Bearer', expires_in: 3600 }));
      case '/token-invalid-grant':
        return send(res, 400, '{"error":"invalid_grant"}');
      case '/token-down':
        return send(res, 503);
      case '/renew-ok':
        minted += 1;
        return send(res, 200, '{}', { 'set-cookie': `csrf=c${minted}; Path=/` });
      case '/renew-refused':
        return send(res, 401);
      default:
        return send(res, 401, '{"error":"unauthorized"}');
    }
  });
});
after(async () => {
  await api.close();
});

type TokenMode = 'none' | 'present';
type OAuthMode = 'none' | 'no-grant' | 'rotates' | 'invalid-grant' | 'down';
type SessionMode = 'none' | 'missing-cookies' | 'renews' | 'renewal-refused';

const combos: Array<[TokenMode, OAuthMode, SessionMode]> = [];
for (const t of ['none', 'present'] as const) {
  for (const o of ['none', 'no-grant', 'rotates', 'invalid-grant', 'down'] as const) {
    for (const s of ['none', 'missing-cookies', 'renews', 'renewal-refused'] as const) {
      if (t === 'none' && o === 'none' && s === 'none') continue;
      combos.push([t, o, s]);
    }
  }
}

test(`always 401: at most two requests per fetch and a typed error, over ${combos.length} method combinations`, async (t) => {
  for (const [tokenMode, oauthMode, sessionMode] of combos) {
    const label = `token=${tokenMode} oauth=${oauthMode} session=${sessionMode}`;
    const source: Record<string, unknown> = { methods: [] as string[] };
    const methods = source.methods as string[];
    const env: NodeJS.ProcessEnv = {};
    if (tokenMode !== 'none') {
      methods.push('token');
      source.token = { secret: 'env:PAT' };
      env.PAT = 'dead-pat';
    }
    if (oauthMode !== 'none') {
      methods.push('oauth');
      const path = oauthMode === 'no-grant' ? '/token-down' : `/token-${oauthMode}`;
      source.oauth = { tokenEndpoint: api.url(path), clientId: 'c' };
    }
    if (sessionMode !== 'none') {
      methods.push('session');
      source.session = {
        origin: api.origin,
        csrfCookie: 'csrf',
        csrfHeader: 'X-CSRF',
        cookieHeader: 'env:COOKIES',
        ...(sessionMode === 'renews' ? { renewUrl: api.url('/renew-ok') } : sessionMode === 'renewal-refused' ? { renewUrl: api.url('/renew-refused') } : {}),
      };
      if (sessionMode !== 'missing-cookies') env.COOKIES = 'sid=s; csrf=c0';
    }
    const h = await makeHome({ version: 1, sources: { s: source } });
    t.after(() => h.cleanup());
    const clock = new TestClock();
    const lk = await openLatchkey({ home: h.home, env, clock, cooldownMs: 0 });
    if (oauthMode !== 'none' && oauthMode !== 'no-grant') await lk.installGrant('s', { access_token: 'dead-at', refresh_token: 'rt-0', expires_in: 3600 });
    for (let call = 0; call < 3; call++) {
      if (call === 2) clock.advance(REJECTION_HOLD_MS + 1); // the held-back methods are tried again
      api.requests.length = 0;
      const started = Date.now();
      const err = await lk.fetch('s', api.url('/api')).then(
        (res) => assert.fail(`${label}: call ${call} resolved with ${res.status}`),
        (e: unknown) => e,
      );
      const hits = api.requestsTo('/api').length;
      assert.ok(hits <= 2, `${label}: call ${call} made ${hits} requests`);
      assert.ok(err instanceof LatchkeyError, `${label}: call ${call} threw ${String(err)}`);
      assert.ok(err.operatorAction, `${label}: call ${call}: an operator action (${err.message})`);
      assert.ok(err.fix, `${label}: call ${call}: a fix`);
      assert.ok([3, 4].includes(err.exitCode), `${label}: exit code ${err.exitCode}`);
      assert.ok(Date.now() - started < 5_000, `${label}: call ${call} took too long`);
    }
    await lk.close();
  }
});
