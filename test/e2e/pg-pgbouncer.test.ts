/**
 * The PostgreSQL store through PgBouncer (the pooler most fleets run): in transaction mode every
 * store operation works (the connection bounds, refused by PgBouncer as startup parameters, are
 * set per transaction instead) except keeper leadership, which is refused with a clear message
 * before any lock is taken; in session mode leadership works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { LatchkeyError } from '../../src/core/errors.js';
import { Secret } from '../../src/core/secret.js';
import { freshPgSchema, openPgStore, pgSkipReason, pgTestUrl } from '../fixtures/pg.js';
import { pgBouncerSkipReason, startPgBouncer } from '../fixtures/pgbouncer.js';
import { writeRecord } from '../helpers/store.js';

const skip = pgSkipReason() || pgBouncerSkipReason();

test('through PgBouncer in transaction mode: reads, locked writes (claims), keyspaces and consume work, with the bounds set per transaction', { skip }, async (t) => {
  const bouncer = await startPgBouncer(pgTestUrl()!, 'transaction');
  t.after(() => bouncer.stop());
  const f = await freshPgSchema();
  t.after(() => f.cleanup());
  const a = openPgStore(bouncer.url(f.url));
  const b = openPgStore(bouncer.url(f.url));
  t.after(async () => {
    await a.close();
    await b.close();
  });
  await writeRecord(a, 's', { grant: { accessToken: new Secret('at-1'), refreshToken: new Secret('rt-1'), obtainedAt: 1, expiresAt: 2 } }, 0);
  assert.equal(a.boundsVia, 'transaction', 'PgBouncer refused the startup parameters; the bounds go with each transaction');
  assert.deepEqual(await a.connectionBounds(), { statementTimeout: '5s', lockTimeout: '3s', idleInTransactionSessionTimeout: '10s' }, 'and they hold');
  // Two stores (two processes' worth of pools) incrementing under the claim: none lost.
  const bump = async (store: typeof a): Promise<void> => {
    for (let i = 0; i < 10; i++) {
      await store.withLock('s', async (tx) => {
        const rec = (await tx.read('s'))!;
        const { version, ...rest } = rec;
        await tx.write('s', { ...rest, refreshCount: (rec.refreshCount ?? 0) + 1 }, version);
      });
    }
  };
  await Promise.all([bump(a), bump(b)]);
  const rec = await b.read('s');
  assert.equal(rec?.refreshCount, 20);
  assert.equal(rec?.grant?.refreshToken?.reveal(), 'rt-1');
  assert.equal((await b.listMeta()).get('s')?.version, 21);
  await a.put('tickets', 't', new Secret('once'), 60_000);
  const got = await Promise.all([a.consume('tickets', 't'), b.consume('tickets', 't')]);
  assert.deepEqual(got.map((g) => g?.reveal()).sort(), ['once', undefined]);
  assert.equal((await a.migrate()).applied.length, 0, 'migrate works through the pooler too');
});

test('keeper leadership through PgBouncer in transaction mode is refused (LK_KEEPER, exit 1, naming host, database and the fix), leaving no lock behind', { skip }, async (t) => {
  const bouncer = await startPgBouncer(pgTestUrl()!, 'transaction');
  t.after(() => bouncer.stop());
  const f = await freshPgSchema();
  t.after(() => f.cleanup());
  const pooled = openPgStore(bouncer.url(f.url));
  const direct = openPgStore(f.url);
  t.after(async () => {
    await pooled.close();
    await direct.close();
  });
  await assert.rejects(pooled.leaderLock({ heartbeatMs: 60_000 }), (e: LatchkeyError) => {
    assert.equal(e.code, 'LK_KEEPER');
    assert.equal(e.exitCode, 1);
    assert.match(e.message, /needs a direct connection/);
    assert.match(e.message, /PgBouncer pool_mode=transaction/);
    assert.match(e.message, /database "test"/);
    return true;
  });
  const lock = await direct.leaderLock({ heartbeatMs: 60_000 });
  assert.ok(lock.epoch >= 1, 'a direct connection leads: no lock was left on a pooled server connection');
  await lock.release();
});

test('keeper leadership through PgBouncer in session mode works (a session keeps its server connection)', { skip }, async (t) => {
  const bouncer = await startPgBouncer(pgTestUrl()!, 'session');
  t.after(() => bouncer.stop());
  const f = await freshPgSchema();
  t.after(() => f.cleanup());
  const store = openPgStore(bouncer.url(f.url));
  t.after(() => store.close());
  const lock = await store.leaderLock({ heartbeatMs: 60_000 });
  const other = openPgStore(bouncer.url(f.url));
  t.after(() => other.close());
  await assert.rejects(other.leaderLock({ heartbeatMs: 60_000 }), (e: LatchkeyError) => e.code === 'LK_KEEPER' && /another keeper already leads/.test(e.message));
  await lock.release();
});
