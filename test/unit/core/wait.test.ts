/** The abortable waits (src/core/wait.ts): an abort ends them at once. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abortableWait, untilAborted } from '../../../src/core/wait.js';

test('abortableWait ends when its signal aborts (an hour-long wait), resolves for an already aborted signal, and ends by itself otherwise', async () => {
  const stop = new AbortController();
  const waiting = abortableWait(3_600_000, stop.signal);
  stop.abort(new Error('shutdown'));
  // The abort resolves it in the same turn; the fallback only keeps a broken wait from hanging the run.
  let fallback: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([waiting.then(() => 'ended'), new Promise((r) => (fallback = setTimeout(() => r('still waiting'), 5_000)))]);
  clearTimeout(fallback);
  assert.equal(outcome, 'ended');
  await abortableWait(3_600_000, stop.signal);
  await abortableWait(1);
  await abortableWait(-5, new AbortController().signal);
});

test('untilAborted: the work\'s outcome while the signal holds; the abort at once (onAbort first), and a later failure of the work is not unhandled', async () => {
  assert.equal(await untilAborted(Promise.resolve(7), new AbortController().signal), 7);
  await assert.rejects(untilAborted(Promise.reject(new Error('work failed')), new AbortController().signal), /work failed/);

  let failLater!: (e: Error) => void;
  const work = new Promise<number>((_r, reject) => (failLater = reject));
  const ac = new AbortController();
  const calls: string[] = [];
  const pending = untilAborted(work, ac.signal, () => calls.push('onAbort'));
  ac.abort(new Error('stopped'));
  await assert.rejects(pending, /stopped/);
  assert.deepEqual(calls, ['onAbort']);
  const unhandled: unknown[] = [];
  const onUnhandled = (e: unknown): void => void unhandled.push(e);
  process.on('unhandledRejection', onUnhandled);
  failLater(new Error('late failure'));
  await new Promise((r) => setImmediate(r));
  process.off('unhandledRejection', onUnhandled);
  assert.deepEqual(unhandled, []);

  const before = new AbortController();
  before.abort(new Error('already'));
  let ran = 0;
  await assert.rejects(untilAborted(new Promise(() => undefined), before.signal, () => ran++), /already/);
  assert.equal(ran, 1);
});
