import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { rotateGrant, SESSION_POLICY, SOURCE_POLICY, sourceSlot, type EngineEvent, type RotationDeps, type SlotMemory, type Unsaved } from '../../src/engine/rotation-core.js';
import { TokenEngine } from '../../src/engine/fresh-token.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';
import { FileStore } from '../../src/store/file-store.js';
import type { StoreTx } from '../../src/store/store.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { closedPort } from '../helpers/closed-port.js';
import { makeHome } from '../helpers/home.js';
import { TestClock } from '../helpers/lk.js';
import { CountingStore, DelegatingStore, writeRecord } from '../helpers/store.js';

/** The rotation core (src/engine/rotation-core.ts) with each policy, and the engine's bounded maps. */

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 30 });
});
after(async () => {
  await idp.close();
});

function deps(store: FileStore, clock: TestClock, policy: RotationDeps['policy'], events: EngineEvent[]): RotationDeps {
  const memory: SlotMemory = { held: new Map<string, Unsaved>(), cooldownUntil: new Map<string, number>() };
  return {
    store,
    clock,
    fetch: (i, init) => fetch(i, init),
    tokenTimeoutMs: 5_000,
    cooldownMs: 30_000,
    persistRetryDelaysMs: [],
    confirmRefusalDelayMs: 10,
    memory,
    policy,
    emit: (e) => events.push(e),
  };
}

test('policy: with the token endpoint unreachable, a source fails open with its expired token; a session refuses to serve it', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const clock = new TestClock();
  const now = clock.now();
  const expired = { accessToken: new Secret('expired-at'), refreshToken: new Secret('rt'), obtainedAt: now - 120_000, expiresAt: now - 60_000 };
  await writeRecord(store, 'k', { grant: expired }, 0);
  const down = `http://127.0.0.1:${await closedPort()}/token`;
  const settings = { tokenEndpoint: down, clientId: 'public-client' };
  const sourceEvents: EngineEvent[] = [];
  const served = await rotateGrant(deps(store, clock, SOURCE_POLICY, sourceEvents), sourceSlot('k', settings), {});
  assert.equal(served.grant.accessToken.reveal(), 'expired-at', 'the operator policy fails open');
  assert.ok(served.until !== undefined && served.until > clock.now(), 'with a cool-down');
  assert.deepEqual(sourceEvents.map((e) => e.outcome), ['fail_open']);

  clock.advance(31_000); // past the cool-down recorded in the store
  const sessionEvents: EngineEvent[] = [];
  await assert.rejects(
    rotateGrant(deps(store, clock, SESSION_POLICY, sessionEvents), sourceSlot('k', settings), {}),
    (e: LatchkeyError) => e.code === 'LK_REFRESH_FAILED' && e.exitCode === 3 && /has expired and could not be refreshed/.test(e.message) && !e.message.includes('expired-at'),
  );
  // Cooling down (recorded just now): still refused, without calling the IdP.
  await assert.rejects(rotateGrant(deps(store, clock, SESSION_POLICY, []), sourceSlot('k', settings), {}), (e: LatchkeyError) => e.code === 'LK_REFRESH_FAILED');
  const rec = await store.read('k');
  assert.equal(rec?.grant?.refreshToken?.reveal(), 'rt', 'nothing blanked');
});

test('policy: a session whose token is still valid is served it when the refresh fails (only an expired one is refused)', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const clock = new TestClock();
  const now = clock.now();
  // Due (inside the skew) but not expired.
  await writeRecord(store, 'k', { grant: { accessToken: new Secret('valid-at'), refreshToken: new Secret('rt'), obtainedAt: now - 50_000, expiresAt: now + 10_000 } }, 0);
  const settings = { tokenEndpoint: `http://127.0.0.1:${await closedPort()}/token`, clientId: 'public-client' };
  const served = await rotateGrant(deps(store, clock, SESSION_POLICY, []), sourceSlot('k', settings), {});
  assert.equal(served.grant.accessToken.reveal(), 'valid-at');
});

test('a rotation whose locked unit fails after the write (a commit that failed) is held, served and saved later: never dropped', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const inner = new FileStore({ path: h.storePath });
  const clock = new TestClock();
  const minted = await idp.mintGrant();
  const now = clock.now();
  await writeRecord(inner, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token!), obtainedAt: now - 60_000, expiresAt: now - 1 } }, 0);
  let failCommits = 1;
  let wrote = false;
  // The unit's write goes to a scratch record (what an uncommitted transaction would leave:
  // nothing), then the "commit" fails.
  const store = new (class extends DelegatingStore {
    override async withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>): Promise<T> {
      return this.inner.withLock(key, async (tx) => {
        wrote = false;
        const scratch: StoreTx = {
          ...tx,
          read: (k) => tx.read(k),
          remove: (k, v) => tx.remove(k, v),
          write: async (k, r, v) => {
            wrote = true;
            if (failCommits > 0) return { ...r, version: v + 1 };
            return tx.write(k, r, v);
          },
        };
        const result = await fn(scratch);
        if (wrote && failCommits > 0) {
          failCommits--;
          throw new LatchkeyError('LK_STORE_IO', 'commit failed: connection lost');
        }
        return result;
      });
    }
  })(inner);
  const events: EngineEvent[] = [];
  const engine = new TokenEngine({ store, clock, fetch: (i, init) => fetch(i, init), settings: async () => ({ tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }), onEvent: (e) => events.push(e), unsavedRetryMs: 1_000 });
  const token = await engine.token('s');
  assert.notEqual(token, minted.access_token, 'the rotated token is served');
  assert.deepEqual(events.map((e) => e.outcome), ['unsaved'], 'reported unsaved, not refreshed');
  assert.ok(engine.unsaved('s'));
  assert.equal((await inner.read('s'))?.grant?.accessToken.reveal(), minted.access_token, 'nothing was committed');
  clock.advance(1_500);
  assert.equal(await engine.token('s'), token, 'the held grant is saved, not refreshed again');
  assert.equal(engine.unsaved('s'), undefined);
  assert.equal((await inner.read('s'))?.grant?.accessToken.reveal(), token);
  assert.equal(idp.stats.revokedGrants, 0);
});

test('the engine keeps working past its map bound: an evicted memo costs one store read, nothing else', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const inner = new FileStore({ path: h.storePath });
  const clock = new TestClock();
  const now = clock.now();
  for (const k of ['a', 'b', 'c']) await writeRecord(inner, k, { grant: { accessToken: new Secret(`at-${k}`), obtainedAt: now, expiresAt: now + 3_600_000 } }, 0);
  const store = new CountingStore(inner);
  const engine = new TokenEngine({ store, clock, fetch: () => Promise.reject(new Error('no IdP call expected')), settings: async () => ({ tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' }), maxEntries: 2 });
  for (const k of ['a', 'b', 'c']) assert.equal(await engine.token(k), `at-${k}`);
  assert.equal(store.reads, 3);
  assert.equal(await engine.token('c'), 'at-c');
  assert.equal(await engine.token('b'), 'at-b');
  assert.equal(store.reads, 3, 'b and c are still memoised');
  assert.equal(await engine.token('a'), 'at-a');
  assert.equal(store.reads, 4, 'a was evicted (the bound is 2): read again');
});
