/** The one abortable wait (src/core/wait.ts): an abort ends it at once, and it never rejects. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { abortableWait } from '../../../src/core/wait.js';

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
