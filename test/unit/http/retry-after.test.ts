import { test } from 'node:test';
import assert from 'node:assert/strict';
import { retryAfterMs } from '../../../src/http/retry-after.js';
import { retryAfter } from '../../../src/oauth/token-answer.js';
import { parseRetryAfter } from '../../../src/remote/gateway-request.js';

const now = Date.parse('Mon, 30 Nov 2026 09:00:00 GMT');

test('Retry-After: delay-seconds and HTTP-dates in ms from now; garbage, negatives and bare years are unreadable', () => {
  assert.equal(retryAfterMs('120', now), 120_000);
  assert.equal(retryAfterMs(' 0 ', now), 0);
  assert.equal(retryAfterMs('Mon, 30 Nov 2026 09:00:30 GMT', now), 30_000);
  assert.equal(retryAfterMs('Mon, 30 Nov 2026 08:00:00 GMT', now), 0, 'a date in the past is now');
  for (const bad of [null, '', '   ', 'soon', '-5', '1.5', '+3']) assert.equal(retryAfterMs(bad, now), undefined, String(bad));
});

test('Retry-After: the token endpoint caps it; the remote client rounds it up to seconds', () => {
  assert.ok((retryAfter('999999999', now) as number) < 999_999_999_000, 'capped');
  assert.equal(retryAfter('7', now), 7_000);
  assert.equal(parseRetryAfter('Mon, 30 Nov 2026 09:00:00 GMT', now + 1), 0);
  assert.equal(parseRetryAfter('120', now), 120);
});
