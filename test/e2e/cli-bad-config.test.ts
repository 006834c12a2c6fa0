/**
 * Bad input a newcomer produces, through the real CLI: a config with a typo (pre-flight must not
 * vouch for it on any path), comments and a byte-order mark (accepted: JSONC, the README's
 * block pastes as it is), `file:` references that are relative, `~`, missing or a directory,
 * an upstream that refuses connections (the host and port named), and the one table order.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { closedPort } from '../helpers/closed-port.js';
import { esmCliPath, makeHome, repoRoot, runCli } from '../helpers/home.js';
import { startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';

let api: LoopbackApi;
before(async () => {
  api = await startLoopbackApi();
});
after(async () => {
  await api.close();
});

function healthEntry(status: string): Record<string, unknown> {
  return { status, authPath: 'token', operatorAction: null, fix: null, message: 'fine', expiresAt: null, lastOkAt: new Date().toISOString(), consecutiveFailures: 0, latencyMs: 12, history: [] };
}

test('preflight never vouches for a broken config: exit 1 with the message `token` gives, on the fast path, the keeper-report path and live', async (t) => {
  const good = { version: 1, sources: { api: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/ok') } } } };
  const h = await makeHome(good);
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, GOOD: 'good' };
  // A keeper's fresh report that says api is healthy, and a config that passed once (stamped).
  await writeFile(join(h.home, 'health.json'), JSON.stringify({ generatedAt: new Date().toISOString(), intervalSeconds: 300, sources: { api: healthEntry('ok') } }));
  const before = await runCli(['preflight', 'api'], { env });
  assert.equal(before.code, 0, before.stderr);
  assert.match(before.stdout, /from the keeper's report/);
  // Then a typo'd key.
  const broken = structuredClone(good) as { sources: { api: Record<string, unknown> } };
  broken.sources.api.probee = broken.sources.api.probe;
  await writeFile(h.configPath, JSON.stringify(broken, null, 2));
  const token = await runCli(['token', 'api'], { env });
  assert.equal(token.code, 1);
  assert.match(token.stderr, /config\.json is invalid:\n {2}sources\.api\.probee: unknown key \(check the spelling\)/);
  for (const [label, args, extra, bin] of [
    ['fast path', ['preflight', 'api'], {}, undefined],
    ['fast path, --json', ['preflight', 'api', '--json'], {}, undefined],
    ['keeper-report path (no fast path)', ['preflight', 'api'], { LATCHKEY_NO_FAST_PATH: '1' }, undefined],
    ['ES module entry', ['preflight', 'api'], {}, esmCliPath],
    ['live', ['preflight', 'api', '--live'], {}, undefined],
    ['all sources', ['preflight'], {}, undefined],
  ] as const) {
    const r = await runCli([...args], { env: { ...env, ...extra }, bin });
    assert.equal(r.code, 1, `${label}: ${r.stdout}${r.stderr}`);
    assert.equal(r.stderr, token.stderr, `${label}: the same message as token`);
    assert.equal(r.stdout, '', `${label}: no verdict printed`);
  }
});

test("config.json with comments and a byte-order mark is accepted (the README's block pastes as it is); a typo in it is still named", async (t) => {
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
  const block = /## Config reference[\s\S]*?```jsonc\n([\s\S]*?)```/.exec(readme)?.[1];
  assert.ok(block && block.includes('//'), "the README's config reference, with its comments");
  const h = await makeHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  await writeFile(h.configPath, block);
  const pasted = await runCli(['status', '--json'], { env });
  assert.notEqual(pasted.code, 1, pasted.stderr);
  assert.deepEqual(JSON.parse(pasted.stdout).sources.map((s: { source: string }) => s.source), ['hubspot']);

  const jsonc = `\ufeff// my sources
{
  "version": 1, /* one schema */
  "sources": {
    // a PAT; the probe URL holds "//" and "/*" inside a string, which are not comments
    "pat": { "token": { "secret": "env:PAT" }, "probe": { "url": "${api.url('/a//b/*c*/')}" } } // trailing
  }
}
`;
  await writeFile(h.configPath, jsonc);
  for (const extra of [{}, { LATCHKEY_NO_FAST_PATH: '1' }, {}]) {
    // The third run: the stamp (written by the full route) vouches for the commented text on the fast path.
    const tok = await runCli(['token', 'pat'], { env: { ...env, PAT: 'pat-value', ...extra } });
    assert.equal(tok.code, 0, tok.stderr);
    assert.equal(tok.stdout, 'pat-value\n');
  }
  api.requests.length = 0;
  const pre = await runCli(['preflight', 'pat', '--live'], { env: { ...env, PAT: 'pat-value' } });
  assert.equal(pre.code, 0, pre.stderr);
  assert.equal(api.requests[0]?.path, '/a//b/*c*/', 'the string was not touched');
  // A rewrite (add) keeps every setting, says the comments are gone.
  const add = await runCli(['add', 'other', '--token', 'env:OTHER'], { env });
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /note: config\.json was rewritten as plain JSON; the comments it had were not kept/);
  assert.equal(JSON.parse(await readFile(h.configPath, 'utf8')).sources.pat.probe.url, api.url('/a//b/*c*/'));

  await writeFile(h.configPath, jsonc.replace('"token": {', '"tokn": {'));
  const typo = await runCli(['token', 'pat'], { env });
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /config\.json is invalid:\n {2}sources\.pat\.tokn: unknown key \(check the spelling\)/);
  await writeFile(h.configPath, '{ "version": 1, /* never closed\n "sources": {} }');
  const open = await runCli(['status'], { env });
  assert.equal(open.code, 1);
  assert.match(open.stderr, /config\.json: not valid JSON \(a \/\* comment opened at line 1, column 17 is never closed\)/);
});

test('file: references: relative and ~ are refused as paths (not as leaked secrets); missing and directory name the path and the command that fixes it', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const write = (secret: string): Promise<void> => writeFile(h.configPath, JSON.stringify({ version: 1, sources: { pat: { token: { secret } } } }));

  await write('file:secrets/pat');
  let r = await runCli(['token', 'pat'], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /sources\.pat\.token\.secret: file: references must be absolute \(file:\/absolute\/path\), got the relative path "secrets\/pat"/);
  assert.doesNotMatch(r.stderr, /never the secret itself/);
  await write('file:~/pat');
  r = await runCli(['token', 'pat'], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /sources\.pat\.token\.secret: file: references must be absolute; "~" is not expanded \(write file:\/home\/<you>\/pat instead of file:~\/pat\)/);
  for (const args of [['add', 'x', '--token', 'file:pat.txt'], ['add', 'x', '--token-endpoint', 'https://idp.example/token', '--client-id', 'c', '--client-secret', 'file:~/s'], ['secrets', 'set', 'file:pat.txt']]) {
    const a = await runCli(args, { env, input: 'value\n' });
    assert.equal(a.code, 1, `${args.join(' ')}: ${a.stderr}`);
    assert.match(a.stderr, /file: references must be absolute/);
  }

  const missing = join(h.home, 'nope', 'pat');
  await write(`file:${missing}`);
  r = await runCli(['token', 'pat'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot read ${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(ENOENT\\)`));
  assert.match(r.stderr, new RegExp(`fix: latchkey secrets set file:${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n`));
  const dir = join(h.home, 'a-dir');
  await mkdir(dir);
  await write(`file:${dir}`);
  r = await runCli(['token', 'pat'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /a-dir is a directory, not a regular file/);
  assert.match(r.stderr, /fix: latchkey secrets set file:\/.*a-dir\n/);
  // The fix works as printed.
  await write(`file:${missing}`);
  const set = await runCli(['secrets', 'set', `file:${missing}`], { env, input: 'pat-value\n' });
  assert.equal(set.code, 0, set.stderr);
  assert.equal((await runCli(['token', 'pat'], { env })).stdout, 'pat-value\n');
});

test('an upstream that refuses connections: probe, fetch and preflight name the host and port', async (t) => {
  const port = await closedPort();
  const h = await makeHome({ version: 1, sources: { down: { token: { secret: 'env:T' }, probe: { url: `http://127.0.0.1:${port}/health` } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, T: 'tok' };
  const refused = new RegExp(`connection refused by 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`);
  const pre = await runCli(['preflight', 'down', '--json'], { env });
  assert.equal(pre.code, 3, pre.stderr);
  const [res] = JSON.parse(pre.stdout).results as Array<{ message: string; fix: string }>;
  assert.match(res!.message, refused);
  assert.equal(res!.fix, 'latchkey preflight down --live', 'a command, not prose');
  const fetched = await runCli(['fetch', 'down', `http://127.0.0.1:${port}/x`], { env });
  assert.equal(fetched.code, 3);
  assert.match(fetched.stderr, refused);
});

test('health, preflight and status: the worst source first, then by name; status names the config file; no colour off a terminal', async (t) => {
  const h = await makeHome({
    version: 1,
    sources: {
      aaa: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/ok') } },
      zzz: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/ok') } },
      mmm: { token: { secret: 'env:MISSING' }, probe: { url: api.url('/ok') } },
    },
  });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, GOOD: 'g', TERM: 'xterm-256color' };
  const order = (text: string): string[] => [...text.matchAll(/^(aaa|mmm|zzz)\s/gm)].map((m) => m[1]!);
  const status = await runCli(['status'], { env });
  assert.equal(status.code, 4);
  assert.equal(status.stdout.split('\n')[0], `config: ${h.configPath}   store: ${h.storePath}`);
  assert.deepEqual(order(status.stdout), ['mmm', 'aaa', 'zzz']);
  const pre = await runCli(['preflight', 'zzz', 'mmm', 'aaa', '--live'], { env });
  assert.equal(pre.code, 4);
  assert.deepEqual(order(pre.stdout), ['mmm', 'aaa', 'zzz']);
  const health = await runCli(['health'], { env });
  assert.equal(health.code, 4);
  assert.deepEqual(order(health.stdout), ['mmm', 'aaa', 'zzz']);
  for (const out of [status.stdout, pre.stdout, health.stdout]) assert.ok(!out.includes('\x1b['), 'stdout is a pipe: no escape codes');
});
