/**
 * The keeper board on the real PostgreSQL server: the leader's report is published source by
 * source under its epoch and read back whole; a deposed leader (its lock's connection killed,
 * another keeper leading at a newer epoch) has its publish refused and nothing it sends is kept.
 * And the `due_at` column the due-work pick reads follows every write of a grant.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LatchkeyError } from '../../../../src/core/errors.js';
import { Secret } from '../../../../src/core/secret.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason } from '../../../fixtures/pg.js';
import { writeRecord } from '../../../helpers/store.js';

const skip = pgSkipReason();
const HOUR = 3_600_000;

const source = (status: string, refreshAt: number | null) => ({ health: { status, refreshAt: refreshAt === null ? null : new Date(refreshAt).toISOString() }, dueAt: refreshAt ?? undefined });

test('keeper board: the leader publishes under its epoch; a deposed leader is refused and changes nothing', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const a = openPgStore(db.url);
  const b = openPgStore(db.url);
  t.after(() => a.close());
  t.after(() => b.close());

  const lockA = await a.leaderLock();
  assert.equal(typeof lockA.epoch, 'number');
  const boardA = a.sharedKeeperState();
  await boardA.publish(lockA.epoch, { generatedAt: 'A1', intervalSeconds: 300 }, new Map([['one', source('ok', 1_000)], ['two', source('ok', null)]]));
  const first = await b.sharedKeeperState().read();
  assert.equal(first?.epoch, lockA.epoch);
  assert.equal(first?.leader?.epoch, lockA.epoch);
  assert.equal(first?.leader?.pid, process.pid);
  assert.equal(first?.report.generatedAt, 'A1');
  assert.deepEqual(Object.keys(first?.sources ?? {}), ['one', 'two']);
  assert.deepEqual(await pgExec(`SELECT source, due_at FROM "${db.schema}".keeper_state ORDER BY source`), [
    { source: 'one', due_at: 1_000 },
    { source: 'two', due_at: null },
  ]);

  // Only what changed is written again; a source gone from the report goes from the table.
  await boardA.publish(lockA.epoch, { generatedAt: 'A2', intervalSeconds: 300 }, new Map([['one', source('degraded', 2_000)]]));
  const second = await b.sharedKeeperState().read();
  assert.deepEqual(second?.sources, { one: { status: 'degraded', refreshAt: new Date(2_000).toISOString() } });

  // The leader's lock connection dies (as when its machine drops off the network): B leads.
  const killed = await pgExec<{ killed: boolean }>(
    `SELECT pg_terminate_backend(pid) AS killed FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 19531 AND objid = (hashtext($1) & 2147483647)::oid`,
    [db.schema],
  );
  assert.deepEqual(killed, [{ killed: true }]);
  const lockB = await b.leaderLock({ standby: true });
  t.after(() => lockB.release());
  assert.ok(lockB.epoch > lockA.epoch, `the new leadership's epoch (${lockB.epoch}) is newer than the old one's (${lockA.epoch})`);
  await b.sharedKeeperState().publish(lockB.epoch, { generatedAt: 'B1', intervalSeconds: 300 }, new Map([['one', source('ok', 3_000)]]));

  // A, still thinking it leads, publishes: refused, naming both epochs; B's state stays.
  await assert.rejects(
    boardA.publish(lockA.epoch, { generatedAt: 'A3', intervalSeconds: 300 }, new Map([['one', source('unreachable', 9_000)], ['three', source('ok', 9_000)]])),
    (e: unknown) => e instanceof LatchkeyError && e.code === 'LK_KEEPER' && e.message.includes(`epoch ${lockA.epoch}`) && e.message.includes(`epoch ${lockB.epoch}`),
  );
  const after = await a.sharedKeeperState().read();
  assert.equal(after?.report.generatedAt, 'B1');
  assert.equal(after?.epoch, lockB.epoch);
  assert.deepEqual(after?.sources, { one: { status: 'ok', refreshAt: new Date(3_000).toISOString() } });
  assert.deepEqual(await pgExec(`SELECT DISTINCT epoch::int AS epoch FROM "${db.schema}".keeper_state`), [{ epoch: lockB.epoch }]);
  await lockA.release();
});

test('keeper board: nothing published yet reads as undefined', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const store = openPgStore(db.url);
  t.after(() => store.close());
  assert.equal(await store.sharedKeeperState().read(), undefined);
});

test('sources.due_at: ⅔ of the lifetime, or a day after the last exchange; follows every write; indexed for the due pick', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const store = openPgStore(db.url);
  t.after(() => store.close());
  const at = 1_700_000_000_000;
  await writeRecord(store, 'hourly', { grant: { accessToken: new Secret('at'), refreshToken: new Secret('rt'), obtainedAt: at, expiresAt: at + 3 * HOUR } }, 0);
  await writeRecord(store, 'no-expiry', { grant: { accessToken: new Secret('at'), refreshToken: new Secret('rt'), obtainedAt: at } }, 0);
  const due = async (name: string): Promise<number | null> => (await pgExec<{ due_at: number | null }>(`SELECT due_at FROM "${db.schema}".sources WHERE name = $1`, [name]))[0]!.due_at;
  assert.equal(await due('hourly'), at + 2 * HOUR);
  assert.equal(await due('no-expiry'), at + 24 * HOUR);
  await writeRecord(store, 'hourly', { grant: { accessToken: new Secret('at2'), refreshToken: new Secret('rt2'), obtainedAt: at + HOUR, expiresAt: at + 4 * HOUR } }, 1);
  assert.equal(await due('hourly'), at + 3 * HOUR, 'recomputed on write');
  const index = await pgExec<{ indexdef: string }>(`SELECT indexdef FROM pg_indexes WHERE schemaname = $1 AND indexname = 'sources_due'`, [db.schema]);
  assert.match(index[0]!.indexdef, /\(due_at\) WHERE/);
});
