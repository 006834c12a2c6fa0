import { test } from 'node:test';
import assert from 'node:assert/strict';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';
import { latchkeyHome } from '../../src/paths.js';

test('LATCHKEY_HOME: "~" and "~/x" are the home directory (as an unexpanded value from a unit file or .env reaches us)', () => {
  assert.equal(latchkeyHome({ LATCHKEY_HOME: '~' }), homedir());
  assert.equal(latchkeyHome({ LATCHKEY_HOME: '~/lk-profile' }), join(homedir(), 'lk-profile'));
  assert.equal(latchkeyHome({ LATCHKEY_HOME: '  /tmp/lk-x  ' }), '/tmp/lk-x', 'surrounding blanks are not part of the path');
});

test('LATCHKEY_HOME: relative to the current directory, always absolute; blank means the default', () => {
  assert.equal(latchkeyHome({ LATCHKEY_HOME: 'rel/profile' }), resolve('rel/profile'));
  assert.equal(latchkeyHome({ LATCHKEY_HOME: '~user/x' }), resolve('~user/x'), 'only a bare ~ is expanded');
  const def = latchkeyHome({ LATCHKEY_HOME: '   ', XDG_CONFIG_HOME: '/xdg' });
  if (process.platform === 'linux') assert.equal(def, '/xdg/latchkey');
});
