/**
 * Refresh ahead without waiting, against the real IdP behind a slow proxy: half a skew before a
 * token is due it is still handed out at once while one flight refreshes it; once it is due
 * (skew before expiry) callers wait for that flight, as always. Closing lets a flight past the lock
 * finish (it may have rotated) and stops one still waiting for it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LatchkeyError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';
import { refreshDueAt, TokenEngine, type EngineEvent } from '../../src/engine/fresh-token.js';
import { FileStore } from '../../src/store/file-store.js';
import { startIdp } from '../fixtures/idp.js';
import { makeHome } from '../helpers/home.js';
import { startLatencyProxy } from '../helpers/latency-proxy.js';
import { TestClock } from '../helpers/lk.js';
import { DelegatingStore, writeRecord } from '../helpers/store.js';
import type { StoreTx, WithLockOptions } from '../../src/store/store.js';
import { holdLock } from '../store/hold-lock.js';

async function statusOf(url: string, token: string): Promise<number> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

/**
 * The real IdP (access tokens of `ttlS`) behind a proxy that holds each answer `latencyMs`, and a
 * store with a grant obtained now (by a test clock) for source `s` that lives `ttlS`.
 */
async function slowIdpGrant(t: { after(fn: () => Promise<void> | void): void }, ttlS: number, latencyMs: number) {
  const idp = await startIdp({ accessTokenTtl: ttlS });
  t.after(() => idp.close());
  const proxy = await startLatencyProxy(idp.issuer, () => latencyMs);
  t.after(() => proxy.close());
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const clock = new TestClock();
  const minted = await idp.mintGrant();
  const now = clock.now();
  await writeRecord(store, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token), obtainedAt: now, expiresAt: now + ttlS * 1000 } }, 0);
  return { idp, proxy, store, clock, minted };
}

test('half a skew before it is due a token is served at once while one refresh runs; once due, callers wait for it', async (t) => {
  // Lifetime 600 s: skew = 120 s, refreshed ahead from 420 s, due at 480 s.
  const { idp, proxy, store, clock, minted } = await slowIdpGrant(t, 600, 1_000);
  const events: EngineEvent[] = [];
  const engine = new TokenEngine({
    store,
    clock,
    fetch: (i, init) => fetch(i, init),
    settings: async () => ({ tokenEndpoint: `${proxy.url}/token`, clientId: 'public-client' }),
    onEvent: (e) => events.push(e),
  });
  assert.equal(await engine.token('s'), minted.access_token);
  idp.stats.reset();

  clock.advance(430_000);
  const ahead = await Promise.all(Array.from({ length: 20 }, () => engine.token('s')));
  assert.deepEqual(new Set(ahead), new Set([minted.access_token]), 'the token, not yet due, is served');
  // Served before the refresh (held 1 s by the proxy) was answered: nobody waited for it.
  assert.ok(
    proxy.requests.every((r) => r.answeredAt === undefined),
    'served without waiting for the refresh',
  );
  while (proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
  assert.equal(proxy.requests.length, 1, 'one refresh started in the background');
  // The background flight lands in the memo: the next caller gets the new token.
  let rotated = minted.access_token;
  for (let i = 0; i < 300 && rotated === minted.access_token; i++) {
    await new Promise((r) => setTimeout(r, 10));
    rotated = await engine.token('s');
  }
  assert.notEqual(rotated, minted.access_token, 'the background refresh was served');
  assert.equal(idp.stats.refreshRequests, 1, 'one refresh for every caller of the window');
  assert.equal(await statusOf(idp.protectedUrl, rotated), 200);
  assert.equal((await store.read('s'))?.grant?.accessToken.reveal(), rotated, 'persisted before it was served');

  // The new grant counts from its request (599 s of life, due 479 s on); 490 s later it is due:
  // the caller waits for the refresh rather than take it.
  clock.advance(490_000);
  const waitStarted = performance.now();
  const waited = await engine.token('s');
  const waitedMs = performance.now() - waitStarted;
  assert.notEqual(waited, rotated, 'a new token, not the one close to expiry');
  assert.ok(waitedMs >= 900, `the caller waited for the refresh (${Math.round(waitedMs)} ms)`);
  assert.equal(idp.stats.refreshRequests, 2);
  assert.equal(idp.stats.revokedGrants, 0);
  assert.deepEqual(
    events.map((e) => e.outcome),
    ['refreshed', 'refreshed'],
  );
});

/** A store whose first lock takes `firstMs` to get (a busy fleet's claim); notes when each lock was got, by `clock`. */
class SlowFirstLockStore extends DelegatingStore {
  readonly lockedAt: number[] = [];
  #first = true;
  constructor(
    inner: FileStore,
    readonly clock: TestClock,
    readonly firstMs: number,
  ) {
    super(inner);
  }
  override async withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>, options?: WithLockOptions): Promise<T> {
    if (this.#first) {
      this.#first = false;
      await new Promise((r) => setTimeout(r, this.firstMs));
    }
    return super.withLock(
      key,
      (tx) => {
        this.lockedAt.push(this.clock.now());
        return fn(tx);
      },
      options,
    );
  }
}

test('a refresh that took a while to get ready is prepared that much ahead next time, and still sent only when due (no extra refresh at the IdP)', async (t) => {
  // 60 s: the skew is a third (20 s), so the grant is due at 40 s with no ahead window of its own.
  const { idp, store: fileStore, clock, minted } = await slowIdpGrant(t, 60, 50);
  const store = new SlowFirstLockStore(fileStore, clock, 400);
  const engine = new TokenEngine({ store, clock, fetch: (i, init) => fetch(i, init), settings: async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }) });
  assert.equal(await engine.token('s'), minted.access_token);
  idp.stats.reset();

  // Due: the caller waits for the refresh, whose lock took 400 ms to get.
  clock.advance(41_000);
  const first = await engine.token('s');
  assert.notEqual(first, minted.access_token);
  const firstGrant = (await store.read('s'))!.grant!;
  const due = refreshDueAt(firstGrant);

  // 300 ms before its successor is due: served at once, and the refresh is prepared now (its
  // lock taken) but its refresh token sent only once the grant is due.
  clock.offset = due - 300 - Date.now();
  assert.equal(await engine.token('s'), first, 'served, not yet due');
  let next = first;
  for (let i = 0; i < 300 && next === first; i++) {
    await new Promise((r) => setTimeout(r, 10));
    next = await engine.token('s');
  }
  assert.notEqual(next, first);
  assert.ok(store.lockedAt[1]! < due - 200, `prepared ahead: locked ${Math.round(due - store.lockedAt[1]!)} ms before due`);
  const sentAt = (await store.read('s'))!.grant!.obtainedAt;
  assert.ok(sentAt >= due, `sent when due, not before (${Math.round(sentAt - due)} ms after)`);
  assert.equal(idp.stats.refreshRequests, 2);
  assert.equal(idp.stats.revokedGrants, 0);
});

/** A store whose locked work waits until the test opens the gate (one process's lock queue). */
class GatedStore extends DelegatingStore {
  #open!: () => void;
  readonly gate = new Promise<void>((resolve) => (this.#open = resolve));
  open(): void {
    this.#open();
  }
  override async withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>, options?: WithLockOptions): Promise<T> {
    await this.gate;
    return super.withLock(key, fn, options);
  }
}

/** The real IdP and a home whose source `s` holds a grant that has just expired. */
async function expiredGrant(t: { after(fn: () => Promise<void> | void): void }) {
  const idp = await startIdp({ accessTokenTtl: 600 });
  t.after(() => idp.close());
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const minted = await idp.mintGrant();
  const now = Date.now();
  await writeRecord(store, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token), obtainedAt: now - 600_000, expiresAt: now - 1 } }, 0);
  return { idp, h, store, minted };
}

test('a refresh asks its transport to open the token endpoint’s connection before it waits for its lock', async (t) => {
  const { idp, store: fileStore, minted } = await expiredGrant(t);
  const gated = new GatedStore(fileStore);
  const preconnected: string[] = [];
  const engine = new TokenEngine({
    store: gated,
    clock: { now: () => Date.now() },
    fetch: (i, init) => fetch(i, init),
    preconnect: (url) => preconnected.push(url),
    settings: async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }),
  });
  const waiting = engine.token('s');
  for (let i = 0; i < 100 && preconnected.length === 0; i++) await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(preconnected, [idp.tokenEndpoint], 'asked while the lock is still closed');
  gated.open();
  assert.notEqual(await waiting, minted.access_token);
  assert.equal(preconnected.length, 1);
});

test('a flight started ahead and queued behind a sibling serves the sibling’s rotation while it is not due, even in its own ahead window', async (t) => {
  const idp = await startIdp({ accessTokenTtl: 600 });
  t.after(() => idp.close());
  const h = await makeHome();
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const fileStore = new FileStore({ path: h.storePath });
  const minted = await idp.mintGrant();
  const now = clock.now();
  await writeRecord(fileStore, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token), obtainedAt: now, expiresAt: now + 600_000 } }, 0);
  const settings = async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' });
  const fetchImpl = (i: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) => fetch(i, init);
  const gated = new GatedStore(new FileStore({ path: h.storePath }));
  const a = new TokenEngine({ store: gated, clock, fetch: fetchImpl, settings });
  const b = new TokenEngine({ store: fileStore, clock, fetch: fetchImpl, settings });
  assert.equal(await a.token('s'), minted.access_token);
  idp.stats.reset();
  // A's token is in its ahead window: served, and A's flight queues for the lock (the gate).
  clock.advance(430_000);
  assert.equal(await a.token('s'), minted.access_token);
  // Meanwhile a sibling rotates.
  const sibling = await b.refreshNow('s');
  assert.notEqual(sibling, minted.access_token);
  assert.equal(idp.stats.refreshRequests, 1);
  // 440 s on, the sibling's token (599 s of counted life: ahead from 419 s, due at 479 s) is in
  // its own ahead window but not due; A's own token has expired, so A's callers wait for the
  // flight.
  clock.advance(440_000);
  const waiting = a.token('s');
  gated.open();
  assert.equal(await waiting, sibling, 'the sibling’s rotation is served');
  assert.equal(idp.stats.refreshRequests, 1, 'not refreshed again by the queued flight');
  assert.equal(idp.stats.revokedGrants, 0);
});

/** A store that refuses locked work once closed (as the PostgreSQL store does). */
class ClosingStore extends DelegatingStore {
  closed = false;
  override async close(): Promise<void> {
    this.closed = true;
  }
  override withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>, options?: WithLockOptions): Promise<T> {
    if (this.closed) return Promise.reject(new Error('the store was closed'));
    return super.withLock(key, fn, options);
  }
}

test('closing waits for a refresh started ahead: the rotation the IdP made is saved, not lost with the process', async (t) => {
  const idp = await startIdp({ accessTokenTtl: 600 });
  t.after(() => idp.close());
  const proxy = await startLatencyProxy(idp.issuer, () => 500);
  t.after(() => proxy.close());
  const h = await makeHome();
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const store = new ClosingStore(new FileStore({ path: h.storePath }));
  const minted = await idp.mintGrant();
  const now = clock.now();
  await writeRecord(store, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token), obtainedAt: now, expiresAt: now + 600_000 } }, 0);
  const events: EngineEvent[] = [];
  const engine = new TokenEngine({ store, clock, fetch: (i, init) => fetch(i, init), settings: async () => ({ tokenEndpoint: `${proxy.url}/token`, clientId: 'public-client' }), onEvent: (e) => events.push(e) });
  assert.equal(await engine.token('s'), minted.access_token);
  clock.advance(430_000);
  assert.equal(await engine.token('s'), minted.access_token, 'served while the refresh runs ahead');
  // The process ends now (Latchkey.close: flush, then the store closes), the refresh in flight at
  // the IdP (a flight still waiting for the lock would stop: the next test).
  while (proxy.requests.length === 0) await new Promise((r) => setTimeout(r, 5));
  await engine.flush();
  await store.close();
  const saved = (await store.inner.read('s'))?.grant;
  assert.notEqual(saved?.refreshToken?.reveal(), minted.refresh_token, 'the rotated refresh token is in the store');
  assert.deepEqual(
    events.map((e) => e.outcome),
    ['refreshed'],
  );
  assert.equal(idp.stats.revokedGrants, 0);
});

test('closing does not wait out a lock held elsewhere: a flight still waiting for it stops, having sent nothing', async (t) => {
  const { idp, h, store, minted } = await expiredGrant(t);
  const other = new FileStore({ path: h.storePath }); // another process's store on the same home
  // The other process holds the source's lock (a refresh of its own, say) until the test ends.
  const holder = await holdLock(other, 's');
  t.after(async () => {
    holder.release();
    await holder.done;
  });
  const engine = new TokenEngine({ store, clock: { now: () => Date.now() }, fetch: (i, init) => fetch(i, init), settings: async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }) });
  idp.stats.reset();
  const waiting = engine.token('s');
  waiting.catch(() => undefined);
  await new Promise((r) => setTimeout(r, 200)); // the flight is waiting for the lock
  const started = Date.now();
  await engine.flush();
  assert.ok(Date.now() - started < 5_000, `close returned at once (${Date.now() - started} ms), not after the lock timeout (45 s)`);
  await assert.rejects(waiting, (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT' && /stopped waiting/.test(e.message));
  assert.equal(idp.stats.refreshRequests, 0, 'nothing was sent to the IdP');
  assert.equal((await store.read('s'))?.grant?.refreshToken?.reveal(), minted.refresh_token, 'the stored grant is as it was');
});
