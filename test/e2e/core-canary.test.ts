import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { startIdp, type Idp, type TokenResponse } from '../fixtures/idp.js';
import { makeHome, runCli, type CliResult, type TempHome } from '../helpers/home.js';
import { commandNames } from '../../src/cli/main.js';

/**
 * One sweep over every CLI command in the ways things go wrong at 2 a.m. (an IdP answering
 * garbage that quotes our tokens, a corrupt store, a dead token endpoint, a revoked grant, loose
 * permissions, a raw secret where a reference belongs), collecting every byte of stdout and
 * stderr: no access token, refresh token, client secret, PAT or cookie ever appears, except
 * the one token `latchkey token` was asked to print.
 */

const PAT = 'canary-pat-7c41d9-value';
const COOKIE = 'canary-cookie-0b6e2f-value';
const CLIENT_SECRET = 'basic-secret'; // the fixture IdP's secret for basic-client

let idp: Idp;
before(async () => {
  idp = await startIdp({ accessTokenTtl: 60 });
});
after(async () => {
  await idp.close();
});

interface Profile {
  h: TempHome;
  env: NodeJS.ProcessEnv;
  grant: TokenResponse;
}

async function profile(t: { after(fn: () => Promise<void>): void }, tokenEndpoint = idp.tokenEndpoint): Promise<Profile> {
  const h = await makeHome({
    version: 1,
    sources: {
      api: { oauth: { tokenEndpoint, clientId: 'basic-client', clientSecret: 'env:CS', clientAuth: 'client_secret_basic' }, probe: { url: idp.protectedUrl } },
      pat: { token: { secret: 'env:PAT' }, probe: { url: idp.protectedUrl } },
      sess: { session: { origin: 'http://127.0.0.1:9', cookieHeader: 'env:COOKIE' } },
    },
  });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, PAT, CS: CLIENT_SECRET, COOKIE: `sid=${COOKIE}` };
  const grant = await idp.mintGrant({ clientId: 'basic-client' });
  // Due for refresh a few hundred ms from now.
  const imp = await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ ...grant, expires_in: 1 }) });
  assert.equal(imp.code, 0, imp.stderr);
  await new Promise((r) => setTimeout(r, 600));
  return { h, env, grant };
}

/** Every command, as an operator would run it against this profile. */
function sweep(p: Profile): Array<{ args: string[]; input?: string; prints?: string }> {
  const { grant } = p;
  return [
    { args: ['token', 'api'], prints: grant.access_token },
    { args: ['token', 'pat'], prints: PAT },
    { args: ['token', 'sess'] },
    { args: ['status'] },
    { args: ['status', '--json'] },
    { args: ['preflight'] },
    { args: ['preflight', 'api', 'pat', 'sess', '--json', '--live', '--budget', '3000'] },
    { args: ['fetch', 'api', idp.protectedUrl] },
    { args: ['fetch', 'pat', idp.protectedUrl] },
    { args: ['fetch', 'sess', 'http://127.0.0.1:9/x', '--timeout', '1000'] },
    { args: ['exec', 'api,pat', '--', process.execPath, '-e', 'process.exit(3)'] },
    { args: ['health'] },
    { args: ['health', '--json'] },
    { args: ['keeper', '--once', '--port', '0'] },
    { args: ['secrets', 'get', 'env:PAT'] },
    { args: ['import', 'api', '--grant', '-'], input: `{"access_token": "${grant.access_token}", "refresh_token": ${grant.refresh_token}` },
    { args: ['import', 'api', '--grant', '-'], input: JSON.stringify({ access_token: grant.access_token, expires_in: grant.refresh_token }) },
    { args: ['add', 'raw', '--token', PAT] },
    { args: ['add', 'raw', '--client-id', 'c', '--token-endpoint', idp.tokenEndpoint, '--client-secret', CLIENT_SECRET] },
    { args: ['logout', 'api'] },
  ];
}

/** Every 10-character piece of a secret: a parser quoting "…a piece of it…" leaks too. */
function pieces(secret: string): string[] {
  const out: string[] = [];
  for (let i = 0; i + 10 <= secret.length; i++) out.push(secret.slice(i, i + 10));
  return out;
}

function assertClean(p: Profile, args: string[], r: CliResult, prints?: string): void {
  const canaries = [p.grant.access_token, p.grant.refresh_token, CLIENT_SECRET, PAT, COOKIE];
  for (const c of canaries) {
    const stdout = prints === c ? r.stdout.replace(`${c}\n`, '') : r.stdout;
    for (const piece of pieces(c)) {
      assert.ok(!stdout.includes(piece), `latchkey ${args.join(' ')}: (part of) a secret on stdout:\n${r.stdout}`);
      assert.ok(!r.stderr.includes(piece), `latchkey ${args.join(' ')}: (part of) a secret on stderr:\n${r.stderr}`);
    }
  }
  if (prints !== undefined && r.code === 0) assert.equal(r.stdout, `${prints}\n`, `latchkey ${args.join(' ')} prints only the token`);
}

async function run(p: Profile, label: string): Promise<void> {
  for (const c of sweep(p)) {
    const r = await runCli(c.args, { env: p.env, input: c.input, timeoutMs: 20_000 });
    assert.notEqual(r.code, null, `${label}: latchkey ${c.args.join(' ')} did not finish`);
    assertClean(p, c.args, r, c.prints);
  }
}

test('canary sweep: every command --help, and an unknown command', async () => {
  for (const name of commandNames()) {
    const r = await runCli([name, '--help']);
    assert.equal(r.code, 0, `${name} --help: ${r.stderr}`);
    assert.match(r.stdout, /^.+\n\nUsage: latchkey /, `${name} --help`);
    assert.equal(r.stderr, '');
  }
  const r = await runCli(['no-such-command']);
  assert.equal(r.code, 1);
});

test('canary sweep: the IdP answers 500 and 400s whose bodies quote our tokens and client secret', async (t) => {
  // Profiles first: the fault applies to every token request, the mint's included.
  const [p, q, r] = [await profile(t), await profile(t), await profile(t)];
  t.after(() => idp.setFault(null));
  idp.setFault({ kind: 'json', status: 500, body: { error: 'server_error', error_description: `${p.grant.refresh_token} ${CLIENT_SECRET} ${p.grant.access_token}` } });
  await run(p, '500');
  idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_client', error_description: `client ${CLIENT_SECRET} refresh ${q.grant.refresh_token}` } });
  await run(q, 'invalid_client');
  idp.setFault({ kind: 'json', status: 400, body: { error: 'invalid_grant', error_description: `refresh token ${r.grant.refresh_token} was revoked` } });
  await run(r, 'invalid_grant');
});

test('canary sweep: a corrupt store full of tokens, then one open to other users', async (t) => {
  const p = await profile(t);
  const store = await readFile(p.h.storePath, 'utf8');
  // Broken right after a token: the JSON parser would quote the text around it.
  await writeFile(p.h.storePath, store.replace(`"${p.grant.refresh_token}"`, `${p.grant.refresh_token}`), { mode: 0o600 });
  await run(p, 'corrupt');
  await writeFile(p.h.storePath, store, { mode: 0o600 });
  await chmod(p.h.storePath, 0o644);
  await run(p, 'loose permissions');
});

test('canary sweep: a dead token endpoint', async (t) => {
  const p = await profile(t, 'http://127.0.0.1:9/token');
  await run(p, 'dead endpoint');
});

test('canary sweep: a raw secret pasted into the config', async (t) => {
  const p = await profile(t);
  const cfg = JSON.parse(await readFile(p.h.configPath, 'utf8')) as { sources: { pat: { token: { secret: string } } } };
  cfg.sources.pat.token.secret = PAT;
  await writeFile(p.h.configPath, JSON.stringify(cfg), { mode: 0o600 });
  await run(p, 'raw secret in config');
  await writeFile(p.h.configPath, JSON.stringify(cfg).replace(`"${PAT}"`, PAT), { mode: 0o600 });
  await run(p, 'raw secret in broken config');
});
