/**
 * `latchkey rotate-key` on the real PostgreSQL server, against the real IdP: every row re-wrapped
 * under the new master key while two processes keep taking tokens (rotating grants, TTL 2 s) and
 * calling the protected API, with no failed call and no grant revoked; afterwards the new key
 * alone opens everything and the old one alone is refused clearly. A value that does not
 * authenticate is reported by row and left as it is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Secret } from '../../src/core/secret.js';
import { LatchkeyError } from '../../src/core/errors.js';
import { openLatchkey } from '../../src/latchkey.js';
import { parseMasterKey } from '../../src/store/pg/envelope.js';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { startIdp } from '../fixtures/idp.js';
import { freshPgSchema, pgExec, pgSkipReason, TEST_MASTER_KEY, TEST_MASTER_KEY_TEXT } from '../fixtures/pg.js';
import { makeHome, repoRoot, runCli } from '../helpers/home.js';

const skip = pgSkipReason();
const NEW_KEY_TEXT = Buffer.alloc(32, 9).toString('base64');
const NEW_KEY = parseMasterKey(new Secret(NEW_KEY_TEXT), 'the new test key');
const SOURCES = ['a', 'b', 'c'];

interface ChildResult {
  ok: number;
  unauthorized: number;
  errors: number;
  messages: string[];
}

function runLoad(env: NodeJS.ProcessEnv, args: string[]): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [join(repoRoot, 'dist/test/helpers/pg-load-child.js'), ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) reject(new Error(`load child exited ${code}`));
      else resolve(JSON.parse(out) as ChildResult);
    });
  });
}

test('rotate-key re-wraps every row online (the documented steps): no failed call under load, then the new key alone opens everything', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const idp = await startIdp({ accessTokenTtl: 2 });
  t.after(() => idp.close());
  const oauth = { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' };
  const h = await makeHome({ version: 1, sources: Object.fromEntries(SOURCES.map((s) => [s, { oauth }])) });
  t.after(() => h.cleanup());

  // Everything sealed under the old key first.
  const old = new PgStore({ url: db.url, masterKey: TEST_MASTER_KEY });
  const lk = await openLatchkey({ home: h.home, env: {}, store: old });
  for (const s of SOURCES) await lk.installGrant(s, await idp.mintGrant());
  await old.put('sessions', 'session-1', new Secret('session-value'), 600_000);
  await lk.close();
  idp.stats.reset();

  const base = { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_STORE: db.url };
  const rotator = { ...base, LATCHKEY_MASTER_KEY: NEW_KEY_TEXT, LATCHKEY_MASTER_KEY_OTHER: TEST_MASTER_KEY_TEXT };
  const results: ChildResult[] = [];
  // Step 1: the processes open both keys, still sealing with the old one; step 2 runs under them.
  const step1 = { ...base, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT, LATCHKEY_MASTER_KEY_OTHER: NEW_KEY_TEXT };
  let loads = [0, 1].map(() => runLoad(step1, [h.home, idp.protectedUrl, SOURCES.join(','), '8', '5000']));
  await new Promise((r) => setTimeout(r, 2_000));
  const rotated = await runCli(['rotate-key', '--json'], { env: rotator, timeoutMs: 60_000 });
  assert.equal(rotated.code, 0, rotated.stderr);
  const report = JSON.parse(rotated.stdout) as { keyId: string; rewrapped: number; retired: string[]; activeOthers: string[] };
  assert.equal(report.keyId, NEW_KEY.id);
  assert.ok(report.rewrapped >= 1, 'rows were re-wrapped');
  assert.deepEqual(report.activeOthers, [TEST_MASTER_KEY.id], 'the old key stays active until retired');
  assert.ok(!rotated.stdout.includes(NEW_KEY_TEXT) && !rotated.stderr.includes(NEW_KEY_TEXT), 'no key printed');
  results.push(...(await Promise.all(loads)));

  // Step 3: the processes seal with the new key; step 4 (re-wrap the rest, retire the old key) under them.
  loads = [0, 1].map(() => runLoad(rotator, [h.home, idp.protectedUrl, SOURCES.join(','), '8', '5000']));
  await new Promise((r) => setTimeout(r, 2_000));
  const retired = await runCli(['rotate-key', '--retire', '--json'], { env: rotator, timeoutMs: 60_000 });
  assert.equal(retired.code, 0, retired.stderr);
  const final = JSON.parse(retired.stdout) as { remaining: number; retired: string[]; activeOthers: string[] };
  assert.equal(final.remaining, 0);
  assert.deepEqual(final.retired, [TEST_MASTER_KEY.id]);
  assert.deepEqual(final.activeOthers, []);
  results.push(...(await Promise.all(loads)));

  const total = results.reduce((a, r) => ({ ok: a.ok + r.ok, unauthorized: a.unauthorized + r.unauthorized, errors: a.errors + r.errors }), { ok: 0, unauthorized: 0, errors: 0 });
  assert.equal(total.errors, 0, `errors: ${results.flatMap((r) => r.messages).join('; ')}`);
  assert.equal(total.unauthorized, 0, 'every protected call authorized');
  assert.ok(total.ok > 50, `made ${total.ok} calls`);
  assert.ok(idp.stats.refreshSuccesses >= SOURCES.length, 'grants rotated during the run');
  assert.equal(idp.stats.revokedGrants, 0);

  // Every row under the new key; the new key alone opens everything; the old key alone is refused.
  const keyIds = await pgExec<{ key_id: string | null }>(`SELECT key_id FROM "${db.schema}".sources UNION ALL SELECT key_id FROM "${db.schema}".entries`);
  assert.deepEqual([...new Set(keyIds.map((r) => r.key_id))], [NEW_KEY.id]);
  const fresh = new PgStore({ url: db.url, masterKey: NEW_KEY });
  t.after(() => fresh.close());
  for (const s of SOURCES) assert.ok((await fresh.read(s))?.grant?.refreshToken, `${s} opens with the new key alone`);
  assert.equal((await fresh.get('sessions', 'session-1'))?.reveal(), 'session-value');
  const stale = new PgStore({ url: db.url, masterKey: TEST_MASTER_KEY });
  t.after(() => stale.close());
  await assert.rejects(stale.read('a'), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_STORE_KEY' && err.message.includes(NEW_KEY.id));

  // A re-run finds nothing to do.
  const again = await runCli(['rotate-key'], { env: rotator });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /0 row\(s\) re-wrapped under master key [0-9a-f]{16}; 0 still under another key/);
});

test('rotate-key refuses what it cannot open: a swapped ciphertext and a missing old key are named, left as they are', { skip }, async (t) => {
  const db = await freshPgSchema();
  t.after(() => db.cleanup());
  const old = new PgStore({ url: db.url, masterKey: TEST_MASTER_KEY });
  t.after(() => old.close());
  for (const s of ['x', 'y']) {
    await old.withLock(s, (tx) => tx.write(s, { grant: { accessToken: new Secret(`at-${s}`), refreshToken: new Secret(`rt-${s}`), obtainedAt: 1, expiresAt: 2 } }, 0));
  }
  // y's refresh token replaced by x's ciphertext: its tag binds it to row x.
  await pgExec(`UPDATE "${db.schema}".sources SET refresh_token = (SELECT refresh_token FROM "${db.schema}".sources WHERE name = 'x') WHERE name = 'y'`);
  const before = await pgExec<{ name: string; refresh_token: Buffer }>(`SELECT name, refresh_token FROM "${db.schema}".sources ORDER BY name`);

  const noOther = { PATH: process.env.PATH, HOME: process.env.HOME, LATCHKEY_MASTER_KEY: NEW_KEY_TEXT };
  const missing = await runCli(['rotate-key', '--store', db.url], { env: noOther });
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /was sealed with master key/);
  assert.match(missing.stderr, /fix: set LATCHKEY_MASTER_KEY_OTHER/);

  const env = { ...noOther, LATCHKEY_MASTER_KEY_OTHER: TEST_MASTER_KEY_TEXT };
  const tampered = await runCli(['rotate-key', '--store', db.url], { env });
  assert.equal(tampered.code, 1, tampered.stderr);
  assert.match(tampered.stderr, /refresh_token of y/);
  assert.match(tampered.stderr, /fails authentication/);
  const after = await pgExec<{ name: string; refresh_token: Buffer; key_id: string }>(`SELECT name, refresh_token, key_id FROM "${db.schema}".sources ORDER BY name`);
  assert.equal(after[1]!.refresh_token.equals(before[1]!.refresh_token), true, 'the tampered row is left byte for byte');
  assert.equal(after[1]!.key_id, TEST_MASTER_KEY.id, 'nothing of the tampered row was rewritten');

  const retire = await runCli(['rotate-key', '--store', db.url, '--retire'], { env });
  assert.equal(retire.code, 1);
  assert.match(retire.stderr, /fails authentication|still seals/);

  const notPg = await runCli(['rotate-key', '--store', '/tmp/store.json'], { env });
  assert.equal(notPg.code, 1);
  assert.match(notPg.stderr, /not a postgres:\/\/ URL/);
});
