/**
 * A newcomer's first hour, as real CLI processes against the real oidc-provider IdP: the
 * README's first OAuth example run as written (only the provider's URLs and client id point at
 * the fixture), suggestions that only name commands that can run, Ctrl-C in login, `remove`,
 * the version, and "did you mean".
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startIdp, type Idp } from '../fixtures/idp.js';
import { closedPort } from '../helpers/closed-port.js';
import { cliPath, makeHome, repoRoot, runCli, type TempHome } from '../helpers/home.js';
import { authorizeOverHttp } from './login-support.js';

let idp: Idp;
// Bounded: a hook has no timeout of its own, and a hang here would stall the whole file silently.
before(async () => {
  idp = await startIdp({ accessTokenTtl: 600 });
}, { timeout: 60_000 });
after(async () => {
  await idp.close();
});

/** A shell whose PATH has `latchkey` (the package's bin), as after `npm install -g .`, and HOME in the temp dir. */
async function shellHome(): Promise<TempHome & { env: NodeJS.ProcessEnv }> {
  const h = await makeHome();
  const bin = join(h.home, '..', 'bin');
  await mkdir(bin);
  await symlink(cliPath, join(bin, 'latchkey'));
  const env = { PATH: `${bin}:${process.env.PATH}`, HOME: join(h.home, '..'), LATCHKEY_HOME: h.home, LATCHKEY_NO_BROWSER: '1' };
  return { ...h, env };
}

interface Running {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
  /** Resolves with the first match of `re` on stderr. */
  waitStderr(re: RegExp): Promise<RegExpExecArray>;
  kill(signal: NodeJS.Signals): void;
}

/** Runs one shell command line (as a person would paste it). */
function sh(line: string, env: NodeJS.ProcessEnv, input = ''): Running {
  // Its own process group: the timeout kills the shell and whatever it started (a `latchkey`
  // left behind would hold the pipes open, and the file would never end).
  const child = spawn('/bin/sh', ['-c', line], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  const waiters: Array<{ re: RegExp; resolve: (m: RegExpExecArray) => void }> = [];
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    for (const w of [...waiters]) {
      const m = w.re.exec(stderr);
      if (m) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const timer = setTimeout(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      child.kill('SIGKILL');
    }
  }, 60_000);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    }),
  );
  child.stdin.end(input);
  return {
    done,
    waitStderr: (re) =>
      new Promise((resolve, reject) => {
        const m = re.exec(stderr);
        if (m) return resolve(m);
        waiters.push({ re, resolve });
        void done.then(() => reject(new Error(`exited before stderr matched ${re}: ${stderr}`)));
      }),
    kill: (signal) => child.kill(signal),
  };
}

/** The README's "A first source, end to end" block: one entry per command (continuations joined, comments dropped). */
async function readmeFirstSource(): Promise<string[]> {
  const readme = await readFile(join(repoRoot, 'README.md'), 'utf8');
  const at = readme.indexOf('A first source, end to end:');
  assert.ok(at > 0, 'the README has its first-source example');
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at))?.[1] ?? '';
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.replace(/\s+#\s.*$/, '').trim())
    .filter((l) => l !== '');
}

test("the README's first OAuth example works as written: add says login is next, secrets set, login, token", { timeout: 90_000 }, async (t) => {
  const h = await shellHome();
  t.after(() => h.cleanup());
  const lines = await readmeFirstSource();
  const pick = (prefix: string): string => {
    const line = lines.find((l) => l.startsWith(prefix));
    assert.ok(line, `README line starting with "${prefix}" (lines: ${lines.join(' | ')})`);
    return line;
  };
  // Only the provider points at the fixture IdP: its endpoints, a client it knows, its scopes.
  const add = pick('latchkey add hubspot')
    .replace('https://api.hubapi.com/oauth/v1/token', idp.tokenEndpoint)
    .replace('https://app.hubspot.com/oauth/authorize', idp.authorizationEndpoint)
    .replace('<id>', 'basic-client')
    .replace('"oauth crm.objects.contacts.read"', '"offline_access api"');
  assert.match(add, /--scope "offline_access api"/, 'the example names its scopes');
  assert.match(add, /--authorization-endpoint /, 'the example gives login its endpoint');
  const init = await sh(pick('latchkey init'), h.env).done;
  assert.equal(init.code, 0, init.stderr);
  const added = await sh(add, h.env).done;
  assert.equal(added.code, 0, added.stderr);
  assert.match(added.stdout, /^next: latchkey login hubspot /m);
  const secret = await sh(pick('latchkey secrets set'), h.env, 'basic-secret\n').done;
  assert.equal(secret.code, 0, secret.stderr);
  assert.match(secret.stdout, /^stored file:\/.*\/\.config\/latchkey\/secrets\/hubspot-client/);

  const login = sh(pick('latchkey login hubspot'), h.env);
  const [url] = await login.waitStderr(/http:\/\/127\.0\.0\.1:\d+\/auth\?\S+/);
  const callback = await authorizeOverHttp(url);
  const page = await fetch(callback);
  await page.body?.cancel();
  const logged = await login.done;
  assert.equal(logged.code, 0, logged.stderr);
  assert.match(logged.stdout, /^logged in to "hubspot"/);
  const token = await sh(pick('latchkey token hubspot'), h.env).done;
  assert.equal(token.code, 0, token.stderr);
  const res = await fetch(idp.protectedUrl, { headers: { authorization: `Bearer ${token.stdout.trim()}` } });
  assert.equal(res.status, 200, 'the printed token works at the API');
  await res.body?.cancel();
});

test('Ctrl-C in login exits 130, says it was cancelled, prints no fix and stores nothing', { timeout: 60_000 }, async (t) => {
  const h = await shellHome();
  t.after(() => h.cleanup());
  await writeFile(h.configPath, JSON.stringify({ version: 1, sources: { idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, authorizationEndpoint: idp.authorizationEndpoint, clientId: 'public-client' } } } }));
  // exec: the signal goes to latchkey itself, as Ctrl-C at a terminal does.
  const login = sh('exec latchkey login idp', h.env);
  await login.waitStderr(/open this URL in a browser/);
  login.kill('SIGINT');
  const r = await login.done;
  assert.equal(r.code, 130, r.stderr);
  assert.match(r.stderr, /latchkey: login to "idp" cancelled; nothing was stored/);
  assert.doesNotMatch(r.stderr, /fix:/);
  await assert.rejects(readFile(h.storePath), /ENOENT/);
});

test('a source login cannot serve: add says what login needs; login, status, preflight and the keeper suggest only commands that work', { timeout: 60_000 }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  assert.equal((await runCli(['init'], { env })).code, 0);
  const add = await runCli(['add', 'api', '--token-endpoint', idp.tokenEndpoint, '--client-id', 'public-client'], { env });
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stdout, /^note: login needs --authorization-endpoint or --issuer: latchkey add api --authorization-endpoint <url>; or install a grant obtained elsewhere: latchkey import api --grant <file>$/m);
  assert.doesNotMatch(add.stdout, /next: latchkey login/);

  const login = await runCli(['login', 'api'], { env });
  assert.equal(login.code, 1, login.stderr);
  assert.match(login.stderr, /cannot log in to "api": no authorization endpoint/);
  assert.match(login.stderr, /fix: latchkey add api --authorization-endpoint <url>; or install a grant obtained elsewhere: latchkey import api --grant <file>/);
  const device = await runCli(['login', 'api', '--device'], { env });
  assert.equal(device.code, 1);
  assert.match(device.stderr, /fix: latchkey add api --device-authorization-endpoint <url>; or: latchkey import api --grant <file>/);

  const importFix = /latchkey import api --grant <file> {3}\(or, to sign in here: latchkey add api --authorization-endpoint <url>, then latchkey login api\)/;
  const status = await runCli(['status'], { env });
  assert.equal(status.code, 4);
  assert.match(status.stdout, importFix);
  const pre = await runCli(['preflight', 'api', '--json'], { env });
  assert.equal(pre.code, 4);
  assert.match(JSON.parse(pre.stdout).results[0].fix, importFix);
  const keeper = await runCli(['keeper', '--once'], { env });
  assert.equal(keeper.code, 4, keeper.stderr);
  const health = JSON.parse(await readFile(join(h.home, 'health.json'), 'utf8')) as { sources: Record<string, { fix: string }> };
  assert.match(health.sources.api!.fix, importFix, 'the keeper (and so /readyz and the dashboard) suggests import, not login');
  assert.doesNotMatch(JSON.stringify(health), /"fix":"latchkey login api"/);

  // With the endpoint (set by the very command suggested), login is the suggestion everywhere.
  const upd = await runCli(['add', 'api', '--authorization-endpoint', idp.authorizationEndpoint], { env });
  assert.equal(upd.code, 0, upd.stderr);
  assert.match(upd.stdout, /^next: latchkey login api /m);
  assert.equal(JSON.parse(await readFile(h.configPath, 'utf8')).sources.api.oauth.tokenEndpoint, idp.tokenEndpoint, 'the rest of the source is kept');
  assert.match((await runCli(['status'], { env })).stdout, /fix: latchkey login api$/m);
  assert.equal(JSON.parse((await runCli(['preflight', 'api', '--json', '--live'], { env })).stdout).results[0].fix, 'latchkey login api');
  await runCli(['keeper', '--once'], { env });
  assert.equal((JSON.parse(await readFile(join(h.home, 'health.json'), 'utf8')) as { sources: Record<string, { fix: string }> }).sources.api!.fix, 'latchkey login api');
  // A device-only source: login --device.
  const dev = await runCli(['add', 'tv', '--token-endpoint', idp.tokenEndpoint, '--device-authorization-endpoint', idp.deviceAuthorizationEndpoint, '--client-id', 'public-client'], { env });
  assert.match(dev.stdout, /^next: latchkey login tv --device /m);
  assert.match((await runCli(['status'], { env })).stdout, /fix: latchkey login tv --device$/m);
  // An endpoint flag for a source that does not exist, or a bad URL: usage errors, nothing written.
  const before = await readFile(h.configPath, 'utf8');
  const missing = await runCli(['add', 'nope', '--authorization-endpoint', idp.authorizationEndpoint], { env });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /source "nope" is not in .*config\.json; to add it, give --token-endpoint/);
  const insecure = await runCli(['add', 'api', '--revocation-endpoint', 'http://idp.example/revoke'], { env });
  assert.equal(insecure.code, 1, insecure.stderr);
  assert.match(insecure.stderr, /--revocation-endpoint/);
  assert.equal(await readFile(h.configPath, 'utf8'), before);
});

test('remove: drops the source from the config and its stored credentials; --revoke revokes at the IdP first', { timeout: 60_000 }, async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const tokenFile = join(h.home, 'pat');
  await writeFile(tokenFile, 'pat-value\n', { mode: 0o600 });
  await writeFile(
    h.configPath,
    JSON.stringify({
      version: 1,
      sources: {
        keep: { token: { secret: 'env:KEEP' } },
        pat: { token: { secret: `file:${tokenFile}` } },
        idp: { oauth: { tokenEndpoint: idp.tokenEndpoint, revocationEndpoint: idp.revocationEndpoint, clientId: 'public-client' } },
        other: { oauth: { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' } },
      },
    }),
  );
  for (const s of ['idp', 'other']) {
    const grant = await idp.mintGrant();
    assert.equal((await runCli(['import', s, '--grant', '-'], { env, input: JSON.stringify(grant) })).code, 0);
  }
  const typo = await runCli(['remove', 'idpp'], { env });
  assert.equal(typo.code, 1);
  assert.match(typo.stderr, /unknown source "idpp" in .*config\.json \(did you mean "idp"\?\)/);

  const pat = await runCli(['remove', 'pat'], { env });
  assert.equal(pat.code, 0, pat.stderr);
  assert.match(pat.stdout, new RegExp(`kept the secret behind file:${tokenFile}; to delete it: latchkey secrets rm file:${tokenFile}`));
  assert.equal(await readFile(tokenFile, 'utf8'), 'pat-value\n', 'the secret file is not touched');

  const revokedBefore = idp.stats.revocationEndpointRevokedGrants;
  const rm = await runCli(['remove', 'idp', '--revoke'], { env });
  assert.equal(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /removed source "idp" from .*config\.json and its stored credentials from .*store\.json; revoked its grant at /);
  assert.ok(idp.stats.revocationEndpointRevokedGrants > revokedBefore, 'revoked at the IdP');
  const plain = await runCli(['remove', 'other'], { env });
  assert.equal(plain.code, 0, plain.stderr);
  assert.match(plain.stdout, /note: nothing was revoked at the IdP/);

  const config = JSON.parse(await readFile(h.configPath, 'utf8')) as { sources: Record<string, unknown> };
  assert.deepEqual(Object.keys(config.sources), ['keep']);
  const store = JSON.parse(await readFile(h.storePath, 'utf8')) as { sources: Record<string, unknown> };
  assert.deepEqual(Object.keys(store.sources), [], 'no stored credentials left behind');
  const st = await runCli(['status'], { env: { ...env, KEEP: 'x' } });
  assert.equal(st.code, 0, st.stderr);
  assert.doesNotMatch(st.stdout, /\bidp\b|\bpat\b/);
});

test('remove --revoke with the IdP down: exit 3, the host and port named, nothing removed', async (t) => {
  const port = await closedPort();
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: `http://127.0.0.1:${port}/token`, revocationEndpoint: `http://127.0.0.1:${port}/revoke`, clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  assert.equal((await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ access_token: 'at-x', refresh_token: 'rt-x', expires_in: 3600 }) })).code, 0);
  const configBefore = await readFile(h.configPath, 'utf8');
  const storeBefore = await readFile(h.storePath, 'utf8');
  const r = await runCli(['remove', 'api', '--revoke'], { env });
  assert.equal(r.code, 3, r.stderr);
  assert.match(r.stderr, new RegExp(`cannot reach the IdP: connection refused by 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\)`));
  assert.equal(await readFile(h.configPath, 'utf8'), configBefore);
  assert.equal(await readFile(h.storePath, 'utf8'), storeBefore);
});

test('--version, -v and version print the package version; -V too', async () => {
  const { version } = JSON.parse(await readFile(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  for (const arg of ['--version', '-v', 'version', '-V']) {
    const r = await runCli([arg]);
    assert.equal(r.code, 0, `${arg}: ${r.stderr}`);
    assert.equal(r.stdout, `${version}\n`, arg);
  }
});

test('did you mean: a mistyped command, option or source gets the nearest name and the usage, not the parser text', async (t) => {
  const h = await makeHome({ version: 1, sources: { hubspot: { token: { secret: 'env:HS' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home };
  const cmd = await runCli(['preflite', 'hubspot'], { env });
  assert.equal(cmd.code, 1);
  assert.match(cmd.stderr, /^latchkey: unknown command "preflite" \(did you mean "preflight"\?\)\nusage: latchkey <command> \[options\]; commands: init, add/);
  const flag = await runCli(['preflight', 'hubspot', '--bugdet', '100'], { env });
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /^latchkey preflight: unknown option --bugdet \(did you mean --budget\?\)\nusage: latchkey preflight \[source\.\.\.\]/);
  assert.doesNotMatch(flag.stderr, /To specify a positional argument/, "not node's parser text");
  const value = await runCli(['add', 'x', '--token'], { env });
  assert.equal(value.code, 1);
  assert.match(value.stderr, /^latchkey add: --token needs a value\nusage: latchkey add/);
  for (const args of [['token', 'hubsopt'], ['preflight', 'hubsopt'], ['status', 'extra']]) {
    const r = await runCli(args, { env: { ...env, HS: 'x' } });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    if (args[0] !== 'status') assert.match(r.stderr, /unknown source "hubsopt" in .*config\.json \(did you mean "hubspot"\?\)/);
    else assert.match(r.stderr, /latchkey status: takes no arguments besides its options\nusage: latchkey status \[--json\]/);
  }
});
