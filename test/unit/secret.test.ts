import { test } from 'node:test';
import assert from 'node:assert/strict';
import { inspect, format } from 'node:util';
import { Secret } from '../../src/secret.js';
import { LatchkeyError } from '../../src/errors.js';

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
