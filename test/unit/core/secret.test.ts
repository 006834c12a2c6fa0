import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect, format } from 'node:util';
import { Secret } from '../../../src/core/secret.js';
import { LatchkeyError } from '../../../src/core/errors.js';

const CANARY = 'canary-7f3a9c-secret-value';

test('a Secret never prints its value', () => {
  const s = new Secret(CANARY);
  const renderings = [String(s), `${s}`, JSON.stringify({ s }), inspect(s), inspect({ nested: { s } }), format('%s %o %O %j', s, s, s, s), s + ''];
  for (const r of renderings) assert.ok(!r.includes(CANARY), `leaked in: ${r}`);
  assert.equal(s.reveal(), CANARY);
});

test('Secret.equals compares values without exposing them', () => {
  assert.ok(new Secret('abc').equals(new Secret('abc')));
  assert.ok(!new Secret('abc').equals(new Secret('abd')));
  assert.ok(!new Secret('abc').equals(undefined));
});

test('an error built around a Secret does not leak it', () => {
  const s = new Secret(CANARY);
  const err = new LatchkeyError('LK_UNAUTHORIZED', `token ${s} rejected`);
  assert.ok(!err.message.includes(CANARY));
  assert.ok(!String(err.stack).includes(CANARY));
});

test('records, grants, errors with causes and a working Latchkey never render a secret (inspect, JSON, format)', async (t) => {
  const { makeHome } = await import('../../helpers/home.js');
  const { openLatchkey } = await import('../../../src/latchkey.js');
  const { FileStore } = await import('../../../src/store/file-store.js');
  const h = await makeHome({ version: 1, sources: { api: { oauth: { tokenEndpoint: 'https://idp.example/token', clientId: 'c', clientSecret: 'env:CS' } }, pat: { token: { secret: 'env:PAT' } } } });
  t.after(() => h.cleanup());
  const lk = await openLatchkey({ home: h.home, env: { CS: `${CANARY}-cs`, PAT: `${CANARY}-pat` } });
  await lk.installGrant('api', { access_token: `${CANARY}-at`, refresh_token: `${CANARY}-rt`, expires_in: 3600 });
  assert.equal(await lk.token('api'), `${CANARY}-at`);
  assert.equal(await lk.token('pat'), `${CANARY}-pat`);
  const rec = await new FileStore({ path: h.storePath }).read('api');
  const wrapped = new LatchkeyError('LK_STORE_IO', 'outer', { cause: new LatchkeyError('LK_REFRESH_FAILED', 'inner', { cause: rec }) });
  const renderings = [inspect(rec, { depth: 10, showHidden: true }), JSON.stringify(rec), format('%o %O %j', rec, rec?.grant, rec), inspect(lk, { depth: 6 }), inspect({ lk }, { depth: 6 }), JSON.stringify({ lk }), inspect(lk.engine, { depth: 6, showHidden: true }), inspect(wrapped, { depth: 10 }), JSON.stringify(await lk.status())];
  for (const r of renderings) assert.ok(!r.includes(CANARY), `leaked in: ${r.slice(0, 400)}`);
});
