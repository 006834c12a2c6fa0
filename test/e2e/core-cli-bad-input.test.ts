import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFile, symlink, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { closedPort } from '../helpers/closed-port.js';
import { makeHome, runCli } from '../helpers/home.js';

const posix = process.platform !== 'win32';

test('latchkey token with a file: reference to a FIFO answers at once (fast path and full route): exit 4, the path named', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const fifo = join(h.home, 'pat.fifo');
  execFileSync('mkfifo', [fifo]);
  const env = { LATCHKEY_HOME: h.home };
  assert.equal((await runCli(['init'], { env })).code, 0);
  assert.equal((await runCli(['add', 'pat', '--token', `file:${fifo}`], { env })).code, 0);
  for (const extra of [{}, { LATCHKEY_NO_FAST_PATH: '1' }]) {
    const started = Date.now();
    const r = await runCli(['token', 'pat'], { env: { ...env, ...extra }, timeoutMs: 10_000 });
    assert.ok(Date.now() - started < 8_000, 'no hang');
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, new RegExp(`file:${fifo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*FIFO`));
    assert.equal(r.stdout, '');
  }
});

test('a symlinked store.json: token and status refuse it with the fix (exit 1) and leave both files alone', { skip: !posix }, async (t) => {
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: 'https://idp.example/token', clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const imp = await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ access_token: 'at-symlink-test', refresh_token: 'rt-x', expires_in: 3600 }) });
  assert.equal(imp.code, 0, imp.stderr);
  const real = join(h.home, 'elsewhere.json');
  await rename(h.storePath, real);
  await symlink(real, h.storePath);
  const before = await readFile(real);
  for (const args of [['token', 'api'], ['status']]) {
    const r = await runCli(args, { env });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /store\.json is a symbolic link.*LATCHKEY_HOME/);
    assert.ok(!r.stdout.includes('at-symlink-test'));
  }
  assert.deepEqual(await readFile(real), before);
});

test('a config that is a FIFO does not hang latchkey token', { skip: !posix }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  execFileSync('mkfifo', [h.configPath]);
  const r = await runCli(['token', 'x'], { env: { LATCHKEY_HOME: h.home }, timeoutMs: 10_000 });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /config\.json.*FIFO/);
});

test('import: into a source without oauth, an endless or huge grant, a directory: exit 1, named, nothing stored', { skip: !posix }, async (t) => {
  const h = await makeHome({ version: 1, sources: { pat: { token: { secret: 'env:X' } }, api: { oauth: { tokenEndpoint: 'https://idp.example/token', clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const grant = JSON.stringify({ access_token: 'at-import-test', refresh_token: 'rt', expires_in: 3600 });
  const intoPat = await runCli(['import', 'pat', '--grant', '-'], { env, input: grant });
  assert.equal(intoPat.code, 1);
  assert.match(intoPat.stderr, /source "pat" has no oauth method \(it uses token\), so a grant would never be used; nothing was stored/);
  const started = Date.now();
  const zero = await runCli(['import', 'api', '--grant', '/dev/zero'], { env, timeoutMs: 15_000 });
  assert.equal(zero.code, 1, zero.stderr);
  assert.match(zero.stderr, /the grant in \/dev\/zero is larger than 1048576 bytes; nothing was stored/);
  assert.ok(Date.now() - started < 10_000);
  const hugeFile = join(h.home, 'huge.json');
  await writeFile(hugeFile, `{"access_token":"${'a'.repeat(2 * 1024 * 1024)}"}`);
  const huge = await runCli(['import', 'api', '--grant', hugeFile], { env });
  assert.equal(huge.code, 1);
  assert.match(huge.stderr, /huge\.json is larger than/);
  const dir = await runCli(['import', 'api', '--grant', h.home], { env });
  assert.equal(dir.code, 1);
  assert.match(dir.stderr, /cannot read the grant file .*EISDIR/);
  await assert.rejects(readFile(h.storePath), /ENOENT/, 'nothing was stored');
  const ok = await runCli(['import', 'api', '--grant', '-'], { env, input: grant });
  assert.equal(ok.code, 0, ok.stderr);
});

test('add: a plain-http token endpoint off loopback is refused at once (exit 1), loopback http is fine', async (t) => {
  const h = await makeHome({ version: 1, sources: {} });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const r = await runCli(['add', 'api', '--token-endpoint', 'http://idp.example.com/token', '--client-id', 'c'], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--token-endpoint http:\/\/idp\.example\.com must use https/);
  assert.doesNotMatch(await readFile(h.configPath, 'utf8'), /idp\.example\.com/);
  const bad = await runCli(['add', 'api', '--token-endpoint', 'not a url', '--client-id', 'c'], { env });
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--token-endpoint is not a valid URL/);
  assert.equal((await runCli(['add', 'api', '--token-endpoint', 'http://127.0.0.1:8080/token', '--client-id', 'c'], { env })).code, 0);
});

test('token fails open with the current token; stderr says so when that token has already expired', async (t) => {
  // A port nothing listens on: the connection is refused, so the refresh token was never sent.
  const port = await closedPort();
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: `http://127.0.0.1:${port}/token`, clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const imp = await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ access_token: 'at-expired-test', refresh_token: 'rt-x', expires_in: 1 }) });
  assert.equal(imp.code, 0, imp.stderr);
  await new Promise((r) => setTimeout(r, 1_200));
  const r = await runCli(['token', 'api'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'at-expired-test\n', 'stdout is the token alone');
  assert.match(r.stderr, new RegExp(`warning: api: this access token expired \\d+ s ago and the last refresh failed: refresh failed: connection refused by 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\) \\(the request was not sent\\)`));
  assert.ok(!r.stderr.includes('at-expired-test') && !r.stderr.includes('rt-x'));
});

test('LATCHKEY_HOME pointing at a file (or below one): every command names the home, exit 1, the file untouched', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const file = join(h.home, 'config.json');
  await writeFile(file, '{"version":1,"sources":{}}\n', { mode: 0o600 });
  const before = await readFile(file, 'utf8');
  for (const [home, expected] of [
    [file, `LATCHKEY_HOME=${file} is a file, not a directory`],
    [join(file, 'sub'), `LATCHKEY_HOME=${join(file, 'sub')} cannot be a directory: ${file} is a file`],
  ] as const) {
    for (const args of [['token', 'x'], ['status'], ['init'], ['preflight', 'x'], ['keeper', '--once']]) {
      const r = await runCli(args, { env: { LATCHKEY_HOME: home } });
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(expected), `${args.join(' ')}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /ENOTDIR|config\.json\/config\.json/, args.join(' '));
    }
  }
  assert.equal(await readFile(file, 'utf8'), before);
});
