/**
 * Two engines (two processes' worth) on one PostgreSQL store, the real IdP behind a slow proxy:
 * while one holds the claim and refreshes, the other waits for the claim and, at each retry (a
 * poll, or the holder's release heard), reads the store, and serves the holder's committed grant
 * as soon as it is there, without ever taking the claim (one claim, one refresh call, the same
 * token for both). Without it, every process of a fleet would take the claim in turn only to
 * adopt the holder's rotation.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Secret } from '../../src/core/secret.js';
import { TokenEngine } from '../../src/engine/fresh-token.js';
import { pgStoreCounters } from '../../src/store/pg/pg-store.js';
import { startIdp } from '../fixtures/idp.js';
import { freshPgSchema, openPgStore, pgSkipReason } from '../fixtures/pg.js';
import { startLatencyProxy } from '../helpers/latency-proxy.js';
import { writeRecord } from '../helpers/store.js';

const skip = pgSkipReason();

test('a waiter for the claim serves the holder’s committed rotation without taking the claim', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const idp = await startIdp({ accessTokenTtl: 60 });
  t.after(() => idp.close());
  const proxy = await startLatencyProxy(idp.issuer, () => 1_500);
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
  const claimsBefore = pgStoreCounters.claims;
  const first = a.token('s');
  // B starts once A's refresh is at the IdP (the proxy has the request): A holds the claim.
  while (proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
  const busyBefore = pgStoreCounters.busyPolls;
  const second = b.token('s');
  const [ta, tb] = await Promise.all([first, second]);
  assert.notEqual(ta, minted.access_token, 'A refreshed');
  assert.equal(tb, ta, 'B serves A’s rotation');
  assert.equal(idp.stats.refreshRequests, 1, 'one refresh at the IdP');
  assert.equal(idp.stats.revokedGrants, 0);
  assert.ok(pgStoreCounters.busyPolls > busyBefore, 'B found the claim held and waited');
  assert.equal(pgStoreCounters.claims - claimsBefore, 1, 'only A ever took the claim');
  assert.deepEqual(eventsB, ['adopted'], 'B adopted: it neither refreshed nor failed open');
  assert.equal((await storeB.read('s'))?.grant?.accessToken.reveal(), ta);
});

test('an IdP slower than the token lifetime: the waiter serves the answer it waited for, not a second refresh', { skip }, async (t) => {
  // 2 s tokens (counted from when the request was sent, less a second: 1 s by our estimate)
  // answered after 1.5 s: the holder's answer is past its estimated expiry when it is committed.
  // The holder serves it to its callers; the waiter must serve the same answer, and it works.
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const idp = await startIdp({ accessTokenTtl: 2 });
  t.after(() => idp.close());
  const proxy = await startLatencyProxy(idp.issuer, () => 1_500);
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
  const first = a.token('s');
  while (proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
  const second = b.token('s');
  const [ta, tb] = await Promise.all([first, second]);
  const stored = (await storeB.read('s'))?.grant;
  assert.ok(stored?.expiresAt !== undefined && stored.expiresAt <= Date.now(), 'the committed grant is past its estimated expiry (the case under test)');
  assert.equal(tb, ta, 'B serves the answer A got');
  assert.equal(idp.stats.refreshRequests, 1, 'one refresh at the IdP, not a second one for B');
  assert.deepEqual(eventsB, ['adopted']);
  const res = await fetch(idp.protectedUrl, { headers: { authorization: `Bearer ${tb}` } });
  assert.equal(res.status, 200, 'the IdP accepts the token served');
});
