import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { FileStore } from '../../src/store/file-store.js';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { idpHome } from '../helpers/lk.js';
import { CountingStore } from '../helpers/store.js';

/** Store reads per need (issue 9): the engine reads once to decide and once under the lock, never per stage. */

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
