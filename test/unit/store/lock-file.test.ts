import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { acquireLockFile } from '../../../src/store/lock-file.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { makeHome, repoRoot } from '../../helpers/home.js';

test('serialises holders: the second waits for the first', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'x.lock');
  const order: string[] = [];
  const release1 = await acquireLockFile(path);
  const second = acquireLockFile(path).then((release) => {
    order.push('second');
    return release;
  });
  await new Promise((r) => setTimeout(r, 50));
  order.push('first-done');
  await release1();
  const release2 = await second;
  await release2();
  assert.deepEqual(order, ['first-done', 'second']);
});

test('a holder killed with SIGKILL does not block others (stale-owner recovery)', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'held.lock');
  const child = spawn(process.execPath, [join(repoRoot, 'dist/test/helpers/lock-holder.js'), path], { stdio: ['ignore', 'pipe', 'inherit'] });
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  assert.equal(chunk.toString().trim(), 'locked');
  child.kill('SIGKILL');
  await once(child, 'exit');
  const started = Date.now();
  const release = await acquireLockFile(path, { staleMs: 60_000, timeoutMs: 5_000 });
  assert.ok(Date.now() - started < 2_000, 'dead local owner is recognised by pid without waiting for the stale timeout');
  await release();
});

test('a lock held by an unknown owner (other host) is broken only after the stale timeout', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'remote.lock');
  await writeFile(path, JSON.stringify({ owner: 'someone', pid: 1, host: 'another-host', at: Date.now() }));
  await assert.rejects(acquireLockFile(path, { staleMs: 5_000, timeoutMs: 300 }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT');
  const started = Date.now();
  const release = await acquireLockFile(path, { staleMs: 800, timeoutMs: 5_000 });
  const waited = Date.now() - started;
  assert.ok(waited >= 300 && waited < 3_000, `waited ${waited} ms`);
  await release();
});

test('release never removes a lock that another owner took over', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'y.lock');
  const release = await acquireLockFile(path);
  const theirs = JSON.stringify({ owner: 'new-owner', pid: process.pid, host: 'h', at: Date.now() });
  await writeFile(path, theirs);
  await release();
  assert.equal(await readFile(path, 'utf8'), theirs);
});

test('a live holder that takes longer than staleMs keeps its lock (it shows signs of life); a dead one is broken', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'slow.lock');
  // Another process holds it, alive, with a 300 ms stale timeout: waiters must not break in.
  const child = spawn(process.execPath, [join(repoRoot, 'dist/test/helpers/lock-holder.js'), path, '300'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  const [chunk] = (await once(child.stdout, 'data')) as [Buffer];
  assert.equal(chunk.toString().trim(), 'locked');
  await assert.rejects(acquireLockFile(path, { staleMs: 300, timeoutMs: 1_500 }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT');
  child.kill('SIGKILL');
  await once(child, 'exit');
  const release = await acquireLockFile(path, { staleMs: 300, timeoutMs: 3_000 });
  await release();
});

test('in one process too: a slow holder is not broken by age while it runs', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'inproc.lock');
  const release = await acquireLockFile(path, { staleMs: 200 });
  await assert.rejects(acquireLockFile(path, { staleMs: 200, timeoutMs: 900 }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT');
  await release();
  const again = await acquireLockFile(path, { staleMs: 200, timeoutMs: 500 });
  await again();
});

test('a holder alive but wedged past maxHoldMs stops showing signs of life and is broken after staleMs', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'wedged.lock');
  const started = Date.now();
  const release = await acquireLockFile(path, { staleMs: 200, maxHoldMs: 300 });
  const second = await acquireLockFile(path, { staleMs: 200, timeoutMs: 5_000 });
  const waited = Date.now() - started;
  assert.ok(waited >= 450, `broken after maxHoldMs + staleMs, not before (${waited} ms)`);
  await second();
  await release(); // not ours any more: nothing removed
});

test('an empty or garbage lock file (holder killed between create and write) older than the create grace is broken at once', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const old = new Date(Date.now() - 5_000);
  for (const [name, content] of [['empty.lock', ''], ['garbage.lock', '{"own']] as const) {
    const path = join(h.home, name);
    await writeFile(path, content);
    await utimes(path, old, old);
    // Before: the full stale timeout (here 60 s) was waited, so this timed out.
    const release = await acquireLockFile(path, { staleMs: 60_000, timeoutMs: 1_500 });
    await release();
  }
});

test('an empty lock file just created is left alone for the create grace (a live creator is about to write its name)', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'creating.lock');
  await writeFile(path, '');
  const written = (await stat(path)).mtimeMs;
  // A waiter with a short timeout does not give up on a nameless lock inside the grace either:
  // it is decided (broken) once the grace has passed, not before.
  const acquiring = acquireLockFile(path, { staleMs: 60_000, timeoutMs: 100, createGraceMs: 1_500 });
  await new Promise((r) => setTimeout(r, 400));
  assert.equal(await readFile(path, 'utf8'), '', 'not broken inside the grace');
  const release = await acquiring;
  assert.ok(Date.now() - written >= 1_500, 'broken only after the grace');
  await release();
});

test('a lock stamped in the future is broken after the stale timeout counted from when the waiter first saw it', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'future.lock');
  const future = Date.now() + 3_600_000;
  await writeFile(path, JSON.stringify({ owner: 'someone', pid: 4242, host: 'another-host', at: future }));
  await utimes(path, new Date(future), new Date(future));
  const started = Date.now();
  // Before: never stale (its age was negative for an hour), so this timed out.
  const release = await acquireLockFile(path, { staleMs: 500, timeoutMs: 5_000 });
  assert.ok(Date.now() - started >= 500, 'not broken before the stale timeout');
  await release();
});

test('a lock stamped in the future whose holder keeps showing signs of life is not broken', async (t) => {
  const h = await makeHome();
  const path = join(h.home, 'future-live.lock');
  let at = Date.now() + 3_600_000;
  const stamp = async (): Promise<void> => {
    at += 100;
    await writeFile(path, JSON.stringify({ owner: 'someone', pid: 4242, host: 'another-host', at }));
    await utimes(path, new Date(at), new Date(at));
  };
  await stamp();
  // The holder's signs of life run one at a time; the home goes only after the
  // last one has finished (a write still in flight would land in a removed directory).
  let last: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    last = last.then(stamp);
  }, 100);
  t.after(async () => {
    clearInterval(timer);
    await last;
    await h.cleanup();
  });
  await assert.rejects(acquireLockFile(path, { staleMs: 400, timeoutMs: 1_500 }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT');
});

test('giving up names the lock file, its holder and what to do', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'named.lock');
  await writeFile(path, JSON.stringify({ owner: 'someone', pid: 4242, host: 'another-host', at: Date.now() }));
  await assert.rejects(acquireLockFile(path, { staleMs: 60_000, timeoutMs: 100, label: 'for source "x"' }), (e: LatchkeyError) => {
    assert.equal(e.code, 'LK_LOCK_TIMEOUT');
    assert.match(e.message, /for source "x"/);
    assert.ok(e.message.includes(path), e.message);
    assert.match(e.message, /pid 4242 on another-host/);
    assert.match(e.message, /delete|remove/i);
    return true;
  });
});

test('a lock path that is a directory is a clear error naming the path, not EISDIR', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'dir.lock');
  await mkdir(path);
  await assert.rejects(acquireLockFile(path, { timeoutMs: 1_000 }), (e: LatchkeyError) => {
    assert.equal(e.code, 'LK_STORE_IO');
    assert.ok(e.message.includes(`${path} is a directory`), e.message);
    assert.match(e.message, /remove it/);
    return true;
  });
  // A dangling symbolic link looked free yet could never be created: the waiter spun until killed.
  const link = join(h.home, 'dangling.lock');
  await symlink(join(h.home, 'nowhere'), link);
  await assert.rejects(acquireLockFile(link, { timeoutMs: 1_000 }), (e: LatchkeyError) => {
    assert.equal(e.code, 'LK_STORE_IO');
    assert.ok(e.message.includes(`${link} is a symbolic link`), e.message);
    return true;
  });
});

test('a lock file never appears empty: it is linked into place with its owner already written', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const path = join(h.home, 'whole.lock');
  const seen = new Set<string>();
  let stop = false;
  const watcher = (async () => {
    while (!stop) {
      try {
        seen.add((await readFile(path, 'utf8')) === '' ? 'empty' : 'whole');
      } catch {
        seen.add('none');
      }
    }
  })();
  for (let i = 0; i < 200; i++) await (await acquireLockFile(path))();
  stop = true;
  await watcher;
  assert.ok(!seen.has('empty'), 'never seen empty');
  assert.deepEqual((await readdir(h.home)).filter((n) => n.endsWith('.tmp')), [], 'no temp file left');
});
