import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startIdp, type Idp, type TokenResponse } from '../fixtures/idp.js';
import { idpHome, type IdpHome } from '../helpers/lk.js';
import type { Latchkey } from '../../src/latchkey.js';
import { LatchkeyError } from '../../src/core/errors.js';
import type { EngineEvent } from '../../src/engine/fresh-token.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 30 });
});
after(async () => {
  await idp.close();
});

/** A home whose `idp` source holds a grant just minted at the IdP, and Latchkey open on it (the home goes after the test). */
async function signedIn(t: TestContext): Promise<{ h: IdpHome; lk: Latchkey; grant: TokenResponse }> {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const lk = await h.open();
  await lk.installGrant('idp', grant);
  return { h, lk, grant };
}


test('expiry -> exactly one refresh, rotation persisted before use, new token accepted', async (t) => {
  const { h, lk, grant } = await signedIn(t);
  assert.equal(await lk.token('idp'), grant.access_token, 'fresh grant served from the store');
  idp.stats.reset();
  h.clock.advance(29_000); // past expiry - skew (skew = min(120 s, 30 s / 3) = 10 s)
  const tokens = await Promise.all(Array.from({ length: 50 }, () => lk.token('idp')));
  assert.equal(new Set(tokens).size, 1, 'all concurrent callers share one refresh');
  assert.notEqual(tokens[0], grant.access_token);
  assert.equal(idp.stats.refreshRequests, 1);
  const stored = JSON.parse(await readFile(h.storePath, 'utf8'));
  assert.equal(stored.sources.idp.grant.accessToken, tokens[0], 'persisted');
  assert.notEqual(stored.sources.idp.grant.refreshToken, grant.refresh_token, 'rotated refresh token persisted');
  assert.equal(await idp.protectedStatus(tokens[0]!), 200);
  // The old refresh token is consumed at the IdP: replaying it would revoke the grant.
  assert.equal(idp.stats.revokedGrants, 0);
});

test('a sibling (another process/instance) rotated first -> adopted, no IdP call', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const a = await h.open();
  const b = await h.open();
  await a.installGrant('idp', grant);
  const old = await b.token('idp');
  h.clock.advance(29_000);
  idp.stats.reset();
  const rotated = await a.token('idp');
  assert.equal(idp.stats.refreshRequests, 1);
  // b's memo is due; its unlocked read sees a's fresh grant.
  assert.equal(await b.token('idp'), rotated);
  // b's API call with the old token got a 401: under the lock it sees a different token and adopts it.
  assert.equal(await b.engine.forceRefresh('idp', old), rotated);
  assert.equal(idp.stats.refreshRequests, 1, 'no second IdP call');
  assert.equal(idp.stats.revokedGrants, 0);
});

test('transient failure -> stale token returned (fail open), cool-down respected, then recovers', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const events: EngineEvent[] = [];
  const lk = await h.open({ onRefresh: (e) => events.push(e) });
  await lk.installGrant('idp', grant);
  const before = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.grant;
  h.clock.advance(29_000);
  idp.stats.reset();
  idp.setFault({ kind: 'status', status: 503 });
  t.after(() => idp.setFault(null));
  assert.equal(await lk.token('idp'), grant.access_token, 'fails open with the current token');
  assert.equal(idp.stats.refreshRequests, 1);
  h.clock.advance(10_000);
  assert.equal(await lk.token('idp'), grant.access_token);
  assert.equal(idp.stats.refreshRequests, 1, 'no IdP call during the 30 s cool-down');
  const during = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp;
  assert.deepEqual(during.grant, before, 'the grant is untouched by the failure');
  assert.equal(during.lastFailure.kind, 'transient');
  idp.setFault(null);
  h.clock.advance(21_000);
  const fresh = await lk.token('idp');
  assert.notEqual(fresh, grant.access_token);
  assert.equal(idp.stats.refreshRequests, 2);
  assert.deepEqual(events.map((e) => e.outcome), ['fail_open', 'refreshed']);
});

for (const fault of [{ kind: 'malformed' }, { kind: 'huge' }, { kind: 'json', body: { hello: 'world' } }, { kind: 'status', status: 500, body: '<html>oops</html>' }] as const) {
  test(`garbage from the token endpoint (${fault.kind}${'status' in fault ? ` ${fault.status}` : ''}) fails open and loses nothing`, async (t) => {
    const h = await idpHome(idp);
    t.after(() => h.cleanup());
    const grant = await idp.mintGrant();
    const lk = await h.open();
    await lk.installGrant('idp', grant);
    const before = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.grant;
    h.clock.advance(29_000);
    idp.setFault(fault);
    t.after(() => idp.setFault(null));
    assert.equal(await lk.token('idp'), grant.access_token);
    const afterDoc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp;
    assert.deepEqual(afterDoc.grant, before);
    assert.ok(!afterDoc.lastFailure.message.includes(grant.refresh_token));
  });
}

test('a stalled token endpoint is bounded by the timeout and fails open', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const lk = await h.open({ tokenTimeoutMs: 400 });
  await lk.installGrant('idp', grant);
  h.clock.advance(29_000);
  idp.setFault({ kind: 'stall' });
  t.after(() => idp.setFault(null));
  const started = Date.now();
  assert.equal(await lk.token('idp'), grant.access_token);
  assert.ok(Date.now() - started < 3_000);
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp;
  assert.match(doc.lastFailure.message, /timed out/);
});

test('invalid_grant (revoked at the IdP) -> revoked state, operator action, no further IdP calls', async (t) => {
  const { h, lk, grant } = await signedIn(t);
  assert.ok(await idp.revokeGrantOf(grant.refresh_token));
  h.clock.advance(29_000);
  idp.stats.reset();
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED' && e.operatorAction === 'reauthorize' && e.fix === 'latchkey login idp' && e.exitCode === 4);
  assert.equal(idp.stats.refreshRequests, 2, 'the refusal is confirmed once (same refresh token, under the lock) before the grant is marked revoked');
  const other = await h.open();
  await assert.rejects(other.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED');
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED');
  assert.equal(idp.stats.refreshRequests, 2, 'the IdP is not called again for a revoked grant');
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp;
  assert.equal(doc.grant.revoked.reason, 'invalid_grant');
  assert.equal(doc.grant.refreshToken, grant.refresh_token, 'nothing blanked');
  const status = await lk.status();
  assert.equal(status[0]?.state, 'revoked');
  assert.equal(status[0]?.fix, 'latchkey login idp');
});

test('reuse detection is real: a refresh token replayed outside Latchkey revokes the grant, Latchkey reports it', async (t) => {
  const { h, lk, grant } = await signedIn(t);
  // Someone else (hand-written refresh code) uses the refresh token once: it rotates at the IdP.
  const outside = await idp.tokenRequest('public-client', { grant_type: 'refresh_token', refresh_token: grant.refresh_token });
  assert.equal(outside.status, 200);
  h.clock.advance(29_000);
  idp.stats.reset();
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED');
  assert.equal(idp.stats.revokedGrants, 1, 'the IdP revoked the whole grant on the replay');
  const newRt = (outside.body as { refresh_token: string }).refresh_token;
  const after = await idp.tokenRequest('public-client', { grant_type: 'refresh_token', refresh_token: newRt });
  assert.equal(after.status, 400, 'the rotated token died with the grant');
});

test('a response without refresh_token keeps the old one; one without expires_in is unknown expiry', async (t) => {
  const { h, lk, grant } = await signedIn(t);
  h.clock.advance(29_000);
  idp.setFault({ kind: 'json', body: { access_token: 'opaque-new-access', token_type: 'Bearer' }, times: 1 });
  t.after(() => idp.setFault(null));
  assert.equal(await lk.token('idp'), 'opaque-new-access');
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.grant;
  assert.equal(doc.refreshToken, grant.refresh_token, 'old refresh token kept');
  assert.equal(doc.expiresAt, undefined, 'unknown expiry');
  h.clock.advance(3_600_000);
  idp.stats.reset();
  assert.equal(await lk.token('idp'), 'opaque-new-access', 'unknown expiry is not refreshed on a timer by token()');
  assert.equal(idp.stats.refreshRequests, 0);
});

for (const [clientId, secretEnv, auth, secret] of [
  ['basic-client', 'CS', 'client_secret_basic', 'basic-secret'],
  ['post-client', 'CS', 'client_secret_post', 'post-secret'],
] as const) {
  test(`refresh with ${auth}`, async (t) => {
    const h = await idpHome(idp, { clientId, clientSecretEnv: secretEnv, clientAuth: auth });
    t.after(() => h.cleanup());
    const grant = await idp.mintGrant({ clientId });
    const lk = await h.open({ env: { CS: secret } });
    await lk.installGrant('idp', grant);
    h.clock.advance(29_000);
    const fresh = await lk.token('idp');
    assert.notEqual(fresh, grant.access_token);
    assert.equal(await idp.protectedStatus(fresh), 200);
  });
}

test('plain-http token endpoints are refused unless on loopback', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const lk = await h.open();
  await lk.installGrant('idp', grant, { tokenEndpoint: 'http://idp.example.com/token' });
  const { refreshTokenGrant } = await import('../../src/oauth/refresh.js');
  const { Secret } = await import('../../src/core/secret.js');
  await assert.rejects(
    refreshTokenGrant({ tokenEndpoint: 'http://idp.example.com/token', clientId: 'x', fetch }, new Secret('rt')),
    (e: LatchkeyError) => e.code === 'LK_INSECURE_ENDPOINT' && e.message.includes('must use https'),
  );
});

test('an IdP that answers refresh errors with HTTP 200 (GitHub bad_refresh_token) -> revoked, not retried forever', async (t) => {
  const { h, lk, grant } = await signedIn(t);
  h.clock.advance(29_000);
  idp.setFault({ kind: 'json', status: 200, body: { error: 'bad_refresh_token', error_description: 'The refresh token passed is incorrect or expired.' } });
  t.after(() => idp.setFault(null));
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED' && e.operatorAction === 'reauthorize');
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.grant;
  assert.equal(doc.revoked.reason, 'invalid_grant');
  assert.equal(doc.refreshToken, grant.refresh_token, 'nothing blanked');
});

test("Slack's token_type \"bot\" is a bearer token: the rotation is accepted", async (t) => {
  const { h, lk } = await signedIn(t);
  h.clock.advance(29_000);
  idp.setFault({ kind: 'json', body: { ok: true, access_token: 'xoxb-rotated', refresh_token: 'xoxe-1-next', token_type: 'bot', expires_in: 43200 }, times: 1 });
  t.after(() => idp.setFault(null));
  assert.equal(await lk.token('idp'), 'xoxb-rotated');
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')).sources.idp.grant;
  assert.equal(doc.refreshToken, 'xoxe-1-next');
});
