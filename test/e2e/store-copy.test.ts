/**
 * `latchkey store copy` between file stores, through the real CLI: everything copied, the origin
 * untouched, a re-run that writes nothing, a copy SIGKILLed halfway that lost nothing on either
 * side and finishes on a re-run, a newer destination record kept, errors that name the side.
 * (File ↔ PostgreSQL: test/e2e/store-copy-pg.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Secret } from '../../src/core/secret.js';
import { FileStore } from '../../src/store/file-store.js';
import { sameContent } from '../../src/store/store-copy.js';
import type { SourceRecordInput, Store } from '../../src/store/store.js';
import { cliPath, makeHome, runCli, type TempHome } from '../helpers/home.js';
import { writeRecord } from '../helpers/store.js';
import { holdLock } from '../store/hold-lock.js';

function record(i: number, extra: Partial<SourceRecordInput> = {}): SourceRecordInput {
  return {
    grant: { accessToken: new Secret(`at-${i}`), refreshToken: new Secret(`rt-${i}`), obtainedAt: 1_000 + i, expiresAt: 3_600_000 + i, tokenEndpoint: 'https://idp.example/token', clientId: 'c' },
    lastRefreshAt: 1_000 + i,
    refreshCount: i,
    ...extra,
  };
}

const name = (i: number): string => `s${String(i).padStart(3, '0')}`;

async function fill(store: Store, n: number): Promise<void> {
  for (let i = 0; i < n; i++) await writeRecord(store, name(i), record(i), 0);
}

async function twoHomes(t: { after(fn: () => Promise<void>): void }): Promise<[TempHome, TempHome]> {
  const a = await makeHome();
  const b = await makeHome();
  t.after(() => a.cleanup());
  t.after(() => b.cleanup());
  return [a, b];
}

async function assertSameSources(a: Store, b: Store, names: string[]): Promise<void> {
  for (const n of names) {
    const x = await a.read(n);
    const y = await b.read(n);
    assert.ok(x && y, `${n} on both sides`);
    assert.ok(sameContent(x, y), `${n} copied whole`);
  }
}

test('store copy file → file: every record and live session/successor, origin untouched; a re-run writes nothing', async (t) => {
  const [a, b] = await twoHomes(t);
  const from = new FileStore({ path: a.storePath });
  await fill(from, 3);
  await writeRecord(from, 'revoked', record(9, { grant: { ...record(9).grant!, revoked: { at: 5_000, reason: 'invalid_grant' } } }), 0);
  await writeRecord(from, 'browser', { session: { cookies: { sid: new Secret('cookie-1') }, updatedAt: 7_000 } }, 0);
  await from.put('sessions', 'session-id-1', new Secret('session-value-1'), 600_000);
  await from.put('successors', 'gen-1', new Secret('successor-value'), 60_000);
  await from.put('tickets', 'ticket-1', new Secret('ticket-value'), 60_000);
  const originBytes = await readFile(a.storePath);

  const r = await runCli(['store', 'copy', '--from', a.home, '--to', b.storePath, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { sources: Record<string, string[]>; entries: Record<string, Record<string, number>>; skippedKeyspaces: Record<string, string> };
  assert.deepEqual(report.sources.copied, ['browser', 'revoked', 's000', 's001', 's002']);
  assert.deepEqual(report.entries.sessions?.copied, 1);
  assert.deepEqual(report.entries.successors?.copied, 1);
  assert.match(report.skippedKeyspaces.tickets ?? '', /single-use/);
  assert.ok(!r.stdout.includes('at-0') && !r.stdout.includes('session-value'), 'no secret printed');

  const to = new FileStore({ path: b.storePath });
  await assertSameSources(from, to, ['browser', 'revoked', 's000', 's001', 's002']);
  assert.equal((await to.get('sessions', 'session-id-1'))?.reveal(), 'session-value-1');
  assert.equal((await to.get('successors', 'gen-1'))?.reveal(), 'successor-value');
  assert.equal(await to.get('tickets', 'ticket-1'), undefined, 'a single-use ticket is never duplicated');
  assert.deepEqual(await readFile(a.storePath), originBytes, 'the origin is byte for byte untouched');

  const destBytes = await readFile(b.storePath);
  const again = await runCli(['store', 'copy', '--from', a.storePath, '--to', b.home]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /sources: 0 copied, 5 already there/);
  assert.match(again.stdout, /sessions: 0 copied, 1 already there/);
  assert.deepEqual(await readFile(b.storePath), destBytes, 'a re-run rewrites nothing');
});

test('store copy SIGKILLed halfway: each record is copied whole or not at all, nothing lost; the re-run finishes', async (t) => {
  const [a, b] = await twoHomes(t);
  const from = new FileStore({ path: a.storePath });
  const N = 40;
  await fill(from, N);
  const originBytes = await readFile(a.storePath);
  const to = new FileStore({ path: b.storePath });

  // Hold the destination's lock of s020: the copy gets exactly that far and waits there.
  const holder = await holdLock(to, name(20));

  const child = spawn(process.execPath, [cliPath, 'store', 'copy', '--from', a.storePath, '--to', b.storePath], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<NodeJS.Signals | number | null>((r) => child.once('close', (code, signal) => r(signal ?? code)));
  // Wait until the first 20 records are in the destination (the copier is then blocked on s020).
  for (;;) {
    const meta = await to.listMeta().catch(() => new Map());
    if (meta.size >= 20) break;
    if (child.exitCode !== null) assert.fail('the copy ended before it was killed');
    await new Promise((r) => setTimeout(r, 20));
  }
  child.kill('SIGKILL');
  assert.equal(await exited, 'SIGKILL');
  holder.release();
  await holder.done;

  const partial = await to.listMeta();
  assert.deepEqual([...partial.keys()].sort(), Array.from({ length: 20 }, (_, i) => name(i)), 'exactly the records before the blocked one');
  await assertSameSources(from, to, [...partial.keys()]);
  assert.deepEqual(await readFile(a.storePath), originBytes, 'the origin is untouched by the killed copy');

  // The killed copier may have left lock files behind: its pid is gone, so they are broken at once.
  const rerun = await runCli(['store', 'copy', '--from', a.storePath, '--to', b.storePath, '--json']);
  assert.equal(rerun.code, 0, rerun.stderr);
  const report = JSON.parse(rerun.stdout) as { sources: Record<string, string[]> };
  assert.equal(report.sources.copied?.length, N - 20);
  assert.equal(report.sources.unchanged?.length, 20);
  await assertSameSources(from, to, Array.from({ length: N }, (_, i) => name(i)));
  assert.deepEqual(await readFile(a.storePath), originBytes);
});

test('store copy keeps a destination record that is newer (refreshed there since) and says so', async (t) => {
  const [a, b] = await twoHomes(t);
  const from = new FileStore({ path: a.storePath });
  const to = new FileStore({ path: b.storePath });
  await writeRecord(from, 'x', record(1), 0);
  await writeRecord(from, 'y', record(2), 0);
  // y in the destination is older: it is replaced; x is newer there: kept.
  await writeRecord(to, 'x', record(1, { grant: { ...record(1).grant!, refreshToken: new Secret('rt-live'), obtainedAt: 99_000 }, lastRefreshAt: 99_000 }), 0);
  await writeRecord(to, 'y', record(2, { grant: { ...record(2).grant!, refreshToken: new Secret('rt-old'), obtainedAt: 1 }, lastRefreshAt: 1 }), 0);
  const r = await runCli(['store', 'copy', '--from', a.storePath, '--to', b.storePath]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /kept \(newer in the destination, not overwritten\): x/);
  assert.equal((await to.read('x'))?.grant?.refreshToken?.reveal(), 'rt-live');
  assert.equal((await to.read('y'))?.grant?.refreshToken?.reveal(), 'rt-2');
});

test('store copy: bad input gets a clear error naming the side, and nothing is written', async (t) => {
  const [a, b] = await twoHomes(t);
  const from = new FileStore({ path: a.storePath });
  await fill(from, 2);

  const missing = await runCli(['store', 'copy', '--from', join(a.home, 'nope.json'), '--to', b.storePath]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /--from \S*nope\.json: there is no store file there; nothing was copied/);

  await mkdir(b.home, { recursive: true });
  await writeFile(b.storePath, '{ not json', { mode: 0o600 });
  const corrupt = await runCli(['store', 'copy', '--from', a.storePath, '--to', b.storePath]);
  assert.equal(corrupt.code, 1, corrupt.stderr);
  assert.match(corrupt.stderr, new RegExp(`--to ${b.storePath.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
  assert.match(corrupt.stderr, /corrupt|cannot be parsed|not valid JSON/i);
  assert.equal(await readFile(b.storePath, 'utf8'), '{ not json', 'the unreadable destination is left byte for byte');

  const same = await runCli(['store', 'copy', '--from', a.storePath, '--to', a.home]);
  assert.equal(same.code, 1);
  assert.match(same.stderr, /--from and --to are the same store/);

  const scheme = await runCli(['store', 'copy', '--from', a.storePath, '--to', 'https://example.com/store']);
  assert.equal(scheme.code, 1);
  assert.match(scheme.stderr, /--to: https:\/\/ is not a store/);

  const noTo = await runCli(['store', 'copy', '--from', a.storePath]);
  assert.equal(noTo.code, 1);
  assert.match(noTo.stderr, /--to is required/);
});
