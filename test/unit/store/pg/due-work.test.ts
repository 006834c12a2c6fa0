/**
 * Due work on the real PostgreSQL server: earliest due first, only what is due (not revoked, with
 * a refresh token), and two keepers picking at once never get the same source.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Secret } from '../../../../src/core/secret.js';
import { PgDueWork } from '../../../../src/store/pg/due-work.js';
import { freshPgSchema, openPgStore, pgSkipReason } from '../../../fixtures/pg.js';
import { writeRecord } from '../../../helpers/store.js';

const skip = pgSkipReason();
const HOUR = 3_600_000;

test('due work: earliest due first; not due, revoked and refresh-token-less grants are never picked; two pickers never share one', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const store = openPgStore(db.url);
  t.after(() => store.close());
  const now = Date.now();
  const grant = (obtainedAt: number, extra: object = {}) => ({ accessToken: new Secret('at'), refreshToken: new Secret('rt'), obtainedAt, expiresAt: obtainedAt + HOUR, ...extra });
  // due-000 … due-059: ⅔ of the lifetime passed, the lower the number the earlier.
  for (let i = 0; i < 60; i++) await writeRecord(store, `due-${String(i).padStart(3, '0')}`, { grant: grant(now - HOUR + 1_000 * i) }, 0);
  await writeRecord(store, 'fresh', { grant: grant(now - 60_000) }, 0);
  await writeRecord(store, 'revoked', { grant: grant(now - HOUR, { revoked: { at: now, reason: 'invalid_grant' } }) }, 0);
  await writeRecord(store, 'no-refresh', { grant: { accessToken: new Secret('at'), obtainedAt: now - HOUR, expiresAt: now } }, 0);

  const a = new PgDueWork(store.target);
  const b = new PgDueWork(store.target);
  t.after(() => a.close());
  t.after(() => b.close());
  const first = await a.pick(5, now);
  assert.deepEqual(first, ['due-000', 'due-001', 'due-002', 'due-003', 'due-004'], 'earliest due first');

  const got = { a: [...first], b: [] as string[] };
  const drain = async (who: 'a' | 'b', w: PgDueWork): Promise<void> => {
    for (;;) {
      const names = await w.pick(4, now);
      if (names.length === 0) return;
      got[who].push(...names);
    }
  };
  await Promise.all([drain('a', a), drain('b', b), drain('a', a), drain('b', b)]);
  const all = [...got.a, ...got.b];
  assert.equal(new Set(all).size, all.length, 'no source picked twice');
  assert.deepEqual([...all].sort(), Array.from({ length: 60 }, (_, i) => `due-${String(i).padStart(3, '0')}`));
  assert.ok(got.a.length > 0 && got.b.length > 0, 'both keepers got work');

  // A finished pick frees the source for the next round; a live one keeps it.
  await a.done(['due-000']);
  assert.deepEqual(await b.pick(10, now), ['due-000']);
});
