import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { makeHome, runCli, type TempHome } from '../helpers/home.js';

const CANARY = 'canary-9d2f-never-print-me';

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp.close();
});

async function initHome(): Promise<TempHome> {
  const h = await makeHome();
  const r = await runCli(['init'], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(r.code, 0, r.stderr);
  return h;
}

test('init creates a private profile; a second init leaves it unchanged', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const home = join(h.home, 'nested');
  const r = await runCli(['init'], { env: { LATCHKEY_HOME: home } });
  assert.equal(r.code, 0);
  assert.match(r.stdout, /created .*config\.json/);
  await writeFile(join(home, 'config.json'), '{"version":1,"sources":{"x":{"token":{"secret":"env:X"}}}}');
  const again = await runCli(['init'], { env: { LATCHKEY_HOME: home } });
  assert.equal(again.code, 0);
  assert.match(again.stdout, /left unchanged/);
  assert.match(await readFile(join(home, 'config.json'), 'utf8'), /"x"/);
});

test('every command has --help', async () => {
  for (const cmd of ['init', 'add', 'import', 'token', 'exec', 'status']) {
    const r = await runCli([cmd, '--help']);
    assert.equal(r.code, 0, `${cmd}: ${r.stderr}`);
    assert.match(r.stdout, /Usage: latchkey/);
  }
  const top = await runCli(['--help']);
  assert.equal(top.code, 0);
  assert.match(top.stdout, /Exit codes/);
});

test('add + import + token + exec + status with a real grant; the token is printed only by `token`', async (t) => {
  const h = await initHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const add = await runCli(['add', 'my-api', '--token-endpoint', idp.tokenEndpoint, '--client-id', 'public-client'], { env });
  assert.equal(add.code, 0, add.stderr);
  const grant = await idp.mintGrant();
  const imp = await runCli(['import', 'my-api', '--grant', '-'], { env, input: JSON.stringify(grant) });
  assert.equal(imp.code, 0, imp.stderr);
  assert.ok(!imp.stdout.includes(grant.access_token) && !imp.stdout.includes(grant.refresh_token));
  const tok = await runCli(['token', 'my-api'], { env });
  assert.equal(tok.code, 0, tok.stderr);
  assert.equal(tok.stdout, `${grant.access_token}\n`, 'only the token and a newline');
  assert.equal(tok.stderr, '');
  // `--` before the token: an opaque token may start with "-" and must not be read as a node option.
  const ex = await runCli(['exec', 'my-api', '--', process.execPath, '-e', 'process.stdout.write(String(process.env.LATCHKEY_MY_API_TOKEN === process.argv[1]))', '--', grant.access_token], { env });
  assert.equal(ex.code, 0, ex.stderr);
  assert.equal(ex.stdout, 'true');
  const code = await runCli(['exec', 'my-api', '--', process.execPath, '-e', 'process.exit(7)'], { env });
  assert.equal(code.code, 7, 'exec passes the child exit code through');
  const st = await runCli(['status', '--json'], { env });
  assert.equal(st.code, 0, st.stderr);
  const parsed = JSON.parse(st.stdout) as { sources: Array<{ source: string; state: string; authPath: string }> };
  assert.equal(parsed.sources[0]?.source, 'my-api');
  assert.equal(parsed.sources[0]?.state, 'ok');
  for (const out of [st.stdout, st.stderr, add.stdout, imp.stdout]) {
    assert.ok(!out.includes(grant.refresh_token) && !out.includes(grant.access_token));
  }
});

test('static tokens: add --token <ref>, token prints it; a raw secret on the command line is refused and not stored', async (t) => {
  const h = await initHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, MY_PAT: CANARY };
  assert.equal((await runCli(['add', 'gh', '--token', 'env:MY_PAT'], { env })).code, 0);
  const tok = await runCli(['token', 'gh'], { env });
  assert.equal(tok.stdout, `${CANARY}\n`);
  const raw = await runCli(['add', 'gl', '--token', CANARY], { env });
  assert.equal(raw.code, 1);
  assert.ok(!raw.stderr.includes(CANARY));
  assert.ok(!(await readFile(join(h.home, 'config.json'), 'utf8')).includes(CANARY));
  const missing = await runCli(['token', 'gh'], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(missing.code, 4);
  assert.match(missing.stderr, /env:MY_PAT: environment variable MY_PAT is not set/);
  const st = await runCli(['status'], { env });
  assert.ok(!st.stdout.includes(CANARY) && !st.stderr.includes(CANARY));
});

test('bad input: unknown source, missing config, malformed grant files, corrupt store — clear message, exit code, nothing lost', async (t) => {
  const h = await initHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  await runCli(['add', 'api', '--token-endpoint', idp.tokenEndpoint, '--client-id', 'public-client'], { env });
  const grant = await idp.mintGrant();
  assert.equal((await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify(grant) })).code, 0);
  const storeBefore = await readFile(h.storePath);

  const unknown = await runCli(['token', 'nope'], { env });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown source "nope".*known: api/);

  const noConfig = await runCli(['token', 'api'], { env: { LATCHKEY_HOME: join(h.home, 'missing') } });
  assert.equal(noConfig.code, 1);
  assert.match(noConfig.stderr, /no config at .*missing\/config\.json.*latchkey init/);

  for (const [input, pattern] of [
    ['{not json', /not valid JSON; nothing was stored/],
    [JSON.stringify({ refresh_token: 'x' }), /"access_token" is missing/],
    [JSON.stringify({ access_token: 'a', expires_in: 'soon' }), /"expires_in" must be a positive number/],
    [JSON.stringify([1, 2]), /expected a JSON object/],
  ] as const) {
    const r = await runCli(['import', 'api', '--grant', '-'], { env, input });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, pattern);
    assert.deepEqual(await readFile(h.storePath), storeBefore, 'store untouched');
  }
  const noFile = await runCli(['import', 'api', '--grant', join(h.home, 'nope.json')], { env });
  assert.equal(noFile.code, 1);
  assert.match(noFile.stderr, /cannot read the grant file .*nope\.json: ENOENT/);

  await writeFile(h.storePath, '{"format":"latchkey-store","formatVersion":1,"sources":{"api":', { mode: 0o600 });
  const corrupt = await readFile(h.storePath);
  for (const args of [['token', 'api'], ['status'], ['import', 'api', '--grant', '-']]) {
    const r = await runCli(args, { env, input: JSON.stringify(grant) });
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`store ${h.storePath.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt`));
    assert.deepEqual(await readFile(h.storePath), corrupt, `${args[0]} left the corrupt store byte-for-byte untouched`);
    assert.ok(!r.stderr.includes(grant.refresh_token));
  }
});

test('a profile directory open to other users is refused with the fix', async (t) => {
  const h = await initHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, T: 'x' };
  await runCli(['add', 'a', '--token', 'env:T'], { env });
  await runCli(['add', 'b', '--token-endpoint', idp.tokenEndpoint, '--client-id', 'public-client'], { env });
  await chmod(h.home, 0o777);
  const r = await runCli(['import', 'b', '--grant', '-'], { env, input: JSON.stringify({ access_token: 'a' }) });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /accessible to other users.*chmod 700/);
});

test('a revoked grant: token exits 4 with the exact command', async (t) => {
  const h = await initHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  await runCli(['add', 'api', '--token-endpoint', idp.tokenEndpoint, '--client-id', 'public-client'], { env });
  const grant = await idp.mintGrant();
  await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ ...grant, expires_in: 1 }) });
  await idp.revokeGrantOf(grant.refresh_token);
  await new Promise((r) => setTimeout(r, 700)); // let the 1 s access token come due
  const r = await runCli(['token', 'api'], { env });
  assert.equal(r.code, 4, r.stderr);
  assert.match(r.stderr, /revoked/);
  // No authorization endpoint and no issuer: `latchkey login api` cannot run, so it is not the fix.
  assert.match(r.stderr, /fix: latchkey import api --grant <file> {3}\(or, to sign in here: latchkey add api --authorization-endpoint <url>, then latchkey login api\)/);
  assert.doesNotMatch(r.stderr, /fix: latchkey login api/);
  const st = await runCli(['status'], { env });
  assert.equal(st.code, 4);
  assert.match(st.stdout, /revoked.*fix: latchkey import api --grant <file>/);
  // The suggested command works as printed, and then login is the fix.
  const upd = await runCli(['add', 'api', '--authorization-endpoint', idp.authorizationEndpoint], { env });
  assert.equal(upd.code, 0, upd.stderr);
  assert.match(upd.stdout, /updated source "api" in .*config\.json: oauth\.authorizationEndpoint\nnext: latchkey login api/);
  const again = await runCli(['token', 'api'], { env });
  assert.equal(again.code, 4, again.stderr);
  assert.match(again.stderr, /fix: latchkey login api\n/);
  const st2 = await runCli(['status'], { env });
  assert.match(st2.stdout, /revoked.*fix: latchkey login api$/m);
});

test('discovery: add --issuer fills the endpoints from the IdP metadata', async (t) => {
  const h = await initHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const r = await runCli(['add', 'oidc', '--issuer', idp.issuer, '--client-id', 'public-client', '--scope', 'openid offline_access'], { env });
  assert.equal(r.code, 0, r.stderr);
  const cfg = JSON.parse(await readFile(h.configPath, 'utf8')) as { sources: Record<string, { oauth: Record<string, string> }> };
  assert.equal(cfg.sources.oidc?.oauth.tokenEndpoint, idp.tokenEndpoint);
  assert.equal(cfg.sources.oidc?.oauth.issuer, idp.issuer);
  const bad = await runCli(['add', 'x', '--issuer', 'http://127.0.0.1:9/', '--client-id', 'c'], { env });
  assert.equal(bad.code, 3);
  assert.match(bad.stderr, /discovery failed for issuer/);
});
