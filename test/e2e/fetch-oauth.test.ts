/**
 * `lk.fetch` with the oauth method against the real IdP (oidc-provider): the 401 recovery is a
 * forced refresh under the lock, a sibling's rotation is adopted without an IdP call, and a
 * revoked grant ends in `reauthorize` after one request.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { idpHome } from '../helpers/lk.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { UnauthorizedError } from '../../src/client/fetch.js';
import { send, startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';

let idp: Idp;
let always401: LoopbackApi;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 300 });
  always401 = await startLoopbackApi((_req, res) => send(res, 401, '{"error":"invalid_token"}'));
});
after(async () => {
  await always401.close();
  await idp.close();
});

/** A grant whose access token the resource server rejects (revoked or garbled), refresh token still good. */
async function grantWithRejectedAccessToken() {
  const grant = await idp.mintGrant();
  return { ...grant, access_token: 'rejected-by-the-resource-server', expires_in: 3600 };
}

test('an access token the API rejects -> forced refresh -> the retry succeeds, with exactly one IdP refresh', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const lk = await h.open();
  t.after(() => lk.close());
  await lk.installGrant('idp', await grantWithRejectedAccessToken());
  idp.stats.reset();
  const res = await lk.fetch('idp', idp.protectedUrl);
  assert.equal(res.status, 200);
  assert.equal((await res.json()).ok, true);
  assert.equal(idp.stats.protectedUnauthorized, 1, 'the first request was rejected');
  assert.equal(idp.stats.protectedOk, 1, 'the retry was accepted');
  assert.equal(idp.stats.refreshRequests, 1, 'exactly one refresh');
  assert.equal(idp.stats.revokedGrants, 0);
  const stored = JSON.parse(await readFile(h.storePath, 'utf8'));
  assert.notEqual(stored.sources.idp.grant.accessToken, 'rejected-by-the-resource-server', 'the new token was persisted');
  // The next call uses the new token straight away.
  assert.equal((await lk.fetch('idp', idp.protectedUrl)).status, 200);
  assert.equal(idp.stats.refreshRequests, 1);
});

test('a sibling already rotated -> adopted on the 401 without an IdP call', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const a = await h.open();
  const b = await h.open();
  t.after(() => a.close());
  t.after(() => b.close());
  await a.installGrant('idp', await grantWithRejectedAccessToken());
  // b has the rejected token in its memo (it served it before a's rotation).
  assert.equal(await b.token('idp'), 'rejected-by-the-resource-server');
  idp.stats.reset();
  assert.equal((await a.fetch('idp', idp.protectedUrl)).status, 200);
  assert.equal(idp.stats.refreshRequests, 1, 'a refreshed');
  const res = await b.fetch('idp', idp.protectedUrl);
  assert.equal(res.status, 200, 'b adopted a\'s token and its retry succeeded');
  assert.equal(idp.stats.refreshRequests, 1, 'no second IdP call');
  assert.equal(idp.stats.protectedUnauthorized, 2, 'one 401 each');
  assert.equal(idp.stats.revokedGrants, 0, 'no refresh token replayed');
});

test('a server that always answers 401: two requests per fetch, one refresh, then LK_UNAUTHORIZED reauthorize', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const lk = await h.open();
  t.after(() => lk.close());
  await lk.installGrant('idp', await idp.mintGrant());
  idp.stats.reset();
  always401.requests.length = 0;
  await assert.rejects(lk.fetch('idp', always401.url('/api')), (err: unknown) => {
    assert.ok(err instanceof UnauthorizedError);
    assert.equal(err.operatorAction, 'reauthorize');
    assert.equal(err.fix, 'latchkey login idp');
    assert.equal(err.exitCode, 4);
    return true;
  });
  assert.equal(always401.requests.length, 2);
  assert.notEqual(always401.requests[0]!.headers.authorization, always401.requests[1]!.headers.authorization, 'the retry carried the refreshed token');
  assert.equal(idp.stats.refreshRequests, 1);
});

test('a revoked grant: the forced refresh gets invalid_grant -> reauthorize after one request; then no request at all', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const lk = await h.open();
  t.after(() => lk.close());
  const grant = await grantWithRejectedAccessToken();
  await lk.installGrant('idp', grant);
  assert.ok(await idp.revokeGrantOf(grant.refresh_token));
  idp.stats.reset();
  await assert.rejects(lk.fetch('idp', idp.protectedUrl), (err: unknown) => {
    assert.ok(err instanceof UnauthorizedError);
    assert.equal(err.operatorAction, 'reauthorize');
    assert.match(err.message, /revoked/);
    return true;
  });
  assert.equal(idp.stats.protectedUnauthorized, 1, 'not retried: the grant is dead');
  assert.equal(idp.stats.refreshRequests, 2, 'the refusal confirmed once, under the lock');
  assert.equal(await lk.authPath('idp'), null);
  await assert.rejects(lk.fetch('idp', idp.protectedUrl), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_GRANT_REVOKED' && err.operatorAction === 'reauthorize');
  assert.equal(idp.stats.protectedUnauthorized, 1, 'no request with a revoked grant');
  assert.equal(idp.stats.refreshRequests, 2, 'and no IdP call');
});

test('the token endpoint is down during recovery -> check_network (exit 3), not a person\'s action', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const lk = await h.open();
  t.after(() => lk.close());
  await lk.installGrant('idp', await grantWithRejectedAccessToken());
  idp.setFault({ kind: 'status', status: 503 });
  t.after(() => idp.setFault(null));
  idp.stats.reset();
  await assert.rejects(lk.fetch('idp', idp.protectedUrl), (err: unknown) => {
    assert.ok(err instanceof UnauthorizedError);
    assert.equal(err.operatorAction, 'check_network');
    assert.equal(err.exitCode, 3);
    return true;
  });
  assert.equal(idp.stats.protectedUnauthorized, 1);
});
