import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Keeper } from '../../src/keeper/keeper.js';
import { jsonLineLog } from '../../src/keeper/log.js';
import { openLatchkey } from '../../src/latchkey.js';
import { FileStore } from '../../src/store/file-store.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome } from '../helpers/home.js';
import { idpHome, TestClock } from '../helpers/lk.js';
import { CountingStore } from '../helpers/store.js';

/**
 * Store reads per need (issue 9): the engine reads once to decide and once under the lock, never
 * per stage; a keeper cycle lists metadata (no secret) and reads a record only for what it refreshes.
 */

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 30 });
});
after(async () => {
  await idp.close();
});

test('a token that is fresh costs one store read; a refresh two (the unlocked read and the re-read under the lock) and one write', async (t) => {
  const h = await idpHome(idp);
  t.after(() => h.cleanup());
  const grant = await idp.mintGrant();
  await (await h.open()).installGrant('idp', grant);
  const store = new CountingStore(new FileStore({ path: h.storePath }));
  const lk = await h.open({ store });
  assert.equal(await lk.token('idp'), grant.access_token);
  assert.deepEqual([store.reads, store.writes], [1, 0], 'fresh: one read');
  assert.equal(await lk.token('idp'), grant.access_token);
  assert.equal(store.reads, 1, 'then the memo: no read');
  store.reset();
  h.clock.advance(29_000);
  const fresh = await lk.token('idp');
  assert.notEqual(fresh, grant.access_token);
  assert.deepEqual([store.reads, store.writes, store.lists, store.metaLists], [2, 1, 0, 0]);
  assert.equal(lk.engine.knownUnexpired('idp', fresh), true, 'the CLI needs no read to tell it has not expired');
  assert.equal(lk.engine.knownUnexpired('idp', grant.access_token), false);
});

test('a keeper cycle lists metadata once (never every secret) and reads a record only for a source it refreshes', async (t) => {
  const names = ['a', 'b', 'c', 'd'];
  const oauth = { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' };
  const h = await makeHome({ version: 1, sources: Object.fromEntries(names.map((n) => [n, { oauth, probe: { url: idp.protectedUrl } }])) });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const setup = await openLatchkey({ home: h.home, clock, env: {} });
  for (const n of names) await setup.installGrant(n, await idp.mintGrant());
  await setup.close();
  const store = new CountingStore(new FileStore({ path: join(h.home, 'store.json') }));
  const lk = await openLatchkey({ home: h.home, clock, env: {}, store });
  const keeper = await Keeper.open({ lk, log: jsonLineLog({ write: () => true }, clock), intervalSeconds: 3600 });
  t.after(() => keeper.stop(0));
  await keeper.runCycle(); // the first probe of each source reads its token once (the engine remembers it)
  store.reset();
  await keeper.runCycle();
  // Fresh grants: the cycle's listing and the refresh plan's, both metadata. The keeper itself
  // reads no record; each probe reads its own source's (the oauth method's availability and
  // expiry checks, src/methods/oauth.ts: two reads of the one source probed), the token comes
  // from the engine's memo.
  assert.deepEqual({ lists: store.lists, metaLists: store.metaLists, writes: store.writes }, { lists: 0, metaLists: 2, writes: 0 });
  assert.equal(store.reads, 2 * names.length, `${store.reads} reads for ${names.length} probes`);
  store.reset();
  clock.advance(25_000); // every grant past ⅔ of its 30 s lifetime: refresh-ahead is due for all of them
  const summary = await keeper.runCycle();
  assert.equal(summary.counts.ok, names.length);
  // Per refreshed source: the engine's read under the lock (the keeper decided from the
  // metadata listing that it is due: no unlocked read), then one read back to tell what happened (its expiry and credential stamp come from it), plus the
  // probe's two of its own source as above; no listing of secrets.
  assert.deepEqual({ lists: store.lists, metaLists: store.metaLists, writes: store.writes }, { lists: 0, metaLists: 2, writes: names.length });
  assert.equal(store.reads / names.length, 2 + 2, `${store.reads} reads for ${names.length} refreshed and probed sources`);
  assert.equal(keeper.stages.refresh.counts.refreshed, names.length);
});
