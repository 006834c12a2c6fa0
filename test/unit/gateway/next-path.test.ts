import assert from 'node:assert/strict';
import { test } from 'node:test';
import { validateNext } from '../../../src/gateway/next-path.js';

test('next: same-origin paths only, normalised, never /auth/*', () => {
  assert.deepEqual(validateNext(undefined), { ok: true, path: '/' });
  assert.deepEqual(validateNext('/a/./b/../c?x=1#h'), { ok: true, path: '/a/c?x=1#h' });
  assert.deepEqual(validateNext('/dash%20board'), { ok: true, path: '/dash%20board' });
  for (const bad of ['//evil.test', '/\\evil.test', 'https://evil.test', 'evil', '/%2f%2fevil.test', '/%252f%252fevil.test', '/x%0d%0aSet-Cookie:a=b', '/x\nY', '/auth/me', '/auth', '/a/../auth/logout', '/%5cevil', '/%E0%A4%A', 'x'.repeat(3000)]) {
    assert.equal(validateNext(bad).ok, false, bad);
  }
});
