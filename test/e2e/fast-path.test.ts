/**
 * The CLI entry's synchronous fast path (src/cli/fast-path.ts, bundled into dist/src/cli/latchkey.cjs)
 * against the full ES module route (`LATCHKEY_NO_FAST_PATH=1`): for every case both print the
 * same stdout and stderr and exit alike, and the fast path answers exactly the cases it should
 * (checked in-process with fastPathAnswer, which decides without printing). Also: what the
 * fast path loads (no ES module, no node:fs/promises, no streams, no crypto), and the
 * unbundled entry (dist/src/cli/bin.js) behaving the same.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fastPathAnswer } from '../../src/cli/fast-path.js';
import { loadConfig } from '../../src/config/load.js';
import { serialize } from '../../src/store/store-document.js';
import { Secret } from '../../src/core/secret.js';
import type { SourceRecord, StoredGrant } from '../../src/store/store.js';
import { cliPath, esmCliPath, makeHome, runCli, type CliResult, type TempHome } from '../helpers/home.js';
import { send, startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';

const HOUR = 3_600_000;
/** Nothing listens on the discard port: a refresh or probe against it fails at once (transient). */
const DEAD = 'http://127.0.0.1:9';

let api: LoopbackApi;
before(async () => {
  api = await startLoopbackApi((req, res) => (req.headers.authorization === 'Bearer good' ? send(res, 200, '{"ok":true}') : send(res, 401)));
});
after(async () => {
  await api.close();
});

const config = {
  version: 1,
  sources: {
    api: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c' } },
    due: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c' } },
    revoked: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c' } },
    nogrant: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c' } },
    skewed: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c', skewSeconds: 600 } },
    unskewed: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c' } },
    confidential: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c', clientSecret: 'env:LK_CLIENT_SECRET' } },
    confidue: { oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c', clientSecret: 'env:LK_CLIENT_SECRET' } },
    pat: { token: { secret: 'env:LK_PAT' } },
    filetok: { token: { secret: 'file:/will/be/replaced' } },
    ring: { token: { secret: 'keyring:latchkey-test/none' } },
    both: { methods: ['token', 'oauth'], token: { secret: 'env:LK_PAT' }, oauth: { tokenEndpoint: `${DEAD}/token`, clientId: 'c' } },
    sess: { session: { origin: 'https://app.example.com', cookieHeader: 'env:LK_COOKIE' } },
  },
};

function grant(g: Omit<Partial<StoredGrant>, 'accessToken' | 'refreshToken'> & { accessToken: string }): StoredGrant {
  return { obtainedAt: Date.now() - 60_000, ...g, accessToken: new Secret(g.accessToken), refreshToken: new Secret('refresh-never-printed') };
}

/** A profile: the config above (validated once, so its stamp is written), a store, a token file. */
async function profile(t: { after(fn: () => Promise<void>): void }): Promise<{ h: TempHome; env: NodeJS.ProcessEnv }> {
  const h = await makeHome();
  t.after(() => h.cleanup());
  const tokenFile = join(h.home, 'pat.txt');
  await writeFile(tokenFile, 'file-token\n', { mode: 0o600 });
  const cfg = structuredClone(config);
  cfg.sources.filetok.token.secret = `file:${tokenFile}`;
  await writeFile(h.configPath, `${JSON.stringify(cfg, null, 2)}\n`, { mode: 0o600 });
  await loadConfig(h.configPath); // validates and writes .config-validated, as any command does
  const now = Date.now();
  const records = new Map<string, SourceRecord>([
    ['api', { version: 1, grant: grant({ accessToken: 'fresh-access', expiresAt: now + HOUR }) }],
    ['due', { version: 1, grant: grant({ accessToken: 'due-access', expiresAt: now + 30_000 }) }],
    ['revoked', { version: 1, grant: grant({ accessToken: 'revoked-access', expiresAt: now + HOUR, revoked: { at: now - 1000, reason: 'invalid_grant' } }) }],
    // 5 min left of 15: fresh with the default skew (2 min), due with skewSeconds 600 (capped at a third: 5 min).
    ['skewed', { version: 1, grant: grant({ accessToken: 'skewed-access', obtainedAt: now - 10 * 60_000, expiresAt: now + 5 * 60_000 - 1000 }) }],
    ['unskewed', { version: 1, grant: grant({ accessToken: 'unskewed-access', obtainedAt: now - 10 * 60_000, expiresAt: now + 5 * 60_000 - 1000 }) }],
    ['confidential', { version: 1, grant: grant({ accessToken: 'confidential-access', expiresAt: now + HOUR }) }],
    ['confidue', { version: 1, grant: grant({ accessToken: 'confidue-access', expiresAt: now + 30_000 }) }],
    ['both', { version: 1, grant: grant({ accessToken: 'both-oauth-access', expiresAt: now + HOUR }) }],
  ]);
  await writeFile(h.storePath, serialize(records), { mode: 0o600 });
  return { h, env: { LATCHKEY_HOME: h.home, LK_PAT: 'static-pat', LK_CLIENT_SECRET: 'client-secret', LATCHKEY_KEYRING_TIMEOUT_MS: '3000' } };
}

/** Only what depends on the clock: the age of a keeper report, live latencies (and their column's padding) and timestamps. */
function normalize(text: string): string {
  return text
    .replace(/checked \d+ s ago/g, 'checked N s ago')
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z/g, '<time>')
    .replace(/"latencyMs": \d+/g, '"latencyMs": N')
    .replace(/\b\d+ ms\b/g, 'N ms')
    // A live latency's digit count changes its column's width (the padding after it).
    .replace(/N ms {2,}/g, 'N ms  ');
}

interface Case {
  args: string[];
  /** Whether the fast path answers (checked in-process before the runs). */
  fast: boolean;
  env?: NodeJS.ProcessEnv;
  /** Exit code both routes must give. */
  code: number;
}

/** Runs `args` through the bin (fast path on) and the full route; both must agree. */
async function agree(env: NodeJS.ProcessEnv, c: Case): Promise<{ fast: CliResult; full: CliResult }> {
  const e = { ...env, ...c.env };
  const label = `latchkey ${c.args.join(' ')}`;
  assert.equal(fastPathAnswer(c.args, { PATH: process.env.PATH, HOME: process.env.HOME, ...e }) !== undefined, c.fast, `${label}: the fast path ${c.fast ? 'answers' : 'declines'}`);
  const fast = await runCli(c.args, { env: e });
  const full = await runCli(c.args, { env: { ...e, LATCHKEY_NO_FAST_PATH: '1' } });
  assert.equal(fast.code, c.code, `${label}: exit code (stderr: ${fast.stderr})`);
  assert.equal(full.code, fast.code, `${label}: same exit code`);
  assert.equal(normalize(fast.stderr), normalize(full.stderr), `${label}: same stderr`);
  assert.equal(normalize(fast.stdout), normalize(full.stdout), `${label}: same stdout`);
  assert.ok(!fast.stdout.includes('refresh-never-printed') && !fast.stderr.includes('refresh-never-printed'));
  return { fast, full };
}

test('token: the fast path answers fresh grants and static env:/file: tokens, byte for byte as the full route', async (t) => {
  const { env } = await profile(t);
  for (const [args, printed] of [
    [['token', 'api'], 'fresh-access\n'],
    [['token', 'unskewed'], 'unskewed-access\n'],
    [['token', 'confidential'], 'confidential-access\n'],
    [['token', 'pat'], 'static-pat\n'],
    [['token', 'filetok'], 'file-token\n'],
    [['token', 'both'], 'static-pat\n'],
  ] as const) {
    const { fast } = await agree(env, { args: [...args], fast: true, code: 0 });
    assert.equal(fast.stdout, printed);
    assert.equal(fast.stderr, '');
  }
});

test('token: everything else is left to the full route, which gives the same answer or error', async (t) => {
  const { h, env } = await profile(t);
  const cases: Case[] = [
    // A due grant: the full route refreshes (here the IdP is down: fail open, exit 0).
    { args: ['token', 'due'], fast: false, code: 0 },
    { args: ['token', 'skewed'], fast: false, code: 0 },
    { args: ['token', 'revoked'], fast: false, code: 4 },
    { args: ['token', 'nogrant'], fast: false, code: 4 },
    { args: ['token', 'pat'], env: { LK_PAT: '' }, fast: false, code: 4 },
    { args: ['token', 'pat'], env: { LK_PAT: undefined }, fast: false, code: 4 },
    // The client secret is needed for a refresh only: a fresh grant is served without it, a due one is not refreshed.
    { args: ['token', 'confidential'], env: { LK_CLIENT_SECRET: undefined }, fast: true, code: 0 },
    { args: ['token', 'confidue'], env: { LK_CLIENT_SECRET: undefined }, fast: false, code: 1 },
    { args: ['token', 'ring'], fast: false, code: 4 },
    { args: ['token', 'sess'], fast: false, code: 1 },
    { args: ['token', 'nope'], fast: false, code: 1 },
    { args: ['token'], fast: false, code: 1 },
    { args: ['token', 'api', 'pat'], fast: false, code: 1 },
    { args: ['token', '--help'], fast: false, code: 0 },
    { args: ['token', '-x'], fast: false, code: 1 },
    { args: ['token', 'api'], env: { LATCHKEY_HOME: join(h.home, 'missing') }, fast: false, code: 1 },
  ];
  for (const c of cases) await agree(env, c);
  const due = await runCli(['token', 'due'], { env });
  assert.equal(due.stdout, 'due-access\n', 'fail open with the current token');

  // A token file that went away.
  const cfg = JSON.parse(await readFile(h.configPath, 'utf8'));
  await writeFile(cfg.sources.filetok.token.secret.slice(5), '');
  await agree(env, { args: ['token', 'filetok'], fast: false, code: 4 });
});

test('token: a config changed since its validation goes through the validator; an invalid one fails alike', async (t) => {
  const { h, env } = await profile(t);
  const text = await readFile(h.configPath, 'utf8');
  await writeFile(h.configPath, `${text}\n`);
  const { fast } = await agree(env, { args: ['token', 'api'], fast: false, code: 0 });
  assert.equal(fast.stdout, 'fresh-access\n');
  // The full route stamped the new text: the fast path answers again.
  assert.notEqual(fastPathAnswer(['token', 'api'], env), undefined);

  await writeFile(h.configPath, text.replace('"clientId": "c"', '"clientId": "c", "typo": 1'));
  const bad = await agree(env, { args: ['token', 'api'], fast: false, code: 1 });
  assert.match(bad.fast.stderr, /typo/);
  await writeFile(h.configPath, text);
  await writeFile(join(h.home, '.config-validated'), 'v0\nsomething else');
  await agree(env, { args: ['token', 'api'], fast: false, code: 0 });
});

test('token: a corrupt store, or one open to other users, is reported by the full route', async (t) => {
  const { h, env } = await profile(t);
  const store = await readFile(h.storePath, 'utf8');
  await writeFile(h.storePath, store.slice(0, 40));
  const corrupt = await agree(env, { args: ['token', 'api'], fast: false, code: 1 });
  assert.match(corrupt.fast.stderr, /is corrupt/);
  await writeFile(h.storePath, store);

  await chmod(h.home, 0o755);
  const dir = await agree(env, { args: ['token', 'api'], fast: false, code: 1 });
  assert.match(dir.fast.stderr, /accessible to other users.*chmod 700/);
  // A static token does not read the store: both routes answer.
  await agree(env, { args: ['token', 'pat'], fast: true, code: 0 });
  await chmod(h.home, 0o700);

  await chmod(h.storePath, 0o644);
  const file = await agree(env, { args: ['token', 'api'], fast: false, code: 1 });
  assert.match(file.fast.stderr, /readable by other users.*chmod 600/);
  await chmod(h.storePath, 0o600);
  await agree(env, { args: ['token', 'api'], fast: true, code: 0 });
});

function healthEntry(status: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { status, authPath: 'token', operatorAction: null, fix: null, message: `${status} | fine`, expiresAt: null, lastOkAt: null, consecutiveFailures: 0, latencyMs: 12, history: [], ...extra };
}

test('preflight: answered from a fresh healthy keeper report (table and --json), else by the full route', async (t) => {
  const h = await makeHome({
    version: 1,
    sources: {
      a: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/a') } },
      b: { token: { secret: 'env:GOOD' }, probe: { url: api.url('/b') } },
      down: { token: { secret: 'env:GOOD' }, probe: { url: `${DEAD}/down`, timeoutMs: 1000 } },
    },
  });
  t.after(() => h.cleanup());
  await loadConfig(h.configPath); // validates and writes .config-validated, as any command does
  const env = { LATCHKEY_HOME: h.home, GOOD: 'good' };
  api.requests.length = 0;
  const health = join(h.home, 'health.json');
  const report = (generatedAt: number, sources: Record<string, unknown>, intervalSeconds = 300): Promise<void> =>
    writeFile(health, JSON.stringify({ generatedAt: new Date(generatedAt).toISOString(), intervalSeconds, sources }));
  const checkedAt = new Date(Date.now() - 10_000).toISOString();
  await report(Date.now() - 10_000, {
    a: healthEntry('ok', { checkedAt }),
    b: healthEntry('expiring', { checkedAt, message: 'expires\u0007 soon', fix: 'x' }),
    down: healthEntry('unreachable', { operatorAction: 'check_network' }),
  });

  const table = await agree(env, { args: ['preflight', 'a', 'b'], fast: true, code: 0 });
  assert.match(table.fast.stdout, /^a\s+ok\s+token\s+12 ms\s+ok \| fine$/m);
  assert.match(table.fast.stdout, /from the keeper's report, checked \d+ s ago/);
  const json = await agree(env, { args: ['preflight', 'b', '--json', 'a', 'a'], fast: true, code: 0 });
  assert.equal(json.fast.stdout, json.full.stdout, 'JSON byte for byte');
  assert.deepEqual(
    JSON.parse(json.fast.stdout).results.map((r: { source: string }) => r.source),
    ['b', 'a', 'a'],
  );
  assert.equal(api.requests.length, 0, 'no probe');

  // Not all healthy, unknown to the report, or asked to probe: the full route (live probes).
  await agree(env, { args: ['preflight', 'a', 'down', '--json'], fast: false, code: 3 });
  await agree(env, { args: ['preflight', 'a', 'nope'], fast: false, code: 1 });
  await agree(env, { args: ['preflight', 'a', '--live'], fast: false, code: 0 });
  await agree(env, { args: ['preflight', 'a', '--budget', '2000'], fast: false, code: 0 });
  await agree(env, { args: ['preflight', 'a', '--budget', 'x'], fast: false, code: 1 });
  await agree(env, { args: ['preflight', '--help'], fast: false, code: 0 });
  await agree(env, { args: ['preflight', 'a', '--', 'b'], fast: false, code: 0 });
  assert.ok(api.requests.length > 0, 'the full route probed');

  // A stale report (older than two intervals), one from the future, a corrupt one, none.
  await report(Date.now() - 700_000, { a: healthEntry('ok'), b: healthEntry('ok') });
  await agree(env, { args: ['preflight', 'a', 'b', '--json'], fast: false, code: 0 });
  await report(Date.now() - 700_000, { a: healthEntry('ok'), b: healthEntry('ok') }, 600);
  await agree(env, { args: ['preflight', 'a', 'b', '--json'], fast: true, code: 0 });
  await report(Date.now() + 120_000, { a: healthEntry('ok'), b: healthEntry('ok') });
  await agree(env, { args: ['preflight', 'a', 'b'], fast: false, code: 0 });
  await writeFile(health, '{"generatedAt":');
  await agree(env, { args: ['preflight', 'a'], fast: false, code: 0 });
  await writeFile(health, '');
  await agree(env, { args: ['preflight', 'a'], fast: false, code: 0 });
});

test('LATCHKEY_NO_FAST_PATH turns the fast path off', async (t) => {
  const { env } = await profile(t);
  assert.notEqual(fastPathAnswer(['token', 'api'], env), undefined);
  assert.equal(fastPathAnswer(['token', 'api'], { ...env, LATCHKEY_NO_FAST_PATH: '1' }), undefined);
});

/** Runs node `argv` with a --require hook that records, at exit, the builtins and CommonJS files loaded. */
function loadTrace(argv: string[], env: NodeJS.ProcessEnv, traceFile: string, hookFile: string): Promise<{ code: number | null; stdout: string; builtins: string[]; cjs: string[] }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', hookFile, ...argv], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env, LK_TRACE: traceFile },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      readFile(traceFile, 'utf8').then((text) => resolve({ code, stdout, ...(JSON.parse(text) as { builtins: string[]; cjs: string[] }) }), reject);
    });
  });
}

test('the fast path loads no ES module, no node:fs/promises, no streams, no crypto (so no valibot, oauth4webapi, playwright)', async (t) => {
  const { h, env } = await profile(t);
  // Sources of the config (the fast path answers only for a validated config that names them).
  const entry = { api: healthEntry('ok'), pat: healthEntry('ok') };
  await writeFile(join(h.home, 'health.json'), JSON.stringify({ generatedAt: new Date().toISOString(), intervalSeconds: 300, sources: entry }));
  const hookFile = join(h.home, 'trace-hook.cjs');
  const traceFile = join(h.home, 'trace.json');
  await writeFile(
    hookFile,
    `const { writeFileSync } = require('node:fs');
process.on('exit', () => writeFileSync(process.env.LK_TRACE, JSON.stringify({ builtins: process.moduleLoadList, cjs: Object.keys(require.cache) })));
`,
  );
  // What node itself loads, and what the ES module route loads: the trace sees it.
  const bare = new Set((await loadTrace(['-e', '0'], env, traceFile, hookFile)).builtins);
  const full = await loadTrace([cliPath, 'token', 'api'], { ...env, LATCHKEY_NO_FAST_PATH: '1' }, traceFile, hookFile);
  assert.equal(full.stdout, 'fresh-access\n');
  for (const m of ['NativeModule fs/promises', 'NativeModule internal/modules/esm/module_job']) assert.ok(full.builtins.includes(m), `the trace works: the full route loads ${m}`);

  const heavy = /^NativeModule (fs\/promises|internal\/fs\/promises|stream|internal\/streams\/.*|crypto|internal\/crypto\/.*|internal\/modules\/esm\/module_job|net|readline)$/;
  for (const [args, printed] of [
    [['token', 'api'], /^fresh-access\n$/],
    [['token', 'pat'], /^static-pat\n$/],
    [['preflight', 'api', 'pat', '--json'], /"from": "keeper"/],
  ] as const) {
    const r = await loadTrace([cliPath, ...args], env, traceFile, hookFile);
    assert.equal(r.code, 0);
    assert.match(r.stdout, printed);
    const added = r.builtins.filter((m) => !bare.has(m));
    assert.deepEqual(added.filter((m) => heavy.test(m)), [], `${args.join(' ')}: no heavy builtin, no ES module linked (loaded beyond \`node -e 0\`: ${added.join(', ')})`);
    assert.deepEqual(r.cjs, [hookFile, cliPath], `${args.join(' ')}: one file of ours, no package`);
  }
});

test('the unbundled entry (tsc output, dist/src/cli/bin.js) answers the same', async (t) => {
  const { h, env } = await profile(t);
  await writeFile(join(h.home, 'health.json'), JSON.stringify({ generatedAt: new Date().toISOString(), intervalSeconds: 300, sources: { a: healthEntry('ok') } }));
  for (const args of [['token', 'api'], ['token', 'pat'], ['token', 'due'], ['token', 'revoked'], ['token', 'nope'], ['preflight', 'a', '--json'], ['--version']]) {
    const bundled = await runCli(args, { env });
    const esm = await runCli(args, { env, bin: esmCliPath });
    assert.deepEqual(esm, bundled, args.join(' '));
  }
});
