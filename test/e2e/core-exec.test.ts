import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, makeHome, runCli, type TempHome } from '../helpers/home.js';

const posix = process.platform !== 'win32';
const CANARY = 'canary-exec-5e1b-token';

async function home(t: { after(fn: () => Promise<void>): void }): Promise<{ h: TempHome; env: NodeJS.ProcessEnv }> {
  const h = await makeHome({ version: 1, sources: { api: { token: { secret: 'env:API_PAT' } } } });
  t.after(() => h.cleanup());
  return { h, env: { LATCHKEY_HOME: h.home, API_PAT: CANARY } };
}

test('exec: the exit status of a command killed by a signal is 128 + its number (any signal)', { skip: !posix }, async (t) => {
  const { env } = await home(t);
  for (const [sig, n] of [
    ['SIGALRM', 14],
    ['SIGUSR2', 12],
    ['SIGKILL', 9],
  ] as const) {
    const r = await runCli(['exec', 'api', '--', process.execPath, '-e', `process.kill(process.pid, '${sig}')`], { env });
    assert.equal(r.code, 128 + n, `${sig}: ${r.stderr}`);
  }
});

test('exec: a command that is not found exits 127, one that cannot be run 126', { skip: !posix }, async (t) => {
  const { h, env } = await home(t);
  const missing = await runCli(['exec', 'api', '--', join(h.home, 'no-such-command')], { env });
  assert.equal(missing.code, 127);
  assert.match(missing.stderr, /cannot run .*no-such-command: ENOENT/);
  const notExecutable = join(h.home, 'script.sh');
  await writeFile(notExecutable, '#!/bin/sh\necho hi\n', { mode: 0o600 });
  const denied = await runCli(['exec', 'api', '--', notExecutable], { env });
  assert.equal(denied.code, 126, denied.stderr);
  for (const r of [missing, denied]) assert.ok(!r.stderr.includes(CANARY) && !r.stdout.includes(CANARY));
});

for (const sig of ['SIGTERM', 'SIGHUP', 'SIGINT', 'SIGUSR2'] as const) {
  test(`exec: ${sig} sent to latchkey reaches the command, and latchkey exits with its status`, { skip: !posix }, async (t) => {
    const { env } = await home(t);
    const script = `process.on('${sig}', () => { process.stdout.write('got ${sig}\\n'); process.exit(7); }); process.stdout.write('ready\\n'); setInterval(() => {}, 1000);`;
    const child = spawn(process.execPath, [cliPath, 'exec', 'api', '--', process.execPath, '-e', script], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.after(() => child.kill('SIGKILL'));
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    while (!out.includes('ready')) await once(child.stdout, 'data');
    child.kill(sig); // to latchkey only, as a supervisor or `kill <pid>` would
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 7);
    assert.match(out, new RegExp(`got ${sig}`));
  });
}

test('exec --help documents the exit status and the forwarded signals', async () => {
  const r = await runCli(['exec', '--help']);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /128\+N/);
  assert.match(r.stdout, /SIGHUP/);
});

test('exec: two sources that map to one variable are refused before anything runs', async (t) => {
  const h = await makeHome({ version: 1, sources: { 'a.b': { token: { secret: 'env:X' } }, 'a-b': { token: { secret: 'env:X' } } } });
  t.after(() => h.cleanup());
  const r = await runCli(['exec', 'a.b,a-b', '--', process.execPath, '-e', 'process.stdout.write("ran")'], { env: { LATCHKEY_HOME: h.home, X: CANARY } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /sources "a\.b" and "a-b" would both be passed as LATCHKEY_A_B_TOKEN/);
  assert.equal(r.stdout, '');
});
