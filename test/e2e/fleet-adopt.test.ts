/**
 * Two engines (two processes' worth) on one PostgreSQL store, the real IdP behind a slow proxy:
 * while one holds the claim and refreshes, the other waits for the claim and, at each retry (a
 * poll, or the holder's release heard), reads the store, and serves the holder's committed grant
 * as soon as it is there, without ever taking the claim (one claim, one refresh call, the same
 * token for both). Without it, every process of a fleet would take the claim in turn only to
 * adopt the holder's rotation. With an IdP slower than the token's lifetime, the rotation is
 * past its estimated expiry when it commits, and the waiter still serves it (the holder does).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { Secret } from '../../src/core/secret.js';
import { TokenEngine } from '../../src/engine/fresh-token.js';
import { pgStoreCounters } from '../../src/store/pg/pg-store.js';
import { startIdp } from '../fixtures/idp.js';
import { freshPgSchema, openPgStore, pgSkipReason } from '../fixtures/pg.js';
import { startLatencyProxy } from '../helpers/latency-proxy.js';
import { writeRecord } from '../helpers/store.js';

const skip = pgSkipReason();

/**
 * Two engines (A and B) on one fresh PostgreSQL schema, each with its own store, the real IdP
 * (access tokens of `accessTokenTtl` s) behind a proxy holding every request `proxyMs`, and one
 * grant stored already due; B's refresh outcomes are recorded.
 */
async function twoEngines(t: TestContext, accessTokenTtl: number, proxyMs: number) {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const idp = await startIdp({ accessTokenTtl });
  t.after(() => idp.close());
  const proxy = await startLatencyProxy(idp.issuer, () => proxyMs);
  t.after(() => proxy.close());
  const storeA = openPgStore(db.url);
  const storeB = openPgStore(db.url);
  t.after(() => storeA.close());
  t.after(() => storeB.close());
  const minted = await idp.mintGrant();
  const now = Date.now();
  await writeRecord(storeA, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token), obtainedAt: now - 60_000, expiresAt: now - 1 } }, 0);
  const settings = async () => ({ tokenEndpoint: `${proxy.url}/token`, clientId: 'public-client' });
  const clock = { now: () => Date.now() };
  const eventsB: string[] = [];
  const a = new TokenEngine({ store: storeA, clock, fetch: (i, init) => fetch(i, init), settings });
  const b = new TokenEngine({ store: storeB, clock, fetch: (i, init) => fetch(i, init), settings, onEvent: (e) => eventsB.push(e.outcome) });
  idp.stats.reset();
  return { idp, proxy, storeB, minted, a, b, eventsB };
}

/** A asks for the token; once its refresh is at the IdP (A holds the claim), B asks too. */
async function bothAsk(env: Awaited<ReturnType<typeof twoEngines>>, beforeB: () => void = () => undefined): Promise<[string, string]> {
  const first = env.a.token('s');
  while (env.proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
  beforeB();
  const second = env.b.token('s');
  return Promise.all([first, second]);
}

test('a waiter for the claim serves the holder’s committed rotation without taking the claim', { skip }, async (t) => {
  const env = await twoEngines(t, 60, 1_500);
  const claimsBefore = pgStoreCounters.claims;
  let busyBefore = 0;
  const [ta, tb] = await bothAsk(env, () => (busyBefore = pgStoreCounters.busyPolls));
  assert.notEqual(ta, env.minted.access_token, 'A refreshed');
  assert.equal(tb, ta, 'B serves A’s rotation');
  assert.equal(env.idp.stats.refreshRequests, 1, 'one refresh at the IdP');
  assert.equal(env.idp.stats.revokedGrants, 0);
  assert.ok(pgStoreCounters.busyPolls > busyBefore, 'B found the claim held and waited');
  assert.equal(pgStoreCounters.claims - claimsBefore, 1, 'only A ever took the claim');
  assert.deepEqual(env.eventsB, ['adopted'], 'B adopted: it neither refreshed nor failed open');
  assert.equal((await env.storeB.read('s'))?.grant?.accessToken.reveal(), ta);
});

test('an IdP slower than the token lifetime: the waiter serves the answer it waited for, not a second refresh', { skip }, async (t) => {
  // 2 s tokens (counted from when the request was sent, less a second: 1 s by our estimate)
  // answered after 1.5 s: the holder's answer is past its estimated expiry when it is committed.
  // The holder serves it to its callers; the waiter must serve the same answer, and it works.
  const env = await twoEngines(t, 2, 1_500);
  const [ta, tb] = await bothAsk(env);
  const stored = (await env.storeB.read('s'))?.grant;
  assert.ok(stored?.expiresAt !== undefined && stored.expiresAt <= Date.now(), 'the committed grant is past its estimated expiry (the case under test)');
  assert.equal(tb, ta, 'B serves the answer A got');
  assert.equal(env.idp.stats.refreshRequests, 1, 'one refresh at the IdP, not a second one for B');
  assert.deepEqual(env.eventsB, ['adopted']);
  const res = await fetch(env.idp.protectedUrl, { headers: { authorization: `Bearer ${tb}` } });
  assert.equal(res.status, 200, 'the IdP accepts the token served');
});
