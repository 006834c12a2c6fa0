import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { cliPath, makeHome, runCli } from '../helpers/home.js';
import { send, startLoopbackApi } from '../helpers/loopback-api.js';
import { KeeperProcess } from './keeper-support.js';

/** `latchkey health`, `latchkey service` and the keeper's remote mode, as a user runs them. */

test('latchkey health: a table from the keeper report (exit 4 when action is needed), --json as health.json, live pre-flight without a report', async (t) => {
  const api = await startLoopbackApi((req, res) => (req.path.startsWith('/dead') ? send(res, 401) : send(res, 200, '{}')));
  t.after(() => api.close());
  const h = await makeHome({
    version: 1,
    sources: { good: { token: { secret: 'env:TOK' }, probe: { url: api.url('/ok') } }, bad: { token: { secret: 'env:TOK' }, probe: { url: api.url('/dead') } } },
  });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, TOK: 't' };

  const live = await runCli(['health'], { env });
  assert.equal(live.code, 4);
  assert.match(live.stdout, /live pre-flight \(no keeper report/);
  assert.match(live.stdout, /bad\s+action_required/);

  assert.equal((await runCli(['keeper', '--once'], { env })).code, 4);
  const table = await runCli(['health'], { env: { ...env, NO_COLOR: '1' } });
  assert.equal(table.code, 4);
  assert.match(table.stdout, /^keeper report from \d+s ago/);
  assert.match(table.stdout, /SOURCE\s+STATUS\s+AUTH\s+EXPIRES\s+LAST OK\s+FAILS\s+LATENCY\s+WHAT TO DO/);
  assert.match(table.stdout, /good\s+ok\s+token/);
  assert.ok(!table.stdout.includes('\x1b['), 'no colour when not a terminal / NO_COLOR');
  const json = await runCli(['health', '--json'], { env });
  const report = JSON.parse(json.stdout) as { sources: Record<string, { status: string }>; generatedAt: string };
  assert.equal(report.sources.bad?.status, 'action_required');
  assert.equal(report.sources.good?.status, 'ok');

  // A corrupt report is named, not crashed on: the answer comes from a live pre-flight instead.
  await writeFile(join(h.home, 'health.json'), '{ nope');
  const corrupt = await runCli(['health'], { env });
  assert.equal(corrupt.code, 4);
  assert.match(corrupt.stdout, /live pre-flight: the keeper report is unusable \(.*health\.json is not valid JSON \(the keeper rewrites it on its next cycle\)\)/);
  assert.match(corrupt.stdout, /bad\s+action_required/);

  assert.equal((await runCli(['health', 'extra'], { env })).code, 1);
});

test('latchkey health --watch redraws until interrupted', async (t) => {
  const api = await startLoopbackApi();
  t.after(() => api.close());
  const h = await makeHome({ version: 1, sources: { good: { token: { secret: 'env:TOK' }, probe: { url: api.url('/ok') } } } });
  t.after(() => h.cleanup());
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_HOME: h.home, TOK: 't' };
  assert.equal((await runCli(['keeper', '--once'], { env })).code, 0);
  const child = spawn(process.execPath, [cliPath, 'health', '--watch'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  // Until the second table is drawn (2 s apart), however slow a loaded machine is; not a fixed sleep.
  const redraws = (): number => (out.match(/SOURCE\s+STATUS/g) ?? []).length;
  for (let waited = 0; redraws() < 2 && waited < 30_000; waited += 100) await new Promise((r) => setTimeout(r, 100));
  child.kill('SIGINT');
  const code = await new Promise<number | null>((r) => child.once('close', (c) => r(c)));
  assert.equal(code, 0);
  assert.ok(redraws() >= 2, `redrawn:\n${out}`);
});

test('latchkey service install --print renders the unit with the keeper options; bad usage is refused', async (t) => {
  const h = await makeHome({ version: 1, sources: {} });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const r = await runCli(['service', 'install', '--print', '--', '--interval', '120', '--port', '7879'], { env });
  assert.equal(r.code, 0, r.stderr);
  if (process.platform === 'darwin') {
    assert.match(r.stdout, /<string>keeper<\/string>/);
  } else {
    assert.match(r.stdout, /^ExecStart=.*bin\.js" keeper "--interval" "120" "--port" "7879"$/m);
    assert.ok(r.stdout.includes(`Environment="LATCHKEY_HOME=${h.home}"`));
  }
  assert.equal((await runCli(['service'], { env })).code, 1);
  assert.equal((await runCli(['service', 'frob'], { env })).code, 1);
  assert.equal((await runCli(['service', 'status', '--print'], { env })).code, 1);
  const once = await runCli(['service', 'install', '--print', '--', '--once'], { env });
  assert.equal(once.code, 1);
  assert.match(once.stderr, /--once does not belong/);
});

test('remote mode through the CLI: --allow-remote with a token reference; data needs the bearer token, /livez does not', async (t) => {
  const h = await makeHome({ version: 1, sources: {} });
  t.after(() => h.cleanup());
  const token = 'remote-token-0123456789abcdef';
  const k = KeeperProcess.start(['--host', '0.0.0.0', '--port', '0', '--allow-remote', '--token', 'env:KEEPER_TOKEN', '--interval', '60'], {
    LATCHKEY_HOME: h.home,
    KEEPER_TOKEN: token,
  });
  t.after(() => k.kill());
  const started = await k.waitFor((e) => e.event === 'started');
  assert.equal(started.remote, true);
  const port = new URL(String(started.url)).port;
  const base = `http://127.0.0.1:${port}`;
  assert.equal((await fetch(`${base}/api/health`)).status, 401);
  assert.equal((await fetch(`${base}/api/health`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  assert.equal((await fetch(`${base}/livez`)).status, 200);
  assert.ok(!k.stderr.includes(token), 'the token never reaches the log');
  k.child.kill('SIGTERM');
  assert.equal((await k.exited).code, 0);
});

test('--token on loopback: a shared machine can require the bearer token there too', async (t) => {
  const h = await makeHome({ version: 1, sources: {} });
  t.after(() => h.cleanup());
  const token = 'loopback-token-0123456789abcdef';
  const k = KeeperProcess.start(['--port', '0', '--token', 'env:KEEPER_TOKEN', '--interval', '60'], { LATCHKEY_HOME: h.home, KEEPER_TOKEN: token });
  t.after(() => k.kill());
  const started = await k.waitFor((e) => e.event === 'started');
  assert.equal(started.remote, false);
  const base = String(started.url);
  assert.equal((await fetch(`${base}/api/health`)).status, 401);
  assert.equal((await fetch(`${base}/readyz`)).status, 401);
  assert.equal((await fetch(`${base}/api/health`, { headers: { authorization: `Bearer ${token}` } })).status, 200);
  assert.equal((await fetch(`${base}/`)).status, 200, 'the page itself holds no data');
  k.child.kill('SIGTERM');
  assert.equal((await k.exited).code, 0);
});
