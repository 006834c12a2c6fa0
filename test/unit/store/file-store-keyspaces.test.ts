import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readdir, readFile, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FileStore, fileStoreCounters } from '../../../src/store/file-store.js';
import { Secret } from '../../../src/core/secret.js';
import type { LatchkeyError } from '../../../src/core/errors.js';
import { BoundedMap } from '../../../src/engine/bounded-map.js';
import { makeHome } from '../../helpers/home.js';
import { writeRecord } from '../../helpers/store.js';

const posix = process.platform !== 'win32';

async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const name of await readdir(dir)) {
    const st = await stat(join(dir, name));
    out.set(name, `${st.ino}:${st.mtimeMs}:${st.size}`);
  }
  return out;
}

test('a session write touches one file whatever the number of sessions (no document of all sessions is rewritten)', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  for (let i = 0; i < 300; i++) await store.put('sessions', `session-${i}`, new Secret(`value-${i}`), 60_000);
  const dir = join(h.home, 'keyspaces', 'sessions');
  const before = await snapshot(dir);
  assert.equal(before.size, 300);
  await store.put('sessions', 'session-17', new Secret('replaced'), 60_000);
  await store.put('sessions', 'session-new', new Secret('added'), 60_000);
  const after = await snapshot(dir);
  const changed = [...after].filter(([name, sig]) => before.get(name) !== sig).map(([name]) => name);
  assert.equal(changed.length, 2, 'the replaced entry and the new one, nothing else');
  assert.equal(after.size, 301);
  assert.equal((await store.get('sessions', 'session-17'))?.reveal(), 'replaced');
  assert.equal((await store.get('sessions', 'session-299'))?.reveal(), 'value-299');
});

test('entry files: 0600 in 0700 directories, named by a hash; neither the id nor the value is in a name', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await store.put('tickets', 'ticket-id-CANARY', new Secret('ticket-value'), 60_000);
  const dir = join(h.home, 'keyspaces', 'tickets');
  assert.equal((await stat(join(h.home, 'keyspaces'))).mode & 0o777, 0o700);
  assert.equal((await stat(dir)).mode & 0o777, 0o700);
  const [name, ...rest] = await readdir(dir);
  assert.deepEqual(rest, []);
  assert.match(name!, /^[0-9a-f]{64}\.json$/);
  assert.equal((await stat(join(dir, name!))).mode & 0o777, 0o600);
  assert.ok(!(await readFile(join(dir, name!), 'utf8')).includes('CANARY'), 'the id is not stored');
});

test('a corrupt entry is named and left byte-for-byte (get, consume and sweep leave it)', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await store.put('sessions', 's1', new Secret('v'), 60_000);
  const dir = join(h.home, 'keyspaces', 'sessions');
  const [name] = await readdir(dir);
  const file = join(dir, name!);
  await writeFile(file, '{"format":"latchkey-entry", "value": "SECRET-CANARY', { mode: 0o600 });
  const before = await readFile(file);
  const named = (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && e.message.includes(file) && !e.message.includes('CANARY');
  await assert.rejects(store.get('sessions', 's1'), named);
  await assert.rejects(store.consume('sessions', 's1'), named);
  assert.equal(await store.sweep(), 0);
  assert.deepEqual(await readdir(dir), [name], 'no claim file left behind');
  assert.deepEqual(await readFile(file), before);
});

test('a symlinked entry is refused naming it; its target is left alone', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await store.put('sessions', 's1', new Secret('v'), 60_000);
  const dir = join(h.home, 'keyspaces', 'sessions');
  const [name] = await readdir(dir);
  const file = join(dir, name!);
  const target = join(h.home, 'elsewhere.json');
  await writeFile(target, await readFile(file), { mode: 0o600 });
  const { unlink } = await import('node:fs/promises');
  await unlink(file);
  await symlink(target, file);
  await assert.rejects(store.get('sessions', 's1'), (e: LatchkeyError) => e.code === 'LK_STORE_PERMISSIONS' && e.message.includes(file) && /symbolic link/.test(e.message));
  await chmod(target, 0o644);
  await unlink(file);
  await writeFile(file, await readFile(target), { mode: 0o644 });
  await chmod(file, 0o644);
  await assert.rejects(store.get('sessions', 's1'), (e: LatchkeyError) => e.code === 'LK_STORE_PERMISSIONS' && e.message.includes(file) && /chmod 600/.test(e.message));
});

test('a per-source read builds that record only: a bad record elsewhere does not stop it; writes and listings still refuse it', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'good', { grant: { accessToken: new Secret('at'), obtainedAt: 1 } }, 0);
  const doc = JSON.parse(await readFile(h.storePath, 'utf8')) as { sources: Record<string, unknown> };
  doc.sources.bad = { version: 1, grant: { accessToken: 5 } };
  await writeFile(h.storePath, JSON.stringify(doc), { mode: 0o600 });
  const before = await readFile(h.storePath);
  assert.equal((await store.read('good'))?.grant?.accessToken.reveal(), 'at');
  const corrupt = (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && e.message.includes('sources.bad.grant.accessToken');
  await assert.rejects(store.read('bad'), corrupt);
  await assert.rejects(store.listMeta(), corrupt);
  await assert.rejects(store.list(), corrupt);
  await assert.rejects(writeRecord(store, 'good', { grant: { accessToken: new Secret('at2'), obtainedAt: 2 } }, 1), corrupt);
  assert.deepEqual(await readFile(h.storePath), before, 'never rewritten');
});

test('the parsed document is reused while the file is unchanged and re-read as soon as it changes', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const other = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: { accessToken: new Secret('at-1'), obtainedAt: 1 } }, 0);
  assert.equal((await store.read('a'))?.grant?.accessToken.reveal(), 'at-1');
  await writeRecord(other, 'a', { grant: { accessToken: new Secret('at-2'), obtainedAt: 2 } }, 1);
  assert.equal((await store.read('a'))?.grant?.accessToken.reveal(), 'at-2', 'a write by another instance is seen');
  // An edit in place (same inode; a different size: the times alone may not have moved yet,
  // file timestamps are coarser than this test) is seen too.
  const text = (await readFile(h.storePath, 'utf8')).replace('at-2', 'at-three');
  await writeFile(h.storePath, text);
  assert.equal((await store.read('a'))?.grant?.accessToken.reveal(), 'at-three');
});

test('BoundedMap keeps at most its bound, dropping the oldest; setting a key again makes it the newest', () => {
  const m = new BoundedMap<string, number>(3);
  m.set('a', 1).set('b', 2).set('c', 3);
  m.set('a', 10);
  m.set('d', 4);
  assert.deepEqual([...m.keys()], ['c', 'a', 'd']);
  assert.equal(m.get('a'), 10);
  assert.equal(m.size, 3);
  assert.throws(() => new BoundedMap(0), RangeError);
});

test('a writer keeps what it wrote as its parsed copy: the next read parses nothing; concurrent readers parse once', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: { accessToken: new Secret('at-1'), obtainedAt: 1 } }, 0);
  const before = { ...fileStoreCounters };
  await writeRecord(store, 'a', { grant: { accessToken: new Secret('at-2'), obtainedAt: 2 } }, 1);
  assert.equal(fileStoreCounters.parses - before.parses, 1, 'the write checks the whole document once');
  assert.equal((await store.read('a'))?.grant?.accessToken.reveal(), 'at-2');
  assert.equal(fileStoreCounters.parses - before.parses, 1, 'and the read after it parses nothing');
  const other = new FileStore({ path: h.storePath });
  const mid = fileStoreCounters.parses;
  const all = await Promise.all(Array.from({ length: 8 }, () => other.read('a')));
  assert.ok(all.every((r) => r?.grant?.accessToken.reveal() === 'at-2'));
  assert.equal(fileStoreCounters.parses - mid, 1, 'eight concurrent first reads, one parse');
});
