/**
 * The CLI on the PostgreSQL store (LATCHKEY_TEST_PG_URL; each test its own schema): every command
 * uses it when LATCHKEY_STORE or the config's store.url names it; `latchkey migrate`; the bad
 * inputs of the fleet issue (a URL that does not connect, a schema newer than the code, a master
 * key that does not match) are clear errors with the design's exit codes, nothing overwritten.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { access } from 'node:fs/promises';
import { SCHEMA_VERSION } from '../../src/store/pg/migrations.js';
import { startIdp } from '../fixtures/idp.js';
import { dropSchema, pgExec, pgSkipReason, pgTestUrl, TEST_MASTER_KEY_TEXT, withSchema } from '../fixtures/pg.js';
import { makeHome, runCli } from '../helpers/home.js';

const skip = pgSkipReason();

function schemaUrl(t: { after(fn: () => Promise<void>): void }): { url: string; schema: string } {
  const schema = `lk_test_${randomBytes(6).toString('hex')}`;
  t.after(() => dropSchema(schema));
  return { url: withSchema(pgTestUrl()!, schema), schema };
}

test('LATCHKEY_STORE=postgres://…: migrate (idempotent), import, token (refreshing through the store) and status all use PostgreSQL; no store.json is written', { skip }, async (t) => {
  const idp = await startIdp({ accessTokenTtl: 60 });
  t.after(() => idp.close());
  const { url, schema } = schemaUrl(t);
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: idp.tokenEndpoint, clientId: 'public-client' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, LATCHKEY_STORE: url, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT };
  const first = await runCli(['migrate'], { env });
  assert.equal(first.code, 0, first.stderr);
  assert.match(first.stdout, new RegExp(`schema "${schema}" migrated from version 0 to ${SCHEMA_VERSION}`));
  const second = await runCli(['migrate', '--json'], { env });
  assert.equal(second.code, 0, second.stderr);
  assert.deepEqual(JSON.parse(second.stdout), { store: `postgres://127.0.0.1:5432/test?schema=${schema}`.replace('127.0.0.1:5432', new URL(url).host), schema, from: SCHEMA_VERSION, to: SCHEMA_VERSION, applied: [] });
  const minted = await idp.mintGrant();
  // Expired on arrival: the first token call refreshes through the PostgreSQL store.
  const imp = await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ access_token: minted.access_token, refresh_token: minted.refresh_token, expires_in: 1, iat: Math.floor(Date.now() / 1000) - 600 }) });
  assert.equal(imp.code, 0, imp.stderr);
  idp.stats.reset();
  const tok = await runCli(['token', 'api'], { env });
  assert.equal(tok.code, 0, tok.stderr);
  const token = tok.stdout.trim();
  assert.notEqual(token, minted.access_token, 'refreshed');
  assert.equal(idp.stats.refreshSuccesses, 1);
  const again = await runCli(['token', 'api'], { env });
  assert.equal(again.stdout.trim(), token, 'the second call reads the stored, fresh token');
  assert.equal(idp.stats.refreshRequests, 1);
  const status = await runCli(['status', '--json'], { env });
  assert.equal(status.code, 0, status.stderr);
  assert.ok(status.stdout.includes(`schema=${schema}`), 'status names the PostgreSQL store');
  const rows = await pgExec<{ refresh_count: string }>(`SELECT refresh_count FROM "${schema}".sources WHERE name = 'api'`);
  assert.equal(Number(rows[0]?.refresh_count), 1);
  await assert.rejects(access(h.storePath), 'no store.json: the file store was not used');
});

test('store.url in the config (an env: reference) selects the PostgreSQL store; LATCHKEY_STORE wins over it', { skip }, async (t) => {
  const { url, schema } = schemaUrl(t);
  const h = await makeHome({ version: 1, store: { url: 'env:MY_PG_URL' }, sources: { api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, MY_PG_URL: url, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT };
  assert.equal((await runCli(['migrate'], { env })).code, 0);
  const imp = await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ access_token: 'at-config-store', refresh_token: 'rt-config-store', expires_in: 3600 }) });
  assert.equal(imp.code, 0, imp.stderr);
  assert.equal((await pgExec(`SELECT name FROM "${schema}".sources`)).length, 1);
  const tok = await runCli(['token', 'api'], { env });
  assert.equal(tok.stdout, 'at-config-store\n', tok.stderr);
  // The environment names another (unmigrated) schema: it wins, and says what to do.
  const other = await runCli(['token', 'api'], { env: { ...env, LATCHKEY_STORE: withSchema(pgTestUrl()!, `${schema}_x`) } });
  assert.equal(other.code, 1);
  assert.match(other.stderr, /no Latchkey tables yet: run `latchkey migrate`/);
  const bad = await makeHome({ version: 1, store: { url: 'postgres://u:p@h/db' } });
  t.after(() => bad.cleanup());
  const refused = await runCli(['status'], { env: { LATCHKEY_HOME: bad.home } });
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /store\.url/);
  assert.ok(!refused.stderr.includes('u:p@h'), 'the inline URL is not echoed');
});

test('a database URL that does not connect: exit 3, host and database named, never the user or password (token, status, migrate)', { skip }, async (t) => {
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, LATCHKEY_STORE: 'postgres://opsuser:Hunter2-Passw0rd@127.0.0.1:1/proddb', LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT };
  for (const args of [['token', 'api'], ['status'], ['migrate']]) {
    const r = await runCli(args, { env });
    assert.equal(r.code, 3, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /127\.0\.0\.1:1, database "proddb"/);
    assert.ok(!r.stderr.includes('Hunter2') && !r.stderr.includes('opsuser'), r.stderr);
    assert.equal(r.stdout, '');
  }
  const notPg = await runCli(['status'], { env: { ...env, LATCHKEY_STORE: 'mysql://u:secretpw@h/db' } });
  assert.equal(notPg.code, 1);
  assert.match(notPg.stderr, /LATCHKEY_STORE must be a PostgreSQL URL/);
  assert.ok(!notPg.stderr.includes('secretpw'));
  const noStore = await runCli(['migrate'], { env: { LATCHKEY_HOME: h.home } });
  assert.equal(noStore.code, 1);
  assert.match(noStore.stderr, /latchkey migrate is for the PostgreSQL store/);
});

test('a schema newer than the code, and a master key that does not match: exit 1, clear errors, nothing overwritten', { skip }, async (t) => {
  const { url, schema } = schemaUrl(t);
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' } } } });
  t.after(() => h.cleanup());
  const env = { LATCHKEY_HOME: h.home, LATCHKEY_STORE: url, LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT };
  assert.equal((await runCli(['migrate'], { env })).code, 0);
  assert.equal((await runCli(['import', 'api', '--grant', '-'], { env, input: JSON.stringify({ access_token: 'at-keep', refresh_token: 'rt-keep', expires_in: 3600 }) })).code, 0);
  const before = await pgExec(`SELECT * FROM "${schema}".sources`);
  // Another machine's key: reading is refused naming both key ids; so is writing (an import).
  const otherKey = Buffer.alloc(32, 1).toString('base64');
  const wrongKey = await runCli(['token', 'api'], { env: { ...env, LATCHKEY_MASTER_KEY: otherKey } });
  assert.equal(wrongKey.code, 1, wrongKey.stderr);
  assert.match(wrongKey.stderr, /sealed with master key [0-9a-f]{16}, but the master key given is [0-9a-f]{16}/);
  const wrongImport = await runCli(['import', 'api', '--grant', '-'], { env: { ...env, LATCHKEY_MASTER_KEY: otherKey }, input: JSON.stringify({ access_token: 'at-other', refresh_token: 'rt-other', expires_in: 3600 }) });
  assert.equal(wrongImport.code, 1, wrongImport.stderr);
  assert.match(wrongImport.stderr, /sealed with master key|not a key of the store/);
  const noKey = await runCli(['token', 'api'], { env: { LATCHKEY_HOME: h.home, LATCHKEY_STORE: url } });
  assert.equal(noKey.code, 1);
  assert.match(noKey.stderr, /LATCHKEY_MASTER_KEY is not set/);
  assert.deepEqual(await pgExec(`SELECT * FROM "${schema}".sources`), before, 'nothing overwritten');
  await pgExec(`UPDATE "${schema}".schema_version SET version = $1`, [SCHEMA_VERSION + 5]);
  for (const args of [['token', 'api'], ['status'], ['migrate']]) {
    const r = await runCli(args, { env });
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`schema version ${SCHEMA_VERSION + 5}, newer than this Latchkey understands`));
  }
  assert.deepEqual(await pgExec(`SELECT version FROM "${schema}".schema_version`), [{ version: SCHEMA_VERSION + 5 }]);
});
