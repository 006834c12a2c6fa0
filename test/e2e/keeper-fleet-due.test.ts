/**
 * Fleet mode, due work: a keeper on a real PostgreSQL store refreshes ahead what the store picks
 * as due (the indexed `due_at`, `FOR UPDATE SKIP LOCKED`, a pick lease ended when the refresh is
 * done), through the real IdP with rotation; a due grant of a source this keeper does not
 * refresh (another machine's) is picked, handed back and left alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Secret } from '../../src/core/secret.js';
import { Keeper, type RefreshWake } from '../../src/keeper/keeper.js';
import { silentLog } from '../../src/keeper/log.js';
import { openLatchkey } from '../../src/latchkey.js';
import { startIdp } from '../fixtures/idp.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason, TEST_MASTER_KEY_TEXT } from '../fixtures/pg.js';
import { makeHome } from '../helpers/home.js';
import { writeRecord } from '../helpers/store.js';

const skip = pgSkipReason();

test('fleet due work: the keeper refreshes what the store picks as due, and leaves another machine\'s grant alone', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const idp = await startIdp({ accessTokenTtl: 3 });
  t.after(() => idp.close());
  const h = await makeHome({ version: 1, sources: { idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' }, probe: { url: idp.protectedUrl } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_STORE: db.url, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT };
  const lk = await openLatchkey({ home: h.home, env });
  await lk.installGrant('idp', await idp.mintGrant());
  await lk.close();
  const store = openPgStore(db.url);
  t.after(() => store.close());
  // Due long ago, and not in this keeper's config.
  const old = Date.now() - 3_600_000;
  await writeRecord(store, 'elsewhere', { grant: { accessToken: new Secret('at'), refreshToken: new Secret('rt'), obtainedAt: old, expiresAt: old + 60_000 } }, 0);
  const elsewhereBefore = await pgExec<{ version: string }>(`SELECT version FROM "${db.schema}".sources WHERE name = 'elsewhere'`);

  const dueWork = store.dueWork();
  t.after(() => dueWork.close());
  const wakes: RefreshWake[] = [];
  const k = await Keeper.open({ open: { home: h.home, env }, intervalSeconds: 3600, log: silentLog, dueWork, onRefreshWake: (w) => wakes.push(w) });
  t.after(() => k.stop());
  idp.stats.reset();
  k.start();
  for (let i = 0; i < 200 && wakes.filter((w) => w.outcome === 'refreshed').length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  const refreshed = wakes.filter((w) => w.outcome === 'refreshed');
  assert.ok(refreshed.length >= 2, `two refreshes ahead of expiry through the pick; wake-ups: ${JSON.stringify(wakes)}`);
  assert.ok(refreshed.every((w) => w.source === 'idp'));
  assert.ok(idp.stats.refreshSuccesses >= 2);
  assert.equal(idp.stats.revokedGrants, 0);
  assert.equal(idp.stats.refreshFailures, 0);
  await k.stop();
  // The picks were the store's, and each was ended (no live lease left behind).
  const picks = await pgExec<{ key: string; live: boolean }>(`SELECT key, (claim_id IS NOT NULL AND lease_until > now()) AS live FROM "${db.schema}".claims WHERE key LIKE 'pick:%' ORDER BY key`);
  assert.deepEqual(picks, [
    { key: 'pick:elsewhere', live: false },
    { key: 'pick:idp', live: false },
  ]);
  const elsewhereAfter = await pgExec<{ version: string }>(`SELECT version FROM "${db.schema}".sources WHERE name = 'elsewhere'`);
  assert.deepEqual(elsewhereAfter, elsewhereBefore, 'another machine\'s grant is not touched');
});
