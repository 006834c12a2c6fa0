/**
 * The PostgreSQL store beyond the contract suite, on the real server (LATCHKEY_TEST_PG_URL; each
 * test its own schema): secrets sealed at rest, bound to their row and column; the master key's
 * errors; migrations; claims and leases (takeover of an expired lease, a lost claim writes
 * nothing, quarantine); the connection bounds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LatchkeyError } from '../../../../src/core/errors.js';
import { Secret } from '../../../../src/core/secret.js';
import { open as openSealed, parseMasterKey, rewrap, seal, sealedKeyId } from '../../../../src/store/pg/envelope.js';
import { masterKeyFromEnv } from '../../../../src/store/pg/master-key.js';
import { SCHEMA_VERSION } from '../../../../src/store/pg/migrations.js';
import pg from 'pg';
import { ClaimWakeups } from '../../../../src/store/pg/claim-wakeups.js';
import { PgStore, pgStoreCounters } from '../../../../src/store/pg/pg-store.js';
import type { SourceRecordInput, StoreTx } from '../../../../src/store/store.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason, pgTestUrl, TEST_MASTER_KEY_TEXT } from '../../../fixtures/pg.js';
import { writeRecord } from '../../../helpers/store.js';

const skip = pgSkipReason();

function grant(access: string, refresh: string | undefined, at = 1_000): SourceRecordInput {
  return { grant: { accessToken: new Secret(access), ...(refresh ? { refreshToken: new Secret(refresh) } : {}), obtainedAt: at, expiresAt: at + 60_000, tokenType: 'Bearer', scope: 'api', clientId: 'c1' } };
}

async function schemaFor(t: { after(fn: () => Promise<void>): void }): Promise<{ url: string; schema: string; store: PgStore }> {
  const f = await freshPgSchema();
  const store = openPgStore(f.url);
  t.after(async () => {
    await store.close();
    await f.cleanup();
  });
  return { url: f.url, schema: f.schema, store };
}

const code = (c: string) => (e: LatchkeyError) => e.code === c;

test('secrets are sealed at rest: no token, cookie or entry value appears in any column; metadata stays readable', { skip }, async (t) => {
  const { schema, store } = await schemaFor(t);
  await writeRecord(store, 'a', { ...grant('ACCESS-aaaaaaaa', 'REFRESH-aaaaaaaa'), session: { cookies: { sid: new Secret('COOKIE-aaaaaaaa') }, updatedAt: 5 } }, 0);
  await store.put('sessions', 'SESSIONID-aaaaaaaa', new Secret('ENTRY-aaaaaaaa'), 60_000);
  const dump = JSON.stringify([
    ...(await pgExec(`SELECT encode(access_token, 'escape') a, encode(refresh_token, 'escape') r, encode(session_cookies, 'escape') c, * FROM "${schema}".sources`)),
    ...(await pgExec(`SELECT encode(value, 'escape') v, encode(id_hash, 'escape') i, * FROM "${schema}".entries`)),
  ]);
  for (const plain of ['ACCESS-', 'REFRESH-', 'COOKIE-', 'ENTRY-', 'SESSIONID-']) assert.ok(!dump.includes(plain), `${plain} is not stored in the clear`);
  const [row] = await pgExec<{ key_id: string; expires_at: number; grant_meta: unknown }>(`SELECT key_id, expires_at, grant_meta FROM "${schema}".sources WHERE name = 'a'`);
  assert.equal(row!.key_id, parseMasterKey(new Secret(TEST_MASTER_KEY_TEXT), 'x').id, 'the key id is beside the value');
  assert.equal(row!.expires_at, 61_000);
  assert.deepEqual(row!.grant_meta, { tokenType: 'Bearer', scope: 'api', clientId: 'c1' });
  const back = await store.read('a');
  assert.equal(back?.grant?.refreshToken?.reveal(), 'REFRESH-aaaaaaaa');
  assert.equal(back?.session?.cookies.sid?.reveal(), 'COOKIE-aaaaaaaa');
  assert.equal((await store.get('sessions', 'SESSIONID-aaaaaaaa'))?.reveal(), 'ENTRY-aaaaaaaa');
});

test('a ciphertext copied into another row or column is refused (AAD binds it), naming the row; nothing is rewritten', { skip }, async (t) => {
  const { schema, store } = await schemaFor(t);
  await writeRecord(store, 'a', grant('at-a', 'rt-a'), 0);
  await writeRecord(store, 'b', grant('at-b', 'rt-b'), 0);
  // Another row's refresh token, in a's row: a database user swapping grants between sources.
  await pgExec(`UPDATE "${schema}".sources SET refresh_token = (SELECT refresh_token FROM "${schema}".sources WHERE name = 'b') WHERE name = 'a'`);
  const before = await pgExec(`SELECT * FROM "${schema}".sources WHERE name = 'a'`);
  await assert.rejects(store.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && /sources\.refresh_token of a/.test(e.message) && /copied from another row/.test(e.message));
  // The same row's other column: the access token's ciphertext as its refresh token.
  await pgExec(`UPDATE "${schema}".sources SET refresh_token = access_token WHERE name = 'b'`);
  await assert.rejects(store.read('b'), code('LK_STORE_CORRUPT'));
  // An entry moved to another id.
  await store.put('tickets', 't1', new Secret('v1'), 60_000);
  await store.put('tickets', 't2', new Secret('v2'), 60_000);
  await pgExec(`UPDATE "${schema}".entries SET value = (SELECT value FROM "${schema}".entries WHERE id_hash = sha256('t1')) WHERE id_hash = sha256('t2')`);
  await assert.rejects(store.get('tickets', 't2'), code('LK_STORE_CORRUPT'));
  assert.equal((await store.get('tickets', 't1'))?.reveal(), 'v1');
  assert.deepEqual(await pgExec(`SELECT * FROM "${schema}".sources WHERE name = 'a'`), before, 'refused, left as it was');
  assert.equal((await store.listMeta()).get('a')?.hasRefreshToken, true, 'the listing (no secret opened) still works');
});

test('a row tampered with (one bit of a ciphertext flipped, or truncated) fails its tag: LK_STORE_CORRUPT, never garbage', { skip }, async (t) => {
  const { schema, store } = await schemaFor(t);
  await writeRecord(store, 'a', grant('at-a', 'rt-a'), 0);
  await pgExec(`UPDATE "${schema}".sources SET access_token = set_byte(access_token, length(access_token) - 20, get_byte(access_token, length(access_token) - 20) # 1) WHERE name = 'a'`);
  await assert.rejects(store.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && /sources\.access_token of a/.test(e.message));
  await writeRecord(store, 'b', grant('at-b', 'rt-b'), 0);
  await pgExec(`UPDATE "${schema}".sources SET refresh_token = substring(refresh_token from 1 for 20) WHERE name = 'b'`);
  await assert.rejects(store.read('b'), (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && /not a sealed value/.test(e.message));
});

test('a master key that does not match: LK_STORE_KEY naming both key ids; missing or malformed keys are clear errors; listMeta needs no key', { skip }, async (t) => {
  const { url, store } = await schemaFor(t);
  await writeRecord(store, 'a', grant('at-a', 'rt-a'), 0);
  const other = parseMasterKey(new Secret(Buffer.alloc(32, 9).toString('base64')), 'another');
  const wrong = openPgStore(url, { masterKey: other });
  t.after(() => wrong.close());
  await assert.rejects(wrong.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && e.message.includes(other.id) && /sealed with master key [0-9a-f]{16}/.test(e.message));
  // A write with it is refused before anything is sealed: no row only this machine could read.
  await assert.rejects(writeRecord(wrong, 'a', grant('x', 'y'), 1), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && e.message.includes(other.id) && /nothing was written/.test(e.message));
  await assert.rejects(writeRecord(wrong, 'new', grant('x', 'y'), 0), code('LK_STORE_KEY'));
  await assert.rejects(wrong.put('tickets', 't', new Secret('v'), 1_000), code('LK_STORE_KEY'));
  assert.equal((await wrong.listMeta()).get('a')?.version, 1, 'metadata needs no key');
  assert.equal((await store.read('a'))?.grant?.accessToken.reveal(), 'at-a', 'nothing was overwritten');
  assert.equal(await store.read('new'), undefined);
  // From the environment: missing, malformed (wrong length, not base64).
  const noKey = new PgStore({ url, env: {} });
  t.after(() => noKey.close());
  await assert.rejects(noKey.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /LATCHKEY_MASTER_KEY is not set/.test(e.message) && /openssl rand -base64 32/.test(e.message));
  await assert.rejects(masterKeyFromEnv({ LATCHKEY_MASTER_KEY: Buffer.alloc(16).toString('base64') }), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /16 bytes/.test(e.message));
  await assert.rejects(masterKeyFromEnv({ LATCHKEY_MASTER_KEY: 'not base64 !!' }), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /not 32 bytes in/.test(e.message) && !e.message.includes('!!'));
});

test('the master key from LATCHKEY_MASTER_KEY directly or through env: and file: references opens the same store', { skip }, async (t) => {
  const { url, store } = await schemaFor(t);
  await writeRecord(store, 'a', grant('at-a', 'rt-a'), 0);
  const dir = await mkdtemp(join(tmpdir(), 'lk-key-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'key'), `${TEST_MASTER_KEY_TEXT}\n`, { mode: 0o600 });
  for (const env of [{ LATCHKEY_MASTER_KEY: TEST_MASTER_KEY_TEXT }, { LATCHKEY_MASTER_KEY: 'env:MY_KEY', MY_KEY: TEST_MASTER_KEY_TEXT }, { LATCHKEY_MASTER_KEY: `file:${join(dir, 'key')}` }]) {
    const s = new PgStore({ url, env });
    try {
      assert.equal((await s.read('a'))?.grant?.refreshToken?.reveal(), 'rt-a', JSON.stringify(Object.keys(env)));
    } finally {
      await s.close();
    }
  }
  const missingRef = new PgStore({ url, env: { LATCHKEY_MASTER_KEY: 'env:NOT_SET_ANYWHERE' } });
  t.after(() => missingRef.close());
  await assert.rejects(missingRef.read('a'), (e: LatchkeyError) => e.code === 'LK_SECRET_UNRESOLVED' && /NOT_SET_ANYWHERE/.test(e.message));
});

test('migrate is idempotent; a schema newer than the code is refused everywhere, unchanged; a missing one asks for migrate', { skip }, async (t) => {
  const { url, schema, store } = await schemaFor(t);
  const again = await store.migrate();
  assert.deepEqual(again.applied, [], 'nothing to apply the second time');
  assert.equal(again.to, SCHEMA_VERSION);
  await pgExec(`UPDATE "${schema}".schema_version SET version = $1`, [SCHEMA_VERSION + 1]);
  const newer = openPgStore(url);
  t.after(() => newer.close());
  await assert.rejects(newer.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_SCHEMA' && e.message.includes(`schema version ${SCHEMA_VERSION + 1}`) && /upgrade Latchkey/.test(e.message));
  await assert.rejects(newer.listMeta(), code('LK_STORE_SCHEMA'));
  await assert.rejects(newer.migrate(), code('LK_STORE_SCHEMA'));
  assert.deepEqual(await pgExec(`SELECT version FROM "${schema}".schema_version`), [{ version: SCHEMA_VERSION + 1 }], 'left as it was');
  const u = new URL(url);
  u.searchParams.set('schema', `${schema}_none`);
  const none = openPgStore(u.toString());
  t.after(() => none.close());
  await assert.rejects(none.read('a'), (e: LatchkeyError) => e.code === 'LK_STORE_SCHEMA' && /latchkey migrate/.test(e.message));
});

test('a URL that does not connect: LK_UNREACHABLE (exit 3) naming host, port and database, never the user or password', { skip }, async () => {
  const s = new PgStore({ url: 'postgres://someone:Sup3rSecretPassw0rd@127.0.0.1:1/proddb?schema=x', env: {} });
  try {
    await assert.rejects(s.listMeta(), (e: LatchkeyError) => {
      assert.equal(e.code, 'LK_UNREACHABLE');
      assert.equal(e.exitCode, 3);
      assert.match(e.message, /127\.0\.0\.1:1, database "proddb"/);
      assert.ok(!e.message.includes('Sup3rSecretPassw0rd') && !e.message.includes('someone'));
      return true;
    });
    assert.equal(s.location, 'postgres://127.0.0.1:1/proddb?schema=x');
    assert.equal(JSON.stringify(s.target.connectionString), '"[redacted]"');
  } finally {
    await s.close();
  }
});

test('claims: a held claim makes others wait (LK_LOCK_TIMEOUT when it outlasts the wait); a live holder renews its lease past its length', { skip }, async (t) => {
  const { url, store } = await schemaFor(t);
  const fast = openPgStore(url, { leaseMs: 300 });
  t.after(() => fast.close());
  await assert.rejects(
    fast.withLock('a', async () => {
      await assert.rejects(store.withLock('a', async () => 'never', { timeoutMs: 150 }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT' && /held by \d+@/.test(e.message));
      // Three lease lengths: renewed every 100 ms, so it is still ours and nobody took it over.
      await new Promise((r) => setTimeout(r, 900));
      await assert.rejects(store.withLock('a', async () => 'never', { timeoutMs: 100 }), code('LK_LOCK_TIMEOUT'));
      throw new Error('done');
    }),
    /done/,
  );
  assert.equal(await store.withLock('a', async () => 'free', { timeoutMs: 1_000 }), 'free', 'released by the throw');
});

test('claims: a holder past its lease (not renewing) is taken over; its writes are refused, nothing written; the source is stamped maybe-consumed', { skip }, async (t) => {
  const { url, schema, store } = await schemaFor(t);
  await writeRecord(store, 's', grant('at-1', 'rt-1'), 0);
  const slow = openPgStore(url, { leaseMs: 200 });
  t.after(() => slow.close());
  // A holder whose process stops renewing: the claim is taken by hand (no renewal timer).
  const claim = await slow.claim('s', 1_000);
  await new Promise((r) => setTimeout(r, 350));
  let seen: string | undefined;
  const rec = await store.withLock('s', async (tx) => {
    const r = await tx.read('s');
    seen = r?.lastFailure?.message;
    return r;
  });
  assert.equal(rec?.version, 2, 'the takeover stamped the record (a new version)');
  assert.equal(rec?.lastFailure?.maybeConsumed, true);
  assert.equal(rec?.lastFailure?.kind, 'transient');
  assert.match(seen ?? '', /lost its lease mid-refresh/);
  // The original holder's late commit goes through its tx: refused by the claim CAS.
  const [row] = await pgExec<{ generation: string }>(`SELECT generation FROM "${schema}".claims WHERE key = 's'`);
  assert.equal(Number(row!.generation), claim.generation + 1, 'the generation counts the claims');
  assert.equal(await slow.renew(claim), false, 'its renewal finds the claim gone');
  await slow.release(claim); // a no-op: not ours
  assert.equal((await store.read('s'))?.version, 2);
});

test('claims: a write through a claim lost to a takeover throws and writes nothing (the CAS is on the claim, not only the version)', { skip }, async (t) => {
  const { url, schema, store } = await schemaFor(t);
  await writeRecord(store, 's', grant('at-1', 'rt-1'), 0);
  const paused = openPgStore(url, { leaseMs: 60_000 });
  t.after(() => paused.close());
  let tx: StoreTx | undefined;
  let resume!: () => void;
  const gate = new Promise<void>((r) => (resume = r));
  const holding = paused.withLock('s', async (t2) => {
    // The first read is the row the claim statement read (no round trip, the claim is young).
    const first = await t2.read('s');
    tx = t2;
    await gate;
    const r = await t2.read('s').catch((e: LatchkeyError) => e);
    const w = await t2.write('s', grant('at-late', 'rt-late'), 1).catch((e: LatchkeyError) => e);
    return { first, r, w };
  });
  while (tx === undefined) await new Promise((r) => setTimeout(r, 5));
  // Its lease runs out (as for a process paused past it): expired by hand, so no timing is involved.
  await pgExec(`UPDATE "${schema}".claims SET lease_until = now() - interval '1 second' WHERE key = 's'`);
  const taken = await store.withLock('s', async (t3) => (await t3.read('s'))?.version);
  assert.equal(taken, 2, 'taken over (and stamped)');
  resume();
  const { first, r, w } = await holding;
  assert.equal(first?.grant?.refreshToken?.reveal(), 'rt-1');
  assert.ok(r instanceof Error && (r as LatchkeyError).code === 'LK_CLAIM_LOST' && /was lost/.test(r.message), 'its read says the claim is lost');
  assert.ok(w instanceof Error && (w as LatchkeyError).code === 'LK_CLAIM_LOST' && /nothing was written/.test(w.message));
  const after = await store.read('s');
  assert.equal(after?.grant?.refreshToken?.reveal(), 'rt-1', 'the late write changed nothing');
});

test('claims: the claim statement reads the claimed row (the first read costs no round trip), but a holder paused past half its lease reads and checks the claim', { skip }, async (t) => {
  const { url, schema, store } = await schemaFor(t);
  await writeRecord(store, 's', grant('at-1', 'rt-1'), 0);
  // The row as it was once the claim was taken: a write committed under the previous claim is in it.
  await store.withLock('s', async (tx) => {
    await tx.write('s', grant('at-2', 'rt-2'), 1);
  });
  const reads = await store.withLock('s', async (tx) => {
    // Removed behind the store's back after the claim: the first read is the claim's own row, a
    // later one asks the database.
    await pgExec(`DELETE FROM "${schema}".sources WHERE name = 's'`);
    const first = await tx.read('s');
    const second = await tx.read('s');
    return [first?.grant?.refreshToken?.reveal(), second];
  });
  assert.deepEqual(reads, ['rt-2', undefined]);

  // Paused past half the lease before its first read, the lease expired and taken over meanwhile:
  // the read goes to the database and says the claim was lost. (Renewals run every lease/3, 1 s
  // here: the lease is expired by hand between two of them.)
  await writeRecord(store, 'p', grant('at-1', 'rt-1'), 0);
  const paused = openPgStore(url, { leaseMs: 3_000 });
  t.after(() => paused.close());
  const r = await paused.withLock('p', async (tx) => {
    await new Promise((res) => setTimeout(res, 1_600));
    await pgExec(`UPDATE "${schema}".claims SET lease_until = now() - interval '1 second' WHERE key = 'p'`);
    await store.withLock('p', async () => undefined);
    return tx.read('p').catch((e: LatchkeyError) => e);
  });
  assert.ok(r instanceof Error && (r as LatchkeyError).code === 'LK_CLAIM_LOST', 'a read after a pause checks the claim');
});

test('claims: a key that is not a source (a session lock) is quarantined after a takeover: refused at once for a lease, then free', { skip }, async (t) => {
  const { schema, store } = await schemaFor(t);
  // A holder on another machine stopped mid-work on a session's lock: its lease has expired.
  await pgExec(`INSERT INTO "${schema}".claims (key, claim_id, holder, lease_until, generation) VALUES ('session:x', gen_random_uuid(), 'ghost@elsewhere#1', now() - interval '1 second', 7)`);
  const started = Date.now();
  await assert.rejects(store.withLock('session:x', async () => 'never', { timeoutMs: 30_000 }), (e: LatchkeyError) => e.code === 'LK_LOCK_TIMEOUT' && /quarantined/.test(e.message) && /ghost@elsewhere/.test(e.message));
  assert.ok(Date.now() - started < 10_000, 'refused at once, not after the whole wait');
  const [row] = await pgExec<{ claim_id: string | null; quarantine_holder: string }>(`SELECT claim_id, quarantine_holder FROM "${schema}".claims WHERE key = 'session:x'`);
  assert.equal(row!.claim_id, null, 'the lost holder can no longer write under its claim');
  assert.equal(row!.quarantine_holder, 'ghost@elsewhere#1');
  await pgExec(`UPDATE "${schema}".claims SET quarantine_until = now() - interval '1 millisecond' WHERE key = 'session:x'`);
  assert.equal(await store.withLock('session:x', async () => 'mine'), 'mine', 'free once the quarantine is over');
});

test('key rotation primitives: register the new key, re-wrap every value (same ciphertexts, same versions), retire the old; readers with the new key only see everything', { skip }, async (t) => {
  const { url, schema, store } = await schemaFor(t);
  for (let i = 0; i < 5; i++) await writeRecord(store, `s${i}`, { ...grant(`at-${i}`, `rt-${i}`), session: { cookies: { c: new Secret(`cookie-${i}`) }, updatedAt: 1 } }, 0);
  for (let i = 0; i < 3; i++) await store.put('sessions', `id-${i}`, new Secret(`v-${i}`), 60_000);
  const oldKey = parseMasterKey(new Secret(TEST_MASTER_KEY_TEXT), 'old');
  const newKey = parseMasterKey(new Secret(Buffer.alloc(32, 42).toString('base64')), 'new');
  const rotating = openPgStore(url, { masterKey: { current: newKey, previous: new Map([[oldKey.id, oldKey]]) } });
  const newOnly = openPgStore(url, { masterKey: newKey });
  t.after(async () => {
    await rotating.close();
    await newOnly.close();
  });
  await assert.rejects(rotating.retireKey(oldKey.id), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /still seals 8 stored values/.test(e.message));
  await rotating.registerCurrentKey();
  const versions = await pgExec(`SELECT name, version FROM "${schema}".sources ORDER BY name`);
  let total = 0;
  for (let n = await rotating.rewrapBatch(3); n > 0; n = await rotating.rewrapBatch(3)) total += n;
  assert.equal(total, 8, 'every row re-wrapped once');
  assert.deepEqual(await pgExec(`SELECT name, version FROM "${schema}".sources ORDER BY name`), versions, 'versions unchanged');
  assert.deepEqual(await pgExec(`SELECT DISTINCT key_id FROM "${schema}".sources UNION SELECT DISTINCT key_id FROM "${schema}".entries`), [{ key_id: newKey.id }]);
  assert.equal((await newOnly.read('s3'))?.session?.cookies.c?.reveal(), 'cookie-3');
  assert.equal((await newOnly.get('sessions', 'id-2'))?.reveal(), 'v-2');
  await assert.rejects(store.read('s3'), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && e.message.includes(newKey.id));
  await rotating.retireKey(oldKey.id);
  const stale = openPgStore(url); // a machine still on the old key
  t.after(() => stale.close());
  await assert.rejects(writeRecord(stale, 'fresh', grant('x', 'y'), 0), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /retired/.test(e.message));
  await writeRecord(newOnly, 'fresh', grant('x', 'y'), 0);
});

test('master keys: the new key of a rotation registers itself when the ring holds an active old one; the old key is retired only once no value uses it; a machine on a retired key cannot write', { skip }, async (t) => {
  const { url, schema, store } = await schemaFor(t);
  await writeRecord(store, 's1', grant('at-1', 'rt-1'), 0);
  await store.put('sessions', 'id-1', new Secret('v-1'), 60_000);
  const oldKey = parseMasterKey(new Secret(TEST_MASTER_KEY_TEXT), 'old');
  const newKey = parseMasterKey(new Secret(Buffer.alloc(32, 42).toString('base64')), 'new');
  const stranger = openPgStore(url, { masterKey: newKey });
  const rotating = openPgStore(url, { masterKey: { current: newKey, previous: new Map([[oldKey.id, oldKey]]) } });
  t.after(async () => {
    await stranger.close();
    await rotating.close();
  });
  await assert.rejects(writeRecord(stranger, 'x', grant('x', 'y'), 0), code('LK_STORE_KEY'), 'a new key alone is not accepted');
  // The rotating machine reads old values and writes new ones; its key is registered on the way.
  const rec = (await rotating.read('s1'))!;
  await writeRecord(rotating, 's1', grant('at-2', 'rt-2'), rec.version);
  assert.deepEqual((await pgExec<{ id: string; active: boolean }>(`SELECT id, active FROM "${schema}".master_keys ORDER BY created_at`)).map((r) => r.id), [oldKey.id, newKey.id]);
  await assert.rejects(rotating.retireKey(oldKey.id), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /still seals 1 stored values/.test(e.message));
  await rotating.put('sessions', 'id-1', new Secret('v-1b'), 60_000);
  await rotating.retireKey(oldKey.id);
  assert.equal((await stranger.read('s1'))?.grant?.refreshToken?.reveal(), 'rt-2', 'everything opens with the new key alone');
  const stale = openPgStore(url); // a machine still on the old key
  t.after(() => stale.close());
  await assert.rejects(writeRecord(stale, 'fresh', grant('x', 'y'), 0), (e: LatchkeyError) => e.code === 'LK_STORE_KEY' && /retired/.test(e.message));
  await writeRecord(stranger, 'fresh', grant('x', 'y'), 0);
});

test('re-wrapping (envelope rewrap) refuses a tampered value, naming it, and re-wraps a good one without touching its ciphertext', { skip }, async () => {
  const oldKey = parseMasterKey(new Secret(TEST_MASTER_KEY_TEXT), 'old');
  const newKey = parseMasterKey(new Secret(Buffer.alloc(32, 43).toString('base64')), 'new');
  const at = { table: 'sources', column: 'refresh_token', row: 'a' };
  const sealed = seal({ current: oldKey }, at, 'rt-a');
  const ring = { current: newKey, previous: new Map([[oldKey.id, oldKey]]) };
  const again = rewrap(ring, at, sealed);
  assert.equal(sealedKeyId(again), newKey.id);
  // After the header (version, key id, wrap nonce, wrapped data key, wrap tag: 69 bytes).
  assert.deepEqual(again.subarray(69), sealed.subarray(69), 'the nonce, ciphertext and tag are unchanged');
  assert.notDeepEqual(again.subarray(0, 69), sealed.subarray(0, 69), 'the header is new');
  assert.equal(openSealed({ current: newKey }, at, again), 'rt-a');
  const tampered = Buffer.from(sealed);
  tampered[tampered.length - 1]! ^= 1;
  assert.throws(() => rewrap(ring, at, tampered), (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && /sources\.refresh_token of a/.test(e.message));
  assert.throws(() => rewrap(ring, { ...at, row: 'b' }, sealed), (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT', 'bound to its row');
});

test('claims: a release is announced on the store channel by the digest of its key (a session id never leaves in a notification); a waiter listening is woken by it', { skip }, async (t) => {
  const { url, store } = await schemaFor(t);
  const listener = new pg.Client({ connectionString: pgTestUrl() });
  listener.on('error', () => undefined);
  await listener.connect();
  t.after(() => listener.end());
  const heard: string[] = [];
  listener.on('notification', (m) => heard.push(`${m.channel} ${m.payload ?? ''}`));
  const channel = new ClaimWakeups(store.target, { statementTimeoutMs: 1, lockTimeoutMs: 1, idleInTransactionMs: 1, connectTimeoutMs: 1 }).channel;
  await listener.query(`LISTEN "${channel}"`);
  await store.withLock('session:secret-session-id', async () => undefined);
  await until(() => heard.length === 1, 'the notification');
  assert.deepEqual(heard, [`${channel} ${ClaimWakeups.digest('session:secret-session-id')}`]);
  assert.ok(!heard[0]!.includes('secret-session-id'));
  // A waiter in another store: woken by the release, it takes the claim (its polls are counted).
  const other = openPgStore(url, { pollMs: 60_000 });
  t.after(() => other.close());
  let release!: () => void;
  const holding = store.withLock('k', () => new Promise<void>((r) => (release = r)));
  while (release === undefined) await new Promise((r) => setTimeout(r, 5));
  const waiting = other.withLock('k', async () => 'mine', { timeoutMs: 30_000 });
  await until(() => pgStoreCounters.busyPolls > 0, 'the waiter finding the key busy');
  release();
  await holding;
  assert.equal(await waiting, 'mine');
});

test('claims: a waiter already listening when it finds the key busy waits for the release at once; only a first LISTEN tries again straight away', { skip }, async (t) => {
  const { url, store } = await schemaFor(t);
  const other = openPgStore(url, { pollMs: 60_000 });
  t.after(() => other.close());
  let release!: () => void;
  const holding = store.withLock('k', () => new Promise<void>((r) => (release = r)));
  while (release === undefined) await new Promise((r) => setTimeout(r, 5));
  // Not listening yet: the first busy attempt starts the listener (and tries again at once, as a
  // release between that attempt and the LISTEN was not heard).
  await assert.rejects(other.withLock('k', async () => 'never', { timeoutMs: 2_000, signal: AbortSignal.timeout(100) }), code('LK_LOCK_TIMEOUT'));
  // Listening already: one attempt, then the wait (up to 250 ms, past the caller's 100 ms), with
  // no second read and claim while the holder works. The signal is looked at between attempts.
  const before = pgStoreCounters.busyPolls;
  await assert.rejects(other.withLock('k', async () => 'never', { timeoutMs: 2_000, signal: AbortSignal.timeout(100) }), code('LK_LOCK_TIMEOUT'));
  assert.equal(pgStoreCounters.busyPolls - before, 1, 'one attempt before the wait');
  release();
  await holding;
});

test('claims: a source write under a claim wakes the key\'s waiters at its commit, before the release (they read and serve it)', { skip }, async (t) => {
  const { store } = await schemaFor(t);
  const listener = new pg.Client({ connectionString: pgTestUrl() });
  listener.on('error', () => undefined);
  await listener.connect();
  t.after(() => listener.end());
  const heard: string[] = [];
  listener.on('notification', (m) => heard.push(m.payload ?? ''));
  const channel = new ClaimWakeups(store.target, { statementTimeoutMs: 1, lockTimeoutMs: 1, idleInTransactionMs: 1, connectTimeoutMs: 1 }).channel;
  await listener.query(`LISTEN "${channel}"`);
  await store.withLock('src', async (tx) => {
    await tx.write('src', grant('A1', 'R1'), 0);
    await until(() => heard.length === 1, 'the notification of the insert, inside the lock');
    const rec = await tx.read('src');
    await tx.write('src', grant('A2', 'R2'), rec!.version);
    await until(() => heard.length === 2, 'the notification of the update, inside the lock');
  });
  await until(() => heard.length === 3, 'the release');
  assert.deepEqual(heard, Array(3).fill(ClaimWakeups.digest('src')));
});

async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`still waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('every connection of the store carries the statement, lock and idle-in-transaction bounds (defaults, and as configured)', { skip }, async (t) => {
  const { url, store } = await schemaFor(t);
  assert.deepEqual(await store.connectionBounds(), { statementTimeout: '5s', lockTimeout: '3s', idleInTransactionSessionTimeout: '10s' });
  const tight = openPgStore(url, { timeouts: { statementTimeoutMs: 1_500, lockTimeoutMs: 700, idleInTransactionMs: 2_000 }, poolSize: 3 });
  t.after(() => tight.close());
  // Several connections at once (a pool of 3 busy together): each has the bounds.
  const all = await Promise.all(Array.from({ length: 6 }, () => tight.connectionBounds()));
  for (const b of all) assert.deepEqual(b, { statementTimeout: '1500ms', lockTimeout: '700ms', idleInTransactionSessionTimeout: '2s' });
});
