/**
 * The keeper's fleet view on the real PostgreSQL server: a leader publishes its report with each
 * source's next refresh as `due_at`; a standby publishes nothing; a leader whose epoch is no
 * longer the store's is told once that it was deposed (the daemon stops it), and its report is
 * not written.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatchkeyError } from '../../../src/core/errors.js';
import { FleetView } from '../../../src/keeper/fleet-view.js';
import type { HealthReport } from '../../../src/keeper/health-report.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason } from '../../fixtures/pg.js';

const skip = pgSkipReason();

function report(generatedAt: string, refreshAt: string | null): HealthReport {
  return {
    generatedAt,
    intervalSeconds: 60,
    sources: {
      crm: { status: 'ok', authPath: 'oauth', operatorAction: null, fix: null, message: 'ok', expiresAt: null, lastOkAt: generatedAt, consecutiveFailures: 0, latencyMs: 12, history: [], refreshAt },
    },
  };
}

test('fleet view: the leader publishes (due time from refreshAt), a standby does not, a deposed leader is told once', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const store = openPgStore(db.url);
  t.after(() => store.close());
  const lock = await store.leaderLock();
  let deposed = 0;
  let epoch: number | undefined = lock.epoch;
  const view = new FleetView(store.sharedKeeperState(), store.location, () => epoch, () => (deposed += 1));
  assert.deepEqual(view.leaderInfo()?.role, 'leader');
  assert.equal(view.leaderInfo()?.leader?.epoch, lock.epoch);

  const at = '2026-01-01T00:00:00.000Z';
  await view.publish(report(at, '2026-01-01T00:10:00.000Z'));
  assert.deepEqual(await pgExec(`SELECT source, due_at, epoch::int AS epoch FROM "${db.schema}".keeper_state`), [{ source: 'crm', due_at: Date.parse('2026-01-01T00:10:00.000Z'), epoch: lock.epoch }]);
  const read = await store.sharedKeeperState().read();
  assert.equal(read?.report.generatedAt, at);
  assert.equal(read?.report.sources, undefined, 'sources live in their own rows');

  // Standing by (no epoch): nothing is written.
  epoch = undefined;
  assert.equal(view.leaderInfo(), undefined);
  await view.publish(report('2026-01-01T00:01:00.000Z', null));
  assert.equal((await store.sharedKeeperState().read())?.report.generatedAt, at);

  // Another leadership began (the epoch moved on): refused, told once however often it tries.
  epoch = lock.epoch;
  await pgExec(`UPDATE "${db.schema}".leader SET epoch = epoch + 1 WHERE name = 'keeper'`);
  for (let i = 0; i < 2; i++) await assert.rejects(view.publish(report('2026-01-01T00:02:00.000Z', null)), (e: unknown) => e instanceof LatchkeyError && e.code === 'LK_KEEPER');
  assert.equal(deposed, 1);
  assert.equal((await store.sharedKeeperState().read())?.report.generatedAt, at);
  await lock.release();
});
