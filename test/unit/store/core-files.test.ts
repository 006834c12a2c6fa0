import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chown, mkdir, readFile, readlink, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { resolveSecretRef } from '../../../src/config/secret-ref.js';
import { plainSecretValue } from '../../../src/config/secret-value.js';
import { FileStore } from '../../../src/store/file-store.js';
import { writeRecord } from '../../helpers/store.js';
import { ensurePrivateDir } from '../../../src/store/atomic-file.js';
import { readRegularFileSync } from '../../../src/store/read-file-sync.js';
import { MAX_SECRET_FILE_BYTES } from '../../../src/store/regular-file.js';
import { Secret } from '../../../src/core/secret.js';
import type { LatchkeyError } from '../../../src/core/errors.js';
import { makeHome } from '../../helpers/home.js';

const posix = process.platform !== 'win32';

function mkfifo(path: string): void {
  execFileSync('mkfifo', [path]);
}

/** Fails the test instead of hanging it when `p` does not settle in time. */
async function within<T>(p: Promise<T>, ms = 3000): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not settle within ${ms} ms (hang)`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

test('file: secret references: a FIFO, a directory, a device and a huge file are refused at once, naming the path', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const fifo = join(h.home, 'pipe');
  mkfifo(fifo);
  const dir = join(h.home, 'dir');
  await mkdir(dir);
  const huge = join(h.home, 'huge');
  await writeFile(huge, '');
  await truncate(huge, MAX_SECRET_FILE_BYTES + 1);
  for (const [path, why] of [
    [fifo, /FIFO/],
    [dir, /a directory, not a regular file/],
    ['/dev/zero', /a device, not a regular file/],
    [huge, /larger than 1048576 bytes/],
  ] as const) {
    await assert.rejects(
      within(resolveSecretRef(`file:${path}`)),
      (e: LatchkeyError) => e.code === 'LK_SECRET_UNRESOLVED' && e.message.includes(`file:${path}`) && why.test(e.message) && e.operatorAction === 'replace_token',
    );
    // The fast path's synchronous reader applies the same rules (and does not block on the FIFO).
    assert.throws(() => plainSecretValue(`file:${path}`, {}, (p) => readRegularFileSync(p, { maxBytes: MAX_SECRET_FILE_BYTES }).text), why);
  }
  const ok = join(h.home, 'ok');
  await writeFile(ok, 'value\n');
  assert.equal((await resolveSecretRef(`file:${ok}`)).reveal(), 'value');
});

test('a symlinked store.json is refused with the fix; the link and its target are left alone', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const real = join(h.home, 'real-store.json');
  await writeRecord(new FileStore({ path: real }), 'a', { grant: { accessToken: new Secret('at'), obtainedAt: 1 } }, 0);
  const before = await readFile(real);
  await symlink(real, h.storePath);
  const store = new FileStore({ path: h.storePath });
  await assert.rejects(store.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_PERMISSIONS' && /is a symbolic link/.test(e.message) && e.message.includes('LATCHKEY_HOME'));
  await assert.rejects(writeRecord(store, 'a', { grant: { accessToken: new Secret('at2'), obtainedAt: 2 } }, 1), (e: LatchkeyError) => e.code === 'LK_STORE_PERMISSIONS');
  assert.equal(await readlink(h.storePath), real, 'still the link');
  assert.deepEqual(await readFile(real), before, 'target untouched');
});

test('a store.json that is a FIFO is an error, not a hang', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  mkfifo(h.storePath);
  await assert.rejects(within(new FileStore({ path: h.storePath }).read('a')), (e: LatchkeyError) => e.code === 'LK_STORE_IO' && /FIFO/.test(e.message) && e.message.includes(h.storePath));
});

test('a store.json owned by another user is refused (sudo left it behind)', { skip: !posix || process.getuid?.() !== 0 }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const store = new FileStore({ path: h.storePath });
  await writeRecord(store, 'a', { grant: { accessToken: new Secret('at'), obtainedAt: 1 } }, 0);
  await chown(h.storePath, 4242, 4242);
  await assert.rejects(new FileStore({ path: h.storePath }).read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_PERMISSIONS' && /owned by another user \(uid 4242/.test(e.message));
});

test('a file where the profile directory should be: a clear error naming it', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const blocker = join(h.home, 'not-a-dir');
  await writeFile(blocker, 'x');
  await assert.rejects(ensurePrivateDir(blocker), (e: LatchkeyError) => (e.code === 'LK_STORE_IO' || e.code === 'LK_STORE_PERMISSIONS') && e.message.includes(blocker));
  await assert.rejects(ensurePrivateDir(join(blocker, 'sub')), (e: LatchkeyError) => e.code === 'LK_STORE_IO' && e.message.includes(join(blocker, 'sub')));
});
