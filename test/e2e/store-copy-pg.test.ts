/**
 * `latchkey store copy` between a file store and the real PostgreSQL server, both ways: records
 * and live sessions/successors copied and sealed for their new rows, a copy SIGKILLed halfway
 * (blocked on a claim) that lost nothing and finishes on a re-run, and errors naming the side.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { Secret } from '../../src/core/secret.js';
import { FileStore } from '../../src/store/file-store.js';
import { sameContent } from '../../src/store/store-copy.js';
import type { SourceRecordInput, Store } from '../../src/store/store.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason, TEST_MASTER_KEY_TEXT } from '../fixtures/pg.js';
import { cliPath, makeHome, runCli } from '../helpers/home.js';
import { writeRecord } from '../helpers/store.js';
import { holdLock } from '../store/hold-lock.js';

const skip = pgSkipReason();
const name = (i: number): string => `s${String(i).padStart(3, '0')}`;

function record(i: number): SourceRecordInput {
  return {
    grant: { accessToken: new Secret(`at-${i}`), refreshToken: new Secret(`rt-${i}`), obtainedAt: 1_000 + i, expiresAt: 3_600_000 + i, scope: 'api', tokenEndpoint: 'https://idp.example/token', clientId: 'c' },
    lastRefreshAt: 1_000 + i,
    refreshCount: i,
  };
}

async function assertSame(a: Store, b: Store, names: string[]): Promise<void> {
  for (const n of names) {
    const x = await a.read(n);
    const y = await b.read(n);
    assert.ok(x && y, `${n} on both sides`);
    assert.ok(sameContent(x, y), `${n} copied whole`);
  }
}

const baseEnv = (): NodeJS.ProcessEnv => ({ PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT });

test('store copy file → postgres → file: records and live entries, sealed for their rows; re-run writes nothing', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const a = await makeHome();
  const b = await makeHome();
  t.after(() => a.cleanup());
  t.after(() => b.cleanup());
  const file = new FileStore({ path: a.storePath });
  for (let i = 0; i < 3; i++) await writeRecord(file, name(i), record(i), 0);
  await writeRecord(file, 'browser', { session: { cookies: { sid: new Secret('cookie-1') }, updatedAt: 7_000 } }, 0);
  await file.put('sessions', 'session-id-1', new Secret('session-value-1'), 600_000);
  await file.put('successors', 'gen-1', new Secret('successor-value'), 60_000);
  const originBytes = await readFile(a.storePath);

  const up = await runCli(['store', 'copy', '--from', a.home, '--to', db.url, '--json'], { env: baseEnv() });
  assert.equal(up.code, 0, up.stderr);
  const report = JSON.parse(up.stdout) as { sources: Record<string, string[]>; entries: Record<string, Record<string, number>> };
  assert.equal(report.sources.copied?.length, 4);
  assert.equal(report.entries.sessions?.copied, 1);
  assert.equal(report.entries.successors?.copied, 1);
  const pgStore = openPgStore(db.url);
  t.after(() => pgStore.close());
  await assertSame(file, pgStore, ['browser', name(0), name(1), name(2)]);
  assert.equal((await pgStore.get('sessions', 'session-id-1'))?.reveal(), 'session-value-1');
  assert.equal((await pgStore.get('successors', 'gen-1'))?.reveal(), 'successor-value');
  const plain = await pgExec<{ n: string }>(`SELECT count(*) AS n FROM "${db.schema}".sources WHERE position('rt-1'::bytea in refresh_token) > 0`);
  assert.equal(plain[0]?.n, '0', 'secrets are sealed in the database, not copied as plain text');
  assert.deepEqual(await readFile(a.storePath), originBytes);

  const again = await runCli(['store', 'copy', '--from', a.home, '--to', db.url], { env: baseEnv() });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /sources: 0 copied, 4 already there/);
  assert.match(again.stdout, /sessions: 0 copied, 1 already there/);

  const down = await runCli(['store', 'copy', '--from', db.url, '--to', b.home], { env: baseEnv() });
  assert.equal(down.code, 0, down.stderr);
  const back = new FileStore({ path: b.storePath });
  await assertSame(file, back, ['browser', name(0), name(1), name(2)]);
  assert.equal((await back.get('sessions', 'session-id-1'))?.reveal(), 'session-value-1');
});

test('store copy file → postgres SIGKILLed halfway: nothing lost, the re-run finishes', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const a = await makeHome();
  t.after(() => a.cleanup());
  const file = new FileStore({ path: a.storePath });
  const N = 30;
  for (let i = 0; i < N; i++) await writeRecord(file, name(i), record(i), 0);
  const originBytes = await readFile(a.storePath);
  const pgStore = openPgStore(db.url);
  t.after(() => pgStore.close());

  // Hold the database's claim of s015: the copy gets that far and waits there.
  const holder = await holdLock(pgStore, name(15));
  const child = spawn(process.execPath, [cliPath, 'store', 'copy', '--from', a.storePath, '--to', db.url], { env: baseEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | number | null>((r) => child.once('close', (code, signal) => r(signal ?? code)));
  for (;;) {
    if ((await pgStore.listMeta()).size >= 15) break;
    if (child.exitCode !== null) assert.fail('the copy ended before it was killed');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  holder.release();
  await holder.done;

  const partial = [...(await pgStore.listMeta()).keys()].sort();
  assert.deepEqual(partial, Array.from({ length: 15 }, (_, i) => name(i)));
  await assertSame(file, pgStore, partial);
  assert.deepEqual(await readFile(a.storePath), originBytes);

  const rerun = await runCli(['store', 'copy', '--from', a.storePath, '--to', db.url, '--json'], { env: baseEnv() });
  assert.equal(rerun.code, 0, rerun.stderr);
  const report = JSON.parse(rerun.stdout) as { sources: Record<string, string[]> };
  assert.equal(report.sources.copied?.length, N - 15);
  assert.equal(report.sources.unchanged?.length, 15);
  await assertSame(file, pgStore, Array.from({ length: N }, (_, i) => name(i)));
});

test('store copy with postgres: a server that does not answer, a wrong key, a missing schema: named by side', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const a = await makeHome();
  t.after(() => a.cleanup());
  const file = new FileStore({ path: a.storePath });
  await writeRecord(file, 'x', record(1), 0);
  const up = await runCli(['store', 'copy', '--from', a.storePath, '--to', db.url], { env: baseEnv() });
  assert.equal(up.code, 0, up.stderr);

  const down = await runCli(['store', 'copy', '--from', 'postgres://postgres:hunter2@127.0.0.1:1/nope', '--to', a.storePath], { env: baseEnv() });
  assert.equal(down.code, 3, down.stderr);
  assert.match(down.stderr, /--from/);
  assert.match(down.stderr, /database "nope"/);
  assert.ok(!down.stderr.includes('hunter2'), 'the password is never printed');

  const wrongKey = await runCli(['store', 'copy', '--from', db.url, '--to', (await makeHome()).home], { env: { ...baseEnv(), LATCHKEY_MASTER_KEY: Buffer.alloc(32, 1).toString('base64') } });
  assert.equal(wrongKey.code, 1, wrongKey.stderr);
  assert.match(wrongKey.stderr, /--from \S+: .*master key/);

  const u = new URL(db.url);
  u.searchParams.set('schema', 'lk_no_such_schema');
  const noSchema = await runCli(['store', 'copy', '--from', a.storePath, '--to', u.toString()], { env: baseEnv() });
  assert.equal(noSchema.code, 1, noSchema.stderr);
  assert.match(noSchema.stderr, /--to: .*latchkey migrate/);
});
