import { test } from 'node:test';
import assert from 'node:assert/strict';
import { grantFromInput } from '../../src/latchkey.js';
import type { LatchkeyError } from '../../src/core/errors.js';

const SECRET = 'canary-grant-31f0-value';

test('grantFromInput: a token with a newline, a space or a control character is refused without echoing it', () => {
  for (const bad of [`${SECRET}\n`, `${SECRET} x`, `${SECRET}\r`, `\u0007${SECRET}`]) {
    for (const field of ['access_token', 'refresh_token'] as const) {
      const input = { access_token: 'ok-access', refresh_token: 'ok-refresh', [field]: bad };
      assert.throws(
        () => grantFromInput(input, 0, 'api'),
        (e: LatchkeyError) => e.code === 'LK_GRANT_INVALID' && e.message.includes(`"${field}" contains whitespace or a control character`) && !e.message.includes(SECRET),
      );
    }
  }
  const g = grantFromInput({ access_token: 'a.b-c_d~e+f/g=', refresh_token: 'r', expires_in: 60 }, 1000, 'api');
  assert.equal(g.accessToken.reveal(), 'a.b-c_d~e+f/g=');
  assert.equal(g.expiresAt, 1000 + 60_000 - 1000);
});
