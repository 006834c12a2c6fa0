/**
 * `keyring:` references against a real Secret Service: GNOME Keyring on a private session
 * D-Bus (`dbus-run-session`), unlocked with a throwaway password in a throwaway HOME.
 * Skipped with the reason when the Debian packages are missing, unless
 * `LATCHKEY_TEST_KEYRING=1` (CI) makes them mandatory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeHome, runCli } from '../helpers/home.js';

export const KEYRING_SKIP_REASON = 'needs dbus-run-session and gnome-keyring-daemon (apt-get install -y dbus dbus-x11 gnome-keyring); set LATCHKEY_TEST_KEYRING=1 to make this mandatory';

function has(bin: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' }).status === 0;
}

function keyringSkip(): string | false {
  if (has('dbus-run-session') && has('gnome-keyring-daemon')) return false;
  if (process.env.LATCHKEY_TEST_KEYRING === '1') return false; // run, and fail loudly
  return KEYRING_SKIP_REASON;
}

const CHILD = fileURLToPath(new URL('./keyring-child.js', import.meta.url));

test('keyring: set / get / --reveal / token / rm through GNOME Keyring on a private D-Bus', { skip: keyringSkip() }, async (t) => {
  assert.ok(has('dbus-run-session') && has('gnome-keyring-daemon'), `LATCHKEY_TEST_KEYRING=1 but ${KEYRING_SKIP_REASON}`);
  const base = await mkdtemp(join(tmpdir(), 'lk-keyring-'));
  t.after(() => rm(base, { recursive: true, force: true }));
  const runtime = join(base, 'run');
  await mkdir(runtime, { mode: 0o700 });
  const script = `echo latchkey-test-pw | gnome-keyring-daemon --unlock --components=secrets >/dev/null 2>&1 || exit 90; exec "${process.execPath}" "${CHILD}"`;
  const env = {
    PATH: process.env.PATH,
    HOME: base,
    XDG_DATA_HOME: join(base, 'data'),
    XDG_CONFIG_HOME: join(base, 'config'),
    XDG_CACHE_HOME: join(base, 'cache'),
    XDG_RUNTIME_DIR: runtime,
  };
  const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn('dbus-run-session', ['--', 'sh', '-c', script], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
  const relevant = result.stderr
    .split('\n')
    .filter((l) => !/^dbus-daemon\[|Failed to set fd limit/.test(l))
    .join('\n');
  assert.notEqual(result.code, 90, `gnome-keyring-daemon --unlock failed:\n${relevant}`);
  assert.equal(result.code, 0, relevant);
  assert.match(result.stdout, /keyring scenario ok/);
});

test('keyring: no Secret Service → a clear error with the fix, nothing printed of the value', async (t) => {
  const home = await makeHome({ version: 1, sources: {} });
  t.after(() => home.cleanup());
  const env = { LATCHKEY_HOME: home.home, DBUS_SESSION_BUS_ADDRESS: `unix:path=${join(home.home, 'no-such-bus')}` };
  const set = await runCli(['secrets', 'set', 'keyring:latchkey-test/none'], { env, input: 'never-stored-value\n' });
  assert.equal(set.code, 1);
  assert.match(set.stderr, /cannot write the keyring entry: no Secret Service is reachable/);
  assert.match(set.stderr, /fix: .*gnome-keyring-daemon --unlock/);
  assert.ok(!set.stderr.includes('never-stored-value') && !set.stdout.includes('never-stored-value'));

  const get = await runCli(['secrets', 'get', 'keyring:latchkey-test/none'], { env });
  assert.equal(get.code, 4);
  assert.match(get.stderr, /cannot read the keyring entry: no Secret Service is reachable/);

  // A `keyutils` opt-in is honoured (the kernel keyring may or may not be usable in a container;
  // either way the message names the reference and never a value).
  const ku = await runCli(['secrets', 'get', 'keyring:latchkey-test/none'], { env: { ...env, LATCHKEY_KEYRING: 'keyutils' } });
  assert.notEqual(ku.code, 0);
  assert.match(ku.stderr, /keyring:latchkey-test\/none/);
});
