/**
 * The PostgreSQL leader lock (src/store/pg/leader-lock.ts) on the real server: one holder, an
 * epoch that grows with every leadership, a standby that takes over as soon as the leader's
 * dedicated connection dies (as when the leader is SIGKILLed), and the old leader told so.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LatchkeyError } from '../../../../src/core/errors.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason } from '../../../fixtures/pg.js';

const skip = pgSkipReason();

test('leader lock: one holder, the epoch grows with each leadership, a standby takes over when the leader connection dies', { skip }, async (t) => {
  const f = await freshPgSchema();
  t.after(() => f.cleanup());
  const a = openPgStore(f.url);
  const b = openPgStore(f.url);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  let lost = 0;
  const first = await a.leaderLock({ heartbeatMs: 100, onLost: () => lost++ });
  assert.equal(first.epoch, 1);
  await assert.rejects(b.leaderLock({ heartbeatMs: 100 }), (e: LatchkeyError) => e.code === 'LK_KEEPER' && /another keeper already leads the store/.test(e.message) && /pid \d+/.test(e.message));
  let announced = 0;
  const standby = b.leaderLock({ standby: true, heartbeatMs: 100, onStandby: () => announced++ });
  // The leader's dedicated connection dies (what a SIGKILL of the leader does to it).
  await new Promise((r) => setTimeout(r, 300));
  // Only this schema's leader lock (other tests and other stores may hold theirs on this server).
  const killed = await pgExec<{ ok: boolean }>(
    `SELECT pg_terminate_backend(pid) AS ok FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 19531 AND objid = (hashtext($1) & 2147483647)::oid AND objsubid = 2`,
    [f.schema],
  );
  assert.equal(killed.length, 1, 'one leader connection held the lock');
  const second = await standby;
  assert.equal(second.epoch, 2, 'the new leadership has the next epoch');
  assert.equal(announced, 1, 'the standby said once that it stands by');
  const end = Date.now() + 10_000;
  while (lost === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
  assert.equal(lost, 1, 'the old leader was told it lost the lock');
  await first.release(); // harmless after the loss
  await second.release();
  const third = await a.leaderLock({ heartbeatMs: 100 });
  assert.equal(third.epoch, 3);
  await third.release();
});

test('leader lock: standing by stops when its signal aborts', { skip }, async (t) => {
  const f = await freshPgSchema();
  t.after(() => f.cleanup());
  const a = openPgStore(f.url);
  const b = openPgStore(f.url);
  t.after(async () => {
    await a.close();
    await b.close();
  });
  const lock = await a.leaderLock({ heartbeatMs: 60_000 });
  const ac = new AbortController();
  const waiting = b.leaderLock({ standby: true, heartbeatMs: 100, signal: ac.signal });
  setTimeout(() => ac.abort(), 200);
  await assert.rejects(waiting, (e: LatchkeyError) => e.code === 'LK_KEEPER' && /stopped while standing by/.test(e.message));
  await lock.release();
});
