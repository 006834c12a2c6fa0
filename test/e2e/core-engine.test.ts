import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startIdp, type Idp, type TokenResponse } from '../fixtures/idp.js';
import { idpHome, TestClock, type IdpHome } from '../helpers/lk.js';
import { makeHome } from '../helpers/home.js';
import { TokenEngine, type EngineEvent, type TokenEngineOptions } from '../../src/engine/fresh-token.js';
import { FileStore } from '../../src/store/file-store.js';
import { LatchkeyError } from '../../src/core/errors.js';
import type { SourceRecord, Store, StoreTx } from '../../src/store/store.js';
import { DelegatingStore, writeOutOfBand, writeRecord } from '../helpers/store.js';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 30 });
});
after(async () => {
  await idp.close();
});


function storedGrant(doc: string): { accessToken: string; refreshToken: string } {
  return (JSON.parse(doc) as { sources: Record<string, { grant: { accessToken: string; refreshToken: string } }> }).sources.idp!.grant;
}

/** A file store whose locked writes fail on demand (the disk filling up), or race a writer that skips the lock. */
class FaultyStore extends DelegatingStore {
  readonly path: string;
  /** Writes still to fail: a number, or Infinity for "until further notice". */
  failWrites = 0;
  /** Runs before the next write only (e.g. an out-of-band writer bumping the version). */
  beforeNextWrite: (() => Promise<void>) | undefined;
  writes = 0;
  constructor(path: string) {
    super(new FileStore({ path }));
    this.path = path;
  }
  override wrapTx(tx: StoreTx): StoreTx {
    return {
      ...tx,
      read: (key) => tx.read(key),
      remove: (key, version) => tx.remove(key, version),
      write: async (key, record, expectedVersion) => {
        this.writes++;
        const hook = this.beforeNextWrite;
        this.beforeNextWrite = undefined;
        if (hook) await hook();
        if (this.failWrites > 0) {
          this.failWrites--;
          const cause = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          throw new LatchkeyError('LK_STORE_IO', `cannot write the store ${this.location}: ENOSPC; it was left as it was`, { cause });
        }
        return tx.write(key, record, expectedVersion);
      },
    };
  }
}

/** A home whose `idp` source holds a grant just minted at the IdP, read and written through a {@link FaultyStore} (the home goes after the test). */
async function faultyHome(t: TestContext): Promise<{ h: IdpHome; grant: TokenResponse; store: FaultyStore }> {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  await (await h.open()).installGrant('idp', grant);
  return { h, grant, store: new FaultyStore(h.storePath) };
}

/** An engine on `store` that refreshes at the test IdP, on the home's clock. */
function engineOn(h: IdpHome, store: Store, options: Partial<TokenEngineOptions> = {}): TokenEngine {
  return new TokenEngine({ store, clock: h.clock, fetch: (i, init) => fetch(i, init), settings: async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }), ...options });
}

test('the cool-down after a transient failure holds across instances (a new CLI process per job does not call the IdP again)', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const first = await h.open();
  await first.installGrant('idp', grant);
  h.clock.advance(29_000);
  idp.stats.reset();
  idp.setFault({ kind: 'status', status: 503 });
  t.after(() => idp.setFault(null));
  assert.equal(await first.token('idp'), grant.access_token, 'fails open');
  assert.equal(idp.stats.refreshRequests, 1);
  h.clock.advance(5_000);
  const second = await h.open();
  assert.equal(await second.token('idp'), grant.access_token, 'another instance fails open too');
  assert.equal(idp.stats.refreshRequests, 1, 'without calling the IdP during the cool-down recorded in the store');
  idp.setFault(null);
  h.clock.advance(26_000);
  const third = await h.open();
  const fresh = await third.token('idp');
  assert.notEqual(fresh, grant.access_token, 'after the cool-down the next caller refreshes');
  assert.equal(idp.stats.refreshRequests, 2);
  assert.equal(idp.stats.revokedGrants, 0);
});

test('callers queued on the lock behind a holder whose refresh timed out fail open at once, without calling the IdP again', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  const instances = await Promise.all(Array.from({ length: 4 }, () => h.open({ tokenTimeoutMs: 700 })));
  await instances[0]!.installGrant('idp', grant);
  h.clock.advance(29_000);
  idp.stats.reset();
  idp.setFault({ kind: 'stall' });
  t.after(() => idp.setFault(null));
  const started = Date.now();
  const tokens = await Promise.all(instances.map((lk) => lk.token('idp')));
  const took = Date.now() - started;
  assert.deepEqual(new Set(tokens), new Set([grant.access_token]));
  assert.equal(idp.stats.refreshRequests, 1, 'one attempt, not one per queued instance');
  assert.ok(took < 2_500, `the queue did not wait out one timeout per instance (${took} ms)`);
});

test('forceRefresh never hands back the rejected token from a plain token() flight it happened to meet', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const clock = new TestClock();
  const now = clock.now();
  const { Secret } = await import('../../src/core/secret.js');
  await writeRecord(store, 's', { grant: { accessToken: new Secret('old'), refreshToken: new Secret('rt'), obtainedAt: now, expiresAt: now + 3_600_000 } }, 0);
  // The first read fails (a store hiccup): the flight it belongs to rejects, and a caller that
  // retries at once starts a new plain flight, which reads the token the API just rejected.
  let reads = 0;
  const scriptedRead = async (source: string, read: (s: string) => Promise<SourceRecord | undefined>): Promise<SourceRecord | undefined> => {
    reads++;
    if (reads === 1) throw new LatchkeyError('LK_STORE_IO', 'hiccup');
    const rec = await read(source);
    // Under the lock (the forced refresh): a sibling rotated meanwhile.
    if (reads >= 3 && rec?.grant) return { ...rec, grant: { ...rec.grant, accessToken: new Secret('new') } };
    return rec;
  };
  const scripted: Store = new (class extends DelegatingStore {
    override read(source: string): Promise<SourceRecord | undefined> {
      return scriptedRead(source, (s) => store.read(s));
    }
    override wrapTx(tx: StoreTx): StoreTx {
      return { ...tx, read: (key) => scriptedRead(key, (s) => tx.read(s)) };
    }
  })(store);
  const engine = new TokenEngine({ store: scripted, clock, fetch: () => Promise.reject(new Error('no IdP call expected')), settings: async () => ({ tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' }) });
  const plain = engine.token('s');
  const retried = plain.catch(() => engine.token('s'));
  const forced = engine.forceRefresh('s', 'old');
  assert.equal(await retried, 'old', 'the retried plain flight reads the stored token');
  assert.equal(await forced, 'new', 'the forced refresh went under the lock instead of returning the rejected token');
});

test('a store write that fails once after the IdP rotated is retried under the lock: the rotation is saved', async (t) => {
  const { h, grant, store } = await faultyHome(t);
  const events: EngineEvent[] = [];
  const engine = engineOn(h, store, { onEvent: (e) => events.push(e), persistRetryDelaysMs: [20, 20] });
  h.clock.advance(29_000);
  store.failWrites = 1;
  const fresh = await engine.token('idp');
  assert.notEqual(fresh, grant.access_token);
  const doc = storedGrant(await readFile(h.storePath, 'utf8'));
  assert.equal(doc.accessToken, fresh, 'saved on the second attempt');
  assert.notEqual(doc.refreshToken, grant.refresh_token);
  assert.deepEqual(events.map((e) => e.outcome), ['refreshed']);
  assert.match(String(events[0]!.message), /saved at attempt 2 \(ENOSPC\)/);
  assert.equal(engine.unsaved('idp'), undefined);
});

test('a write that conflicts under the lock (a writer that skipped the lock) is merged, not lost', async (t) => {
  const { h, store } = await faultyHome(t);
  const engine = engineOn(h, store, { persistRetryDelaysMs: [20, 20] });
  h.clock.advance(29_000);
  // Just before the engine's write, something bumps the record (a session capture, say).
  store.beforeNextWrite = async () => {
    const rec = (await store.inner.read('idp'))!;
    const { version: _version, ...rest } = rec;
    const { Secret } = await import('../../src/core/secret.js');
    await writeOutOfBand(store.path, 'idp', { ...rest, session: { cookies: { sid: new Secret('cookie') }, updatedAt: 1 } });
  };
  const fresh = await engine.token('idp');
  const text = await readFile(h.storePath, 'utf8');
  assert.equal(storedGrant(text).accessToken, fresh, 'the rotation is saved');
  assert.equal((JSON.parse(text) as { sources: { idp: { session: { cookies: { sid: string } } } } }).sources.idp.session.cookies.sid, 'cookie', 'the other writer’s change is kept');
  assert.equal(idp.stats.revokedGrants, 0);
});

test('disk full after the IdP rotated: the new grant is held in memory, used, never replayed from the store, and saved once the disk is back', async (t) => {
  const { h, grant, store } = await faultyHome(t);
  const events: EngineEvent[] = [];
  const lk = await h.open({ store, onRefresh: (e) => events.push(e) });
  const before = await readFile(h.storePath);
  h.clock.advance(29_000);
  idp.stats.reset();
  store.failWrites = Infinity;
  const first = await lk.token('idp');
  assert.notEqual(first, grant.access_token, 'the refreshed token is handed out: it is valid');
  assert.equal(await idp.protectedStatus(first), 200);
  assert.deepEqual(await readFile(h.storePath), before, 'the store is as it was');
  assert.deepEqual(events.map((e) => e.outcome), ['unsaved']);
  const held = lk.engine.unsaved('idp');
  assert.ok(held);
  assert.match(held.message, /could not be saved to .*store\.json \(ENOSPC\); process \d+ holds it in memory/);
  const [row] = await lk.status();
  assert.equal(row?.state, 'failing');
  assert.match(row!.message, /could not be saved/);
  for (const text of [held.message, JSON.stringify(row), ...events.map((e) => String(e.message))]) {
    assert.ok(!text.includes(first) && !text.includes(grant.refresh_token), 'no token in what is reported');
  }

  // The held grant comes due: the refresh uses its refresh token, not the consumed one in the store.
  h.clock.advance(29_000);
  const second = await lk.token('idp');
  assert.notEqual(second, first);
  assert.equal(await idp.protectedStatus(second), 200);
  assert.equal(idp.stats.revokedGrants, 0, 'the consumed refresh token in the store was never replayed');
  assert.equal(idp.stats.refreshRequests, 2);

  // The disk is back: within the retry interval the held grant is saved.
  store.failWrites = 0;
  h.clock.advance(6_000);
  assert.equal(await lk.token('idp'), second);
  assert.equal(lk.engine.unsaved('idp'), undefined);
  assert.equal(storedGrant(await readFile(h.storePath, 'utf8')).accessToken, second);
  assert.ok(events.some((e) => e.outcome === 'saved'));

  // Another process carries on from the store: its refresh token is the live one.
  h.clock.advance(29_000);
  const other = await h.open();
  const third = await other.token('idp');
  assert.notEqual(third, second);
  assert.equal(await idp.protectedStatus(third), 200);
  assert.equal(idp.stats.revokedGrants, 0);
});

test('a held grant gives way to a grant installed meanwhile (a new login): the store wins', async (t) => {
  const { h, store } = await faultyHome(t);
  const engine = engineOn(h, store, { persistRetryDelaysMs: [], unsavedRetryMs: 1_000 });
  h.clock.advance(29_000);
  store.failWrites = Infinity;
  const held = await engine.token('idp');
  assert.ok(engine.unsaved('idp'));
  const relogin = await idp.mintGrant();
  await (await h.open()).installGrant('idp', relogin);
  store.failWrites = 0;
  h.clock.advance(1_500);
  assert.equal(await engine.token('idp'), relogin.access_token);
  assert.notEqual(held, relogin.access_token);
  assert.equal(engine.unsaved('idp'), undefined);
  assert.equal(storedGrant(await readFile(h.storePath, 'utf8')).refreshToken, relogin.refresh_token, 'the new login is not overwritten');
});

test('the client secret is resolved for a refresh only: a fresh token is served without it, status says it is missing', async (t) => {
  const h = await idpHome(idp, { clientId: 'basic-client', clientSecretEnv: 'CS', clientAuth: 'client_secret_basic' });
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant({ clientId: 'basic-client' });
  const lk = await h.open({ env: {} }); // CS unset (a cron job without the keeper's environment)
  await lk.installGrant('idp', grant);
  assert.equal(await lk.token('idp'), grant.access_token, 'a fresh token needs no client secret');
  const [row] = await lk.status();
  assert.equal(row?.state, 'error');
  assert.equal(row?.operatorAction, 'fix_config');
  assert.match(row!.message, /client secret .*CS is not set \(needed for the next refresh\)/);
  h.clock.advance(29_000);
  idp.stats.reset();
  await assert.rejects(lk.token('idp'), (e: LatchkeyError) => e.code === 'LK_SECRET_UNRESOLVED' && e.exitCode === 1 && /client secret/.test(e.message));
  assert.equal(idp.stats.refreshRequests, 0);
  const withSecret = await h.open({ env: { CS: 'basic-secret' } });
  assert.notEqual(await withSecret.token('idp'), grant.access_token, 'with the secret the refresh goes through');
});
