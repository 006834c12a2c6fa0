/** Per-call deadlines (src/core/deadline.ts) and the one listener they share on a long-lived signal (src/core/abort-fanout.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { onAbort } from '../../../src/core/abort-fanout.js';
import { callDeadline } from '../../../src/core/deadline.js';

const listeners = (s: AbortSignal): number => EventEmitter.getEventListeners(s, 'abort').length;

test('callDeadline: aborts on the parent or the timeout, and detaches from the long-lived parent when disposed', async () => {
  const parent = new AbortController();
  for (let i = 0; i < 100; i++) callDeadline(parent.signal, 60_000).dispose();
  assert.equal(listeners(parent.signal), 0, 'nothing accumulates on the parent');
  const timed = callDeadline(parent.signal, 20);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(timed.signal.aborted, true);
  assert.equal((timed.signal.reason as DOMException).name, 'TimeoutError');
  timed.dispose();
  const disposed = callDeadline(parent.signal, 60_000);
  disposed.dispose();
  const linked = callDeadline(parent.signal, 60_000);
  parent.abort(new Error('keeper stopping'));
  assert.equal(linked.signal.aborted, true);
  assert.equal((linked.signal.reason as Error).message, 'keeper stopping');
  assert.equal(disposed.signal.aborted, false, 'a call that was over is let go of, not aborted');
  linked.dispose();
  assert.equal(callDeadline(parent.signal, 60_000).signal.aborted, true, 'an already-stopped parent aborts at once');
});

test('callDeadline without a parent: only the timeout aborts it, and dispose clears the timer', async () => {
  const timed = callDeadline(undefined, 20);
  await new Promise((r) => setTimeout(r, 60));
  assert.equal((timed.signal.reason as DOMException).name, 'TimeoutError');
  const cleared = callDeadline(undefined, 20);
  cleared.dispose();
  await new Promise((r) => setTimeout(r, 60));
  assert.equal(cleared.signal.aborted, false);
});

test('onAbort: one listener on the signal however many calls wait on it; each call runs once, a let-go one never', () => {
  const ctrl = new AbortController();
  const ran: number[] = [];
  const detachers = [];
  for (let i = 0; i < 500; i++) detachers.push(onAbort(ctrl.signal, () => ran.push(i)));
  assert.equal(listeners(ctrl.signal), 1);
  for (let i = 0; i < 500; i += 2) detachers[i]!();
  const twice = (): number => ran.push(-1);
  onAbort(ctrl.signal, twice);
  onAbort(ctrl.signal, twice);
  ctrl.abort();
  assert.equal(ran.filter((i) => i >= 0).length, 250);
  assert.ok(ran.every((i) => i < 0 || i % 2 === 1), 'only the calls not let go of ran');
  assert.equal(ran.filter((i) => i === -1).length, 2, 'the same function registered twice runs twice');
  ctrl.abort();
  assert.equal(ran.length, 252, 'an abort runs them once');
  let late = 0;
  onAbort(ctrl.signal, () => late++);
  assert.equal(late, 1, 'on a signal already aborted the call runs at once');
});
