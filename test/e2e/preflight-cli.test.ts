/** `latchkey preflight` and `latchkey add --probe` as separate processes: output, exit codes, the cached path's imports. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { cliPath, makeHome, runCli, type TempHome } from '../helpers/home.js';
import { send, startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';

let api: LoopbackApi;
before(async () => {
  api = await startLoopbackApi((req, res) => {
    const good = req.headers.authorization === 'Bearer good';
    if (req.path === '/stall') return;
    if (req.path === '/created') return good ? send(res, 204) : send(res, 401);
    return good ? send(res, 200, '{"ok":true}') : send(res, 401);
  });
});
after(async () => {
  await api.close();
});

async function home(t: { after(fn: () => Promise<void>): void }, sources: Record<string, unknown>): Promise<{ h: TempHome; env: NodeJS.ProcessEnv }> {
  const h = await makeHome({ version: 1, sources });
  t.after(() => h.cleanup());
  return { h, env: { LATCHKEY_HOME: h.home, GOOD: 'good', BAD: 'bad' } };
}

const src = (env: string, path = '/me') => ({ token: { secret: `env:${env}` }, probe: { url: api.url(path) } });

test('table output and exit 0 when every source is healthy', async (t) => {
  const { env } = await home(t, { a: src('GOOD'), b: src('GOOD') });
  const r = await runCli(['preflight', 'a', 'b'], { env });
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.match(lines[0]!, /^SOURCE\s+STATUS\s+PATH\s+LATENCY\s+DETAIL$/);
  assert.match(lines[1]!, /^a\s+ok\s+token\s+\d+ ms\s+token: probe answered 200$/);
  assert.equal(lines.length, 3);
});

test('--json: the report; exit 4 for a dead token with the fix; 4 wins over 3 (a stalled source)', async (t) => {
  const { env } = await home(t, { a: src('GOOD'), dead: src('BAD'), stalled: src('GOOD', '/stall') });
  const started = Date.now();
  const r = await runCli(['preflight', 'a', 'dead', 'stalled', '--json', '--budget', '500'], { env });
  assert.ok(Date.now() - started < 5000);
  assert.equal(r.code, 4, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.exitCode, 4);
  assert.equal(report.from, 'live');
  const by = Object.fromEntries(report.results.map((x: { source: string }) => [x.source, x]));
  assert.equal(by.a.status, 'ok');
  assert.equal(by.dead.status, 'action_required');
  assert.equal(by.dead.operatorAction, 'replace_token');
  assert.match(by.dead.fix, /^export BAD=<the new value>/);
  assert.equal(by.stalled.status, 'unreachable');
  assert.equal(by.stalled.message, 'stalled: no answer within 500 ms');
});

test('exit 3 when the worst is unreachable', async (t) => {
  const { env } = await home(t, { a: src('GOOD'), stalled: src('GOOD', '/stall') });
  const r = await runCli(['preflight', 'a', 'stalled', '--budget', '300'], { env });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stdout, /stalled\s+unreachable/);
  assert.match(r.stdout, /stalled: no answer within \d+ ms; fix: latchkey preflight stalled --live/);
});

test('bad input: --budget, unknown source, unknown flag -> exit 1', async (t) => {
  const { env } = await home(t, { a: src('GOOD') });
  for (const budget of ['0', '-5', 'abc', '1.5', '999999999']) {
    const r = await runCli(['preflight', 'a', '--budget', budget], { env });
    assert.equal(r.code, 1, budget);
    assert.match(r.stderr, /--budget/);
  }
  const unknown = await runCli(['preflight', 'a', 'nope'], { env });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown source "nope"/);
  assert.equal((await runCli(['preflight', '--fast', 'a'], { env })).code, 1);
});

/** Runs the CLI with a resolve hook that records every module URL it loads. */
function runTraced(args: string[], env: NodeJS.ProcessEnv, traceFile: string, hookFile: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', pathToFileURL(hookFile).href, cliPath, ...args], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, LK_TRACE: traceFile },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

test('cached path of the command: a fresh healthy keeper report answers without loading oauth4webapi, valibot or playwright', async (t) => {
  const { h, env } = await home(t, { a: src('GOOD'), b: src('GOOD') });
  const entry = { status: 'ok', authPath: 'token', operatorAction: null, fix: null, message: 'fine', expiresAt: null, lastOkAt: new Date().toISOString(), consecutiveFailures: 0, latencyMs: 10, history: [] };
  await writeFile(join(h.home, 'health.json'), JSON.stringify({ generatedAt: new Date().toISOString(), intervalSeconds: 300, sources: { a: entry, b: entry } }));
  const hookFile = join(h.home, 'trace-hook.mjs');
  const traceFile = join(h.home, 'trace.txt');
  await writeFile(
    hookFile,
    `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(\`
import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context);
  appendFileSync(process.env.LK_TRACE, r.url + '\\\\n');
  return r;
}\`));
`,
  );
  // The first command after the config changed validates it (loading the validator), as
  // `latchkey token` does; from then on its stamp vouches for it.
  assert.equal((await runCli(['preflight', 'a', 'b'], { env: { ...env, LATCHKEY_NO_FAST_PATH: '1' } })).code, 0);
  api.requests.length = 0;
  // The ES module route (the CLI entry's synchronous fast path would answer before any ES
  // module loads: test/e2e/fast-path.test.ts).
  const r = await runTraced(['preflight', 'a', 'b'], { ...env, LATCHKEY_NO_FAST_PATH: '1' }, traceFile, hookFile);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /from the keeper's report/);
  assert.equal(api.requests.length, 0, 'no probe');
  const loaded = (await readFile(traceFile, 'utf8')).split('\n').filter(Boolean);
  assert.ok(loaded.some((u) => u.endsWith('/client/preflight.js')), 'the trace works');
  for (const heavy of ['oauth4webapi', 'valibot', 'playwright', '/latchkey.js', '/config/validate.js']) {
    assert.deepEqual(
      loaded.filter((u) => u.includes(heavy)),
      [],
      `${heavy} is not loaded`,
    );
  }
  // --live probes even with the report.
  const live = await runCli(['preflight', 'a', '--live', '--json'], { env });
  assert.equal(JSON.parse(live.stdout).from, 'live');
  assert.equal(api.requests.length, 1);
});

test('latchkey add --probe / --probe-status writes the probe that preflight then uses', async (t) => {
  const h = await makeHome({ version: 1, sources: {} });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, GOOD: 'good' };
  const add = await runCli(['add', 'svc', '--token', 'env:GOOD', '--probe', api.url('/created'), '--probe-status', '204'], { env });
  assert.equal(add.code, 0, add.stderr);
  const config = JSON.parse(await readFile(h.configPath, 'utf8'));
  assert.deepEqual(config.sources.svc.probe, { url: api.url('/created'), expectStatus: 204 });
  const r = await runCli(['preflight', 'svc', '--json'], { env });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(JSON.parse(r.stdout).results[0].httpStatus, 204);
});

test('latchkey add: a bad --probe-status or --probe URL is refused and nothing is written', async (t) => {
  const h = await makeHome({ version: 1, sources: {} });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const before = await readFile(h.configPath, 'utf8');
  for (const args of [
    ['--probe', api.url('/me'), '--probe-status', '700'],
    ['--probe', api.url('/me'), '--probe-status', 'ok'],
    ['--probe', 'ftp://example.com/x'],
    ['--probe', 'not a url'],
  ]) {
    const r = await runCli(['add', 'svc', '--token', 'env:GOOD', ...args], { env });
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /probe/i);
  }
  assert.equal(await readFile(h.configPath, 'utf8'), before);
});
