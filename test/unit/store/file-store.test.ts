import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmod, mkdir, readFile, stat, utimes, writeFile, readdir } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { FileStore } from '../../../src/store/file-store.js';
import { removeRecord, writeRecord } from '../../helpers/store.js';
import { Secret } from '../../../src/core/secret.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { makeHome } from '../../helpers/home.js';

function grant(access: string, refresh?: string) {
  return { accessToken: new Secret(access), ...(refresh ? { refreshToken: new Secret(refresh) } : {}), obtainedAt: 1000, expiresAt: 61_000 };
}

test('writes one JSON document, mode 0600 in a 0700 directory, and reads it back', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  const rec = await writeRecord(store, 'a', { grant: grant('at-1', 'rt-1') }, 0);
  assert.equal(rec.version, 1);
  const st = await stat(h.storePath);
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal((await stat(h.home)).mode & 0o777, 0o700);
  const back = await store.read('a');
  assert.equal(back?.grant?.accessToken.reveal(), 'at-1');
  assert.equal(back?.grant?.refreshToken?.reveal(), 'rt-1');
  assert.equal(back?.version, 1);
  // No temp files are left behind.
  const leftovers = (await readdir(h.home)).filter((f) => f.endsWith('.tmp'));
  assert.deepEqual(leftovers, []);
});

test('compare-and-set: a write based on a stale version is refused and changes nothing', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: grant('at-1', 'rt-1') }, 0);
  await writeRecord(store, 'a', { grant: grant('at-2', 'rt-2') }, 1);
  const before = await readFile(h.storePath);
  await assert.rejects(writeRecord(store, 'a', { grant: grant('at-stale', 'rt-stale') }, 1), (err: LatchkeyError) => err.code === 'LK_STORE_CONFLICT');
  assert.deepEqual(await readFile(h.storePath), before);
});

test('concurrent writers of different sources do not lose each other’s updates', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const stores = Array.from({ length: 4 }, () => new FileStore({ path: h.storePath }));
  await Promise.all(Array.from({ length: 20 }, (_, i) => writeRecord(stores[i % 4]!, `s${i}`, { grant: grant(`at-${i}`) }, 0)));
  const all = await stores[0]!.list();
  assert.equal(all.size, 20);
});

for (const [name, content] of [
  ['garbage', 'not json {{{'],
  ['empty', ''],
  ['wrong shape', JSON.stringify({ format: 'latchkey-store', formatVersion: 1, sources: { a: { version: 1, grant: { accessToken: 5 } } } })],
  ['unknown format', JSON.stringify({ hello: 'world' })],
] as const) {
  test(`a corrupt store (${name}) is an error naming the file and is left byte-for-byte untouched`, async (t) => {
    const h = await makeHome();
    t.after(() => h.cleanup());
    await writeFile(h.storePath, content, { mode: 0o600 });
    const before = await readFile(h.storePath);
    const store = new FileStore({ path: h.storePath });
    await assert.rejects(store.read('a'), (err: LatchkeyError) => err.code === 'LK_STORE_CORRUPT' && err.message.includes(h.storePath));
    await assert.rejects(writeRecord(store, 'b', { grant: grant('x') }, 0), (err: LatchkeyError) => err.code === 'LK_STORE_CORRUPT');
    await assert.rejects(removeRecord(store, 'a'), (err: LatchkeyError) => err.code === 'LK_STORE_CORRUPT');
    assert.deepEqual(await readFile(h.storePath), before);
  });
}

test('a store directory readable by others is refused with the fix', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  await chmod(h.home, 0o755);
  const store = new FileStore({ path: h.storePath });
  await assert.rejects(writeRecord(store, 'a', { grant: grant('x') }, 0), (err: LatchkeyError) => err.code === 'LK_STORE_PERMISSIONS' && err.message.includes(`chmod 700 ${h.home}`));
});

test('a store file readable by others is refused and not rewritten', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: grant('x') }, 0);
  await chmod(h.storePath, 0o644);
  const fresh = new FileStore({ path: h.storePath });
  await assert.rejects(fresh.read('a'), (err: LatchkeyError) => err.code === 'LK_STORE_PERMISSIONS' && err.message.includes('chmod 600'));
});

test('the stored document never holds a secret wrapper rendering', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: grant('at-real', 'rt-real') }, 0);
  const text = await readFile(join(h.home, 'store.json'), 'utf8');
  assert.ok(text.includes('"at-real"') && text.includes('"rt-real"'));
  assert.ok(!text.includes('[redacted]'));
});

test('temp files left by a killed writer are removed on the next write; a live writer’s and a recent one are kept', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  // A pid that no longer runs: a child that has exited.
  const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid as number;
  const live = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  t.after(() => live.kill('SIGKILL'));
  const old = new Date(Date.now() - 10 * 60_000);
  const locks = join(h.home, 'locks');
  await mkdir(locks, { mode: 0o700 });
  const files = {
    deadOld: join(h.home, `.store.json.${dead}.0123456789ab.tmp`),
    deadOldLock: join(locks, `.idp.lock.${dead}.0123456789ab.tmp`),
    deadRecent: join(h.home, `.store.json.${dead}.ba9876543210.tmp`),
    liveOld: join(h.home, `.store.json.${live.pid}.0123456789ab.tmp`),
    notOurs: join(h.home, `.store.json.${dead}.notatempfile`),
  };
  for (const [name, path] of Object.entries(files)) {
    await writeFile(path, '{"sources":{');
    if (name !== 'deadRecent') await utimes(path, old, old);
  }
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: grant('at-1', 'rt-1') }, 0);
  const left = new Set([...(await readdir(h.home)), ...(await readdir(locks))]);
  assert.ok(!left.has(basename(files.deadOld)), 'abandoned store temp file removed');
  assert.ok(!left.has(basename(files.deadOldLock)), 'abandoned lock temp file removed');
  assert.ok(left.has(basename(files.deadRecent)), 'a recent one is kept (its writer may be on another host)');
  assert.ok(left.has(basename(files.liveOld)), 'a live writer’s is kept');
  assert.ok(left.has(basename(files.notOurs)), 'other names are not touched');
  assert.equal((await store.read('a'))?.grant?.refreshToken?.reveal(), 'rt-1');
});
