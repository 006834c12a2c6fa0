/**
 * The token-endpoint answer table (src/oauth/token-answer.ts, docs/DESIGN.md) against the real
 * oidc-provider, with the fault-injecting proxy of test/fixtures/fault-proxy.ts in front of its
 * token endpoint. Every test asks the IdP itself (its counters) whether a refresh token was
 * replayed: `revokedGrants` counts oidc-provider's reuse detection.
 */
import { after, afterEach, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { startFaultProxy, type FaultProxy } from '../fixtures/fault-proxy.js';
import { idpHome, type IdpHome } from '../helpers/lk.js';
import { runCli } from '../helpers/home.js';
import { LatchkeyError } from '../../src/core/errors.js';
import type { EngineEvent } from '../../src/engine/fresh-token.js';
import type { Latchkey, OpenLatchkeyOptions } from '../../src/latchkey.js';
import { refreshAhead } from '../../src/keeper/refresh-stage.js';
import type { TokenResponse } from '../fixtures/idp.js';
import { FileStore } from '../../src/store/file-store.js';
import { writeOutOfBand } from '../helpers/store.js';
import { Secret } from '../../src/core/secret.js';

const CONF_CLIENT = { client_id: 'lk-conf.x~y', client_secret: 'sec-ret_v.a~l-0123456789', token_endpoint_auth_method: 'client_secret_basic' };
const PLUS_CLIENT = { client_id: 'lk-plus', client_secret: 'se+cr/et=', token_endpoint_auth_method: 'client_secret_basic' };

let idp: Idp;
let proxy: FaultProxy;
before(async () => {
  const common = { application_type: 'native', grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], redirect_uris: ['http://127.0.0.1/callback'] };
  idp = await startIdp({ accessTokenTtl: 30, extraClients: [{ ...common, ...CONF_CLIENT }, { ...common, ...PLUS_CLIENT }] });
  proxy = await startFaultProxy(idp);
});
after(async () => {
  await proxy.close();
  await idp.close();
});
afterEach(() => {
  proxy.setFault(null);
  proxy.nonDecodingBasic = false;
});

interface Setup {
  h: IdpHome;
  lk: Latchkey;
  grant: TokenResponse;
  events: EngineEvent[];
}

/** A profile whose source `idp` refreshes through the proxy, a real grant installed and due for refresh. */
async function setup(t: TestContext, opts: { clientId?: string; secret?: string; clientAuth?: string; open?: OpenLatchkeyOptions } = {}): Promise<Setup> {
  const h = await idpHome({ ...idp, tokenEndpoint: proxy.tokenEndpoint }, {
    clientId: opts.clientId,
    ...(opts.secret !== undefined ? { clientSecretEnv: 'CS', clientAuth: opts.clientAuth ?? 'client_secret_basic' } : {}),
  });
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant(opts.clientId ? { clientId: opts.clientId } : {});
  const events: EngineEvent[] = [];
  const lk = await h.open({ onRefresh: (e) => events.push(e), confirmRefusalDelayMs: 50, env: opts.secret !== undefined ? { CS: opts.secret } : {}, ...opts.open });
  t.after(() => lk.close());
  await lk.installGrant('idp', grant);
  h.clock.advance(29_000); // due: past expiry - skew (min(120 s, 30 s / 3))
  idp.stats.reset();
  Object.assign(proxy.counters, { tokenRequests: 0, forwarded: 0, faulted: 0 });
  proxy.authorizations.length = 0;
  return { h, lk, grant, events };
}

interface StoredRecord {
  grant: { accessToken: string; refreshToken: string; expiresAt?: number; obtainedAt: number; revoked?: { reason: string } };
  lastFailure?: { kind: string; message: string; maybeConsumed?: boolean; until?: number };
}
async function stored(h: IdpHome): Promise<StoredRecord> {
  return (JSON.parse(await readFile(h.storePath, 'utf8')) as { sources: Record<string, StoredRecord> }).sources.idp!;
}


/** The refresh token in the store still works at the IdP (a refresh with it succeeds), checked outside Latchkey. */
async function storedRefreshTokenIsLive(h: IdpHome, clientId = 'public-client'): Promise<boolean> {
  const r = await idp.tokenRequest(clientId, { grant_type: 'refresh_token', refresh_token: (await stored(h)).grant.refreshToken });
  return r.status === 200;
}

// ---- 2xx ----

test('a 200 that rotates but has no access_token: the new refresh token is persisted first, then used once (never the consumed one)', async (t) => {
  const { h, lk, grant, events } = await setup(t);
  proxy.setFault({ kind: 'rewrite', times: 1, edit: ({ access_token: _drop, ...rest }) => rest });
  const token = await lk.token('idp');
  assert.notEqual(token, grant.access_token, 'a second refresh with the new refresh token gave a fresh access token');
  assert.equal(await idp.protectedStatus(token), 200);
  const rec = await stored(h);
  assert.notEqual(rec.grant.refreshToken, grant.refresh_token, 'the consumed refresh token is not kept');
  assert.equal(idp.stats.refreshRequests, 2);
  assert.equal(idp.stats.revokedGrants, 0, 'no refresh token replayed');
  assert.ok(events.some((e) => e.outcome === 'refreshed' && /rotated the refresh token but the rest of its answer is unusable/.test(e.message ?? '')));
  assert.ok(await storedRefreshTokenIsLive(h));
  assert.equal(idp.stats.revokedGrants, 0);
});

test('two unusable rotations in a row: the newest refresh token is stored, the caller gets the old access token, the next refresh uses the newest', async (t) => {
  const { h, lk, grant } = await setup(t);
  proxy.setFault({ kind: 'rewrite', times: 2, edit: (b) => ({ ...b, access_token: undefined, token_type: 42 }) });
  assert.equal(await lk.token('idp'), grant.access_token, 'fail open with the access token still held');
  const rec = await stored(h);
  assert.notEqual(rec.grant.refreshToken, grant.refresh_token);
  assert.equal(rec.lastFailure?.kind, 'transient');
  assert.equal(idp.stats.refreshRequests, 2);
  const status = (await lk.status())[0]!;
  assert.equal(status.state, 'failing');
  h.clock.advance(31_000);
  const fresh = await lk.token('idp');
  assert.notEqual(fresh, grant.access_token);
  assert.equal(await idp.protectedStatus(fresh), 200);
  assert.equal(idp.stats.refreshRequests, 3);
  assert.equal(idp.stats.revokedGrants, 0, 'the newest refresh token was the one sent');
});

test('a 200 with expires_in -3600 keeps the rotation (unknown expiry, with a warning)', async (t) => {
  const { h, lk, grant, events } = await setup(t);
  proxy.setFault({ kind: 'rewrite', times: 1, edit: (b) => ({ ...b, expires_in: -3600 }) });
  const token = await lk.token('idp');
  assert.notEqual(token, grant.access_token);
  const rec = await stored(h);
  assert.notEqual(rec.grant.refreshToken, grant.refresh_token);
  assert.equal(rec.grant.expiresAt, undefined, 'unknown expiry');
  assert.ok(events.some((e) => e.outcome === 'refreshed' && /"expires_in" is negative/.test(e.message ?? '')));
  assert.equal(idp.stats.revokedGrants, 0);
  assert.ok(await storedRefreshTokenIsLive(h));
});

for (const [label, value, expectUnknown] of [
  ['zero', 0, true],
  ['a non-number', 'soon', true],
  ['1e12', 1e12, false],
  ['1e300', 1e300, false],
] as const) {
  test(`expires_in ${label}: bounded, and status, preflight and the keeper stage never throw`, async (t) => {
    const { h, lk } = await setup(t);
    proxy.setFault({ kind: 'rewrite', times: 1, edit: (b) => ({ ...b, expires_in: value }) });
    const started = h.clock.now();
    await lk.token('idp');
    const rec = await stored(h);
    if (expectUnknown) assert.equal(rec.grant.expiresAt, undefined);
    else assert.ok(rec.grant.expiresAt !== undefined && rec.grant.expiresAt <= started + 366 * 86_400_000, `clamped to a year (${rec.grant.expiresAt})`);
    const status = (await lk.status())[0]!;
    assert.ok(status.expiresAt === null || !Number.isNaN(Date.parse(status.expiresAt)));
    const pf = await lk.preflight(['idp'], { useKeeperReport: false });
    assert.equal(pf.results[0]?.status, 'ok');
    assert.notEqual((await refreshAhead(lk, 'idp', true)).kind, 'transient');
    assert.equal(idp.stats.revokedGrants, 0);
  });
}

test('a store already holding an absurd expiresAt (1e303) is read clamped: status, token and the CLI work', async (t) => {
  const { h, lk } = await setup(t);
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')) as { sources: Record<string, StoredRecord> };
  doc.sources.idp!.grant.expiresAt = 1e303;
  await writeFile(h.storePath, JSON.stringify(doc), { mode: 0o600 });
  const status = (await lk.status())[0]!;
  assert.equal(status.state, 'ok');
  assert.ok(status.expiresAt !== null && Date.parse(status.expiresAt) < Date.now() + 367 * 86_400_000);
  const r = await runCli(['status'], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(r.stderr + r.stdout, /Invalid time value/);
});

test('the access token is a JWT whose exp comes before the expires_in time: the earlier one is the expiry', async (t) => {
  const { h, lk } = await setup(t);
  const nowS = Math.floor(h.clock.now() / 1000);
  const jwt = [{ alg: 'none', typ: 'at+jwt' }, { iat: nowS, exp: nowS + 5, sub: 'alice' }].map((p) => Buffer.from(JSON.stringify(p)).toString('base64url')).join('.') + '.sig';
  proxy.setFault({ kind: 'rewrite', times: 1, edit: (b) => ({ ...b, access_token: jwt, expires_in: 3600 }) });
  // A whole-second issuer: exp is up to a second earlier than requestedAt + its lifetime.
  const requested = h.clock.now();
  assert.equal(await lk.token('idp'), jwt);
  const rec = await stored(h);
  assert.ok(rec.grant.expiresAt !== undefined && rec.grant.expiresAt <= requested + 5_000 + 1_000, `expiry from the JWT (${rec.grant.expiresAt! - requested} ms)`);
  assert.equal(idp.stats.revokedGrants, 0);
});

test('import honours expires_at and iat from the grant file, and bounds expires_in 1e300 with a warning', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const nowS = Math.floor(Date.now() / 1000);
  const file = `${h.home}/grant.json`;
  await writeFile(file, JSON.stringify({ access_token: 'at-1', refresh_token: 'rt-1', expires_in: 3600, iat: nowS - 3000 }), { mode: 0o600 });
  let r = await runCli(['import', 'idp', '--grant', file], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(r.code, 0, r.stderr);
  let g = (await stored(h)).grant;
  assert.ok(g.expiresAt! <= (nowS + 600) * 1000 + 1000, 'expires_in counted from iat, not from the import');
  await writeFile(file, JSON.stringify({ access_token: 'at-2', refresh_token: 'rt-2', expires_in: 3600, expires_at: nowS + 60 }), { mode: 0o600 });
  r = await runCli(['import', 'idp', '--grant', file], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(r.code, 0, r.stderr);
  g = (await stored(h)).grant;
  assert.ok(g.expiresAt! <= (nowS + 60) * 1000, 'expires_at wins when earlier');
  await writeFile(file, JSON.stringify({ access_token: 'at-3', refresh_token: 'rt-3', expires_in: 1e300 }), { mode: 0o600 });
  r = await runCli(['import', 'idp', '--grant', file], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /beyond a year; clamped/);
  for (const cmd of [['status'], ['preflight', 'idp', '--json']]) {
    const out = await runCli(cmd, { env: { LATCHKEY_HOME: h.home } });
    assert.doesNotMatch(out.stderr + out.stdout, /Invalid time value/, cmd.join(' '));
    assert.notEqual(out.code, 1, `${cmd.join(' ')}: ${out.stderr}`);
  }
});

// ---- refusals ----

test('an empty HTTP 400 is a refused refresh token: confirmed once, then revoked; token exits 4 with `latchkey login`, status/preflight/keeper say reauthorize', async (t) => {
  const { h, lk } = await setup(t);
  proxy.setFault({ kind: 'answer', status: 400 });
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED' && e.exitCode === 4 && e.fix === 'latchkey login idp');
  assert.equal(proxy.counters.faulted, 2, 'the refusal was confirmed once with the same refresh token');
  const status = (await lk.status())[0]!;
  assert.equal(status.state, 'revoked');
  assert.equal(status.operatorAction, 'reauthorize');
  const pf = await lk.preflight(['idp'], { useKeeperReport: false });
  assert.equal(pf.results[0]?.status, 'action_required');
  assert.equal(pf.results[0]?.operatorAction, 'reauthorize');
  assert.equal(pf.exitCode, 4);
  assert.equal((await refreshAhead(lk, 'idp', true)).kind, 'revoked');
  h.clock.advance(3_600_000);
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED');
  assert.equal(proxy.counters.tokenRequests, 2, 'no retry after any cool-down');
  const cli = await runCli(['token', 'idp'], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(cli.code, 4);
  assert.match(cli.stderr, /latchkey login idp/);
  assert.equal(idp.stats.refreshRequests, 0, 'the IdP never saw the refused requests');
});

test('the CLI: an empty 400 to `latchkey token` exits 4 naming `latchkey login idp`', async (t) => {
  const { h } = await setup(t, { open: { clock: { now: () => Date.now() - 3_600_000 } } });
  // installed an hour in the past (real clock): due now for the CLI
  proxy.setFault({ kind: 'answer', status: 400 });
  const cli = await runCli(['token', 'idp'], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(cli.code, 4, cli.stderr);
  assert.match(cli.stderr, /latchkey login idp/);
  assert.equal(cli.stdout, '', 'no dead token printed');
  assert.equal(proxy.counters.faulted, 2);
});

test('one spurious invalid_grant (the grant alive at the IdP) is confirmed away: refreshed, not revoked', async (t) => {
  const { h, lk, grant } = await setup(t);
  proxy.setFault({ kind: 'answer', status: 400, times: 1, body: '{"error":"invalid_grant","error_description":"flaky"}', headers: { 'content-type': 'application/json' } });
  const token = await lk.token('idp');
  assert.notEqual(token, grant.access_token);
  assert.equal(await idp.protectedStatus(token), 200);
  assert.equal(proxy.counters.tokenRequests, 2);
  assert.equal(idp.stats.refreshRequests, 1);
  assert.equal(idp.stats.revokedGrants, 0);
  assert.equal((await stored(h)).grant.revoked, undefined);
});

test('client_secret_basic with a server that does not URL-decode Basic credentials: only characters outside unreserved are encoded, so it works', async (t) => {
  const { h, lk, grant } = await setup(t, { clientId: CONF_CLIENT.client_id, secret: CONF_CLIENT.client_secret });
  proxy.nonDecodingBasic = true;
  const token = await lk.token('idp');
  assert.notEqual(token, grant.access_token);
  assert.equal(await idp.protectedStatus(token), 200);
  const sent = Buffer.from(proxy.authorizations[0]!.slice('Basic '.length), 'base64').toString('utf8');
  assert.equal(sent.split(':')[0], CONF_CLIENT.client_id, 'the client id is sent as is');
  assert.equal(idp.stats.revokedGrants, 0);
  assert.ok(await storedRefreshTokenIsLive(h, CONF_CLIENT.client_id));
});

test('invalid_client (a secret a non-decoding server cannot match) is a configuration error naming --client-auth client_secret_post; the grant is kept', async (t) => {
  const { h, lk, grant } = await setup(t, { clientId: PLUS_CLIENT.client_id, secret: PLUS_CLIENT.client_secret });
  proxy.nonDecodingBasic = true;
  assert.equal(await lk.token('idp'), grant.access_token, 'fail open: the client, not the grant, is refused');
  const rec = await stored(h);
  assert.equal(rec.lastFailure?.kind, 'rejected');
  assert.match(rec.lastFailure!.message, /invalid_client/);
  assert.match(rec.lastFailure!.message, /--client-auth client_secret_post/);
  assert.equal(rec.grant.refreshToken, grant.refresh_token);
  const status = (await lk.status())[0]!;
  assert.equal(status.operatorAction, 'fix_config');
  const keeper = await refreshAhead(lk, 'idp', true);
  assert.equal(keeper.kind, 'action');
  assert.equal(idp.stats.revokedGrants, 0);
  proxy.nonDecodingBasic = false;
  h.clock.advance(31_000);
  assert.notEqual(await lk.token('idp'), grant.access_token, 'the same grant refreshes once the server decodes');
});

// ---- transient, and "may have been consumed" ----

test('429 with Retry-After: no call before it has passed (longer than the cool-down), then a normal refresh', async (t) => {
  const { h, lk, grant } = await setup(t);
  proxy.setFault({ kind: 'answer', status: 429, times: 1, headers: { 'retry-after': '120' } });
  assert.equal(await lk.token('idp'), grant.access_token);
  const rec = await stored(h);
  assert.equal(rec.lastFailure?.maybeConsumed, undefined, 'a 429 proves the token was not used');
  h.clock.advance(60_000);
  assert.equal(await lk.token('idp'), grant.access_token);
  const other = await h.open();
  t.after(() => other.close());
  assert.equal(await other.token('idp'), grant.access_token, 'another process honours it too');
  assert.equal(proxy.counters.tokenRequests, 1);
  h.clock.advance(61_000);
  assert.notEqual(await lk.token('idp'), grant.access_token);
  assert.equal(idp.stats.revokedGrants, 0);
});

test("a 5xx with an RFC 6749 error keeps the IdP's error and description in the message", async (t) => {
  const { h, lk } = await setup(t);
  proxy.setFault({ kind: 'answer', status: 503, times: 1, body: '{"error":"temporarily_unavailable","error_description":"down for maintenance"}', headers: { 'content-type': 'application/json' } });
  await lk.token('idp');
  const rec = await stored(h);
  assert.match(rec.lastFailure!.message, /503 temporarily_unavailable: down for maintenance/);
});

test('a stall before the IdP saw the request: fail open, no resend during the cool-down (not even forced), then the same token works', async (t) => {
  const { h, lk, grant } = await setup(t, { open: { tokenTimeoutMs: 300 } });
  proxy.setFault({ kind: 'stall_before_read', times: 1 });
  assert.equal(await lk.token('idp'), grant.access_token);
  const rec = await stored(h);
  assert.equal(rec.lastFailure?.maybeConsumed, true, 'a timeout cannot prove the request was not used');
  await lk.engine.refreshNow('idp');
  await lk.engine.forceRefresh('idp', grant.access_token);
  assert.equal(proxy.counters.tokenRequests, 1, 'nothing resent during the cool-down');
  h.clock.advance(31_000);
  const fresh = await lk.token('idp');
  assert.notEqual(fresh, grant.access_token);
  assert.equal(idp.stats.revokedGrants, 0);
});

test('a keeper refresh-ahead after a possibly-consumed failure waits until the access token is due', async (t) => {
  const { h, lk, grant } = await setup(t, { open: { tokenTimeoutMs: 300, cooldownMs: 5_000 } });
  h.clock.advance(-29_000); // back to a fresh grant: the keeper's forced refresh-ahead
  proxy.setFault({ kind: 'stall_before_read', times: 1 });
  await lk.engine.refreshNow('idp');
  assert.equal(proxy.counters.tokenRequests, 1);
  h.clock.advance(10_000); // the 5 s cool-down is over; the grant is due at ~19 s (29 s lifetime, skew a third)
  await lk.engine.refreshNow('idp');
  assert.equal(proxy.counters.tokenRequests, 1, 'not due: the possibly-consumed token is not sent ahead of need');
  h.clock.advance(15_000);
  assert.notEqual(await lk.engine.refreshNow('idp'), grant.access_token);
  assert.equal(idp.stats.revokedGrants, 0);
});

for (const kind of ['stall_after_forward', 'reset_after_forward', 'oversized_after_forward'] as const) {
  test(`${kind}: the IdP rotated, the answer was lost; nothing resent during the cool-down, then one resend that the IdP refuses, and the grant is reported revoked`, async (t) => {
    const { h, lk, grant } = await setup(t, { open: { tokenTimeoutMs: 500 } });
    proxy.setFault({ kind, times: 1 });
    assert.equal(await lk.token('idp'), grant.access_token, 'fail open');
    assert.equal(idp.stats.refreshSuccesses, 1, 'the IdP did rotate');
    const rec = await stored(h);
    assert.equal(rec.lastFailure?.maybeConsumed, true);
    assert.equal(rec.grant.refreshToken, grant.refresh_token);
    await lk.engine.refreshNow('idp');
    await lk.engine.forceRefresh('idp', grant.access_token);
    const other = await h.open();
    t.after(() => other.close());
    await other.token('idp');
    assert.equal(proxy.counters.tokenRequests, 1, 'the possibly-consumed token is not sent again during the cool-down, by anyone');
    assert.equal(idp.stats.revokedGrants, 0);
    // After the cool-down the only token there is gets sent: the documented cost of a lost answer.
    h.clock.advance(31_000);
    await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_GRANT_REVOKED' && e.exitCode === 4);
    assert.equal(idp.stats.revokedGrants, 1, 'one resend, once, after the cool-down: the IdP revoked the grant we had already lost');
  });
}

test('reset before the IdP saw the request: fail open, then the same token works after the cool-down', async (t) => {
  const { h, lk, grant } = await setup(t);
  proxy.setFault({ kind: 'reset_before_forward', times: 1 });
  assert.equal(await lk.token('idp'), grant.access_token);
  assert.equal(idp.stats.refreshRequests, 0);
  h.clock.advance(31_000);
  assert.notEqual(await lk.token('idp'), grant.access_token);
  assert.equal(idp.stats.revokedGrants, 0);
});

test('the pause before confirming a refusal is outside the lock: a sibling takes the lock meanwhile, and the confirmation succeeds', async (t) => {
  const { h, lk, grant } = await setup(t, { open: { confirmRefusalDelayMs: 1_500 } });
  proxy.setFault({ kind: 'answer', status: 400, times: 1, body: '{"error":"invalid_grant"}', headers: { 'content-type': 'application/json' } });
  const pending = lk.token('idp');
  while (proxy.counters.tokenRequests === 0) await new Promise((r) => setTimeout(r, 5));
  // Store contract v2: no locked unit waits. Before, the pause held the lock (1.5 s here).
  const sibling = new FileStore({ path: h.storePath });
  assert.equal(await sibling.withLock('idp', async () => 'free', { timeoutMs: 700 }), 'free');
  const token = await pending;
  assert.notEqual(token, grant.access_token);
  assert.equal(proxy.counters.tokenRequests, 2, 'the refused token was sent once more, then accepted');
  assert.equal(idp.stats.revokedGrants, 0);
});

test('a refusal, and meanwhile a newer grant written to the store (a login that skipped the lock): the newer one is adopted, the refused token is not sent again', async (t) => {
  const { h, lk } = await setup(t, { open: { confirmRefusalDelayMs: 1_000 } });
  const newer = await idp.mintGrant();
  idp.stats.reset();
  proxy.setFault({ kind: 'answer', status: 400, times: 1, body: '{"error":"invalid_grant"}', headers: { 'content-type': 'application/json' } });
  const pending = lk.token('idp');
  while (proxy.counters.tokenRequests === 0) await new Promise((r) => setTimeout(r, 5));
  // Written without the lock, as a login on another machine of a shared home might.
  const store = new FileStore({ path: h.storePath });
  const { version: _version, ...rec } = (await store.read('idp'))!;
  await writeOutOfBand(h.storePath, 'idp', { ...rec, grant: { ...rec.grant!, accessToken: new Secret(newer.access_token), refreshToken: new Secret(newer.refresh_token), expiresAt: h.clock.now() + 25_000, obtainedAt: h.clock.now() } });
  assert.equal(await pending, newer.access_token);
  assert.equal(proxy.counters.tokenRequests, 1, 'the refused token was not sent again');
  assert.equal((await stored(h)).grant.revoked, undefined);
  assert.equal(idp.stats.revokedGrants, 0);
});
