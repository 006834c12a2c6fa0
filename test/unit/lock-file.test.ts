import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';
import { acquireLockFile } from '../../src/store/lock-file.js';
import { LatchkeyError } from '../../src/errors.js';
import { makeHome, repoRoot } from '../helpers/home.js';

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
