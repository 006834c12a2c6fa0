/**
 * `latchkey logout` (RFC 7009 revocation, then removal of the grant) against the real IdP.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, test } from 'node:test';
import { main } from '../../src/cli/main.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { openLatchkey } from '../../src/latchkey.js';
import { logout } from '../../src/login/logout.js';
import { startIdp, type Idp, type TokenResponse } from '../fixtures/idp.js';
import { makeHome, type TempHome } from '../helpers/home.js';
import { assertNoSecrets, captureStream, recordingFetch, storeBytes } from './login-support.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp.close();
});

async function homeWithGrant(oauth: Record<string, unknown>, clientId = 'public-client'): Promise<{ h: TempHome; grant: TokenResponse }> {
  const h = await makeHome({ version: 1, sources: { idp: { oauth: { clientId, ...oauth } } } });
  const grant = await idp.mintGrant({ clientId });
  const lk = await openLatchkey({ home: h.home, env: { CS: 'basic-secret' } });
  await lk.installGrant('idp', grant);
  await lk.close();
  return { h, grant };
}

async function refreshAtIdp(refreshToken: string, clientId = 'public-client'): Promise<number> {
  return (await idp.tokenRequest(clientId, { grant_type: 'refresh_token', refresh_token: refreshToken })).status;
}

async function protectedStatus(accessToken: string): Promise<number> {
  const res = await fetch(idp.protectedUrl, { headers: { authorization: `Bearer ${accessToken}` } });
  await res.body?.cancel();
  return res.status;
}

/** A loopback port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('logout revokes the refresh and access tokens at the IdP (endpoint by discovery) and removes the grant', async (t) => {
  const { h, grant } = await homeWithGrant({ issuer: idp.issuer });
  t.after(() => h.cleanup());
  const rec = recordingFetch();
  const lk = await openLatchkey({ home: h.home, env: {}, fetch: rec.fetch });
  assert.equal(await lk.token('idp'), grant.access_token);
  idp.stats.reset();
  const r = await logout(lk, 'idp');
  assert.equal(r.revocation, 'revoked');
  assert.deepEqual(r.revoked, { refreshToken: true, accessToken: true });
  assert.equal(r.revocationEndpoint, idp.revocationEndpoint);
  assert.equal(r.removed, true);
  assert.ok(idp.stats.revocationEndpointRevokedGrants >= 1, 'the IdP revoked the grant');
  assert.equal(await refreshAtIdp(grant.refresh_token), 400, 'the old refresh token is rejected by the IdP');
  assert.equal(await protectedStatus(grant.access_token), 401, 'the old access token is rejected too');
  const doc = JSON.parse((await storeBytes(h.storePath))!.toString('utf8')) as { sources: Record<string, { grant?: unknown }> };
  assert.equal(doc.sources.idp?.grant, undefined, 'the grant is gone from the store');
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_NO_GRANT' && e.fix === 'latchkey login idp');
  assertNoSecrets([...rec.secrets, grant.access_token, grant.refresh_token], JSON.stringify(r));
  await lk.close();
});

test('CLI: latchkey logout with a confidential client and a configured revocation endpoint', async (t) => {
  const { h, grant } = await homeWithGrant(
    { tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: idp.revocationEndpoint, clientSecret: 'env:CS', clientAuth: 'client_secret_basic' },
    'basic-client',
  );
  t.after(() => h.cleanup());
  const stdout = captureStream();
  const stderr = captureStream();
  const code = await main(['logout', 'idp'], { stdout, stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home, CS: 'basic-secret' } });
  assert.equal(code, 0, stderr.text());
  assert.equal(stdout.text(), `logged out of "idp": revoked the refresh token and access token at ${idp.revocationEndpoint} and removed the stored grant\n`);
  assert.equal(await refreshAtIdp(grant.refresh_token, 'basic-client'), 400);
  assertNoSecrets([grant.access_token, grant.refresh_token, 'basic-secret'], stdout.text(), stderr.text());
  const again = captureStream();
  assert.equal(await main(['logout', 'idp'], { stdout: again, stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home, CS: 'basic-secret' } }), 0);
  assert.match(again.text(), /no grant stored for "idp"; nothing to revoke or remove/);
});

test('logout when the IdP is unreachable: grant kept byte for byte, exit 3; --force removes it locally', async (t) => {
  const port = await closedPort();
  const { h, grant } = await homeWithGrant({ tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: `http://127.0.0.1:${port}/revoke` });
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const env = { LATCHKEY_HOME: h.home };
  const stdout = captureStream();
  const stderr = captureStream();
  const code = await main(['logout', 'idp'], { stdout, stderr, stdin: process.stdin, env });
  assert.equal(code, 3, stderr.text());
  assert.match(stderr.text(), /revoking the refresh token failed: cannot reach the IdP: connection refused by 127\.0\.0\.1:\d+ \(ECONNREFUSED\); the grant for "idp" was kept/);
  assert.match(stderr.text(), /fix: retry `latchkey logout idp`, or `latchkey logout idp --force`/);
  assert.equal(stdout.text(), '');
  assert.deepEqual(await storeBytes(h.storePath), before, 'store.json untouched');
  assert.equal(await refreshAtIdp(grant.refresh_token), 200, 'the grant is still alive at the IdP (nothing was revoked)');

  const forced = captureStream();
  const forcedErr = captureStream();
  assert.equal(await main(['logout', 'idp', '--force'], { stdout: forced, stderr: forcedErr, stdin: process.stdin, env }), 0, forcedErr.text());
  assert.match(forced.text(), /logged out of "idp" locally \(--force\): removed the stored grant; revocation at the IdP failed/);
  assert.match(forcedErr.text(), /warning: revoking the refresh token failed: cannot reach the IdP/);
  const lk = await openLatchkey({ home: h.home, env: {} });
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_NO_GRANT');
  await lk.close();
  assertNoSecrets([grant.access_token, grant.refresh_token], stderr.text(), forced.text(), forcedErr.text());
});

test('logout when discovery fails (issuer unreachable, no configured revocation endpoint): grant kept, exit 3', async (t) => {
  const port = await closedPort();
  const { h } = await homeWithGrant({ issuer: `http://127.0.0.1:${port}`, tokenEndpoint: idp.tokenEndpoint });
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const lk = await openLatchkey({ home: h.home, env: {} });
  const err = await logout(lk, 'idp').catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.equal(err.exitCode, 3);
  assert.match(err.message, /cannot find the revocation endpoint: .*discovery failed.*; the grant for "idp" was kept/);
  assert.deepEqual(await storeBytes(h.storePath), before);
  await lk.close();
});

test('logout when the IdP refuses the client (wrong secret): grant kept, exit 1 with the reason', async (t) => {
  const { h, grant } = await homeWithGrant(
    { tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: idp.revocationEndpoint, clientSecret: 'env:CS', clientAuth: 'client_secret_basic' },
    'basic-client',
  );
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const stderr = captureStream();
  const code = await main(['logout', 'idp'], { stdout: captureStream(), stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home, CS: 'wrong-secret-value' } });
  assert.equal(code, 1, stderr.text());
  assert.match(stderr.text(), /revoking the refresh token failed: .*(invalid_client|client's authentication)/);
  assert.deepEqual(await storeBytes(h.storePath), before);
  assert.equal(await refreshAtIdp(grant.refresh_token, 'basic-client'), 200, 'still valid at the IdP');
  assertNoSecrets([grant.access_token, grant.refresh_token, 'wrong-secret-value'], stderr.text());
});

test('logout when the client secret does not resolve: grant kept (exit 1); --force removes it locally', async (t) => {
  const { h } = await homeWithGrant(
    { tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: idp.revocationEndpoint, clientSecret: 'env:CS', clientAuth: 'client_secret_basic' },
    'basic-client',
  );
  t.after(() => h.cleanup());
  const before = await storeBytes(h.storePath);
  const lk = await openLatchkey({ home: h.home, env: {} });
  const err = await logout(lk, 'idp').catch((e: unknown) => e);
  assert.ok(err instanceof LatchkeyError);
  assert.equal(err.exitCode, 1);
  assert.match(err.message, /cannot revoke: idp: client secret .*CS is not set; the grant for "idp" was kept/);
  assert.deepEqual(await storeBytes(h.storePath), before);
  const forced = await logout(lk, 'idp', { force: true });
  assert.equal(forced.revocation, 'failed_forced');
  assert.equal(forced.removed, true);
  await lk.close();
});

test('logout without a revocation endpoint removes the grant locally and says the tokens stay valid', async (t) => {
  const { h, grant } = await homeWithGrant({ tokenEndpoint: idp.tokenEndpoint });
  t.after(() => h.cleanup());
  const stdout = captureStream();
  const stderr = captureStream();
  assert.equal(await main(['logout', 'idp'], { stdout, stderr, stdin: process.stdin, env: { LATCHKEY_HOME: h.home } }), 0, stderr.text());
  assert.match(stdout.text(), /logged out of "idp" locally: removed the stored grant; the IdP offers no token revocation, so the tokens stay valid there until they expire/);
  assert.equal(await refreshAtIdp(grant.refresh_token), 200, 'not revoked at the IdP (it offers no endpoint we know of)');
});

test('a login after logout works again (revocation did not poison the source)', async (t) => {
  const { h } = await homeWithGrant({ issuer: idp.issuer });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env: {} });
  await logout(lk, 'idp');
  const fresh = await idp.mintGrant();
  await lk.installGrant('idp', fresh);
  assert.equal(await lk.token('idp'), fresh.access_token);
  await lk.close();
});
