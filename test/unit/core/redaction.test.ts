import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { inspect } from 'node:util';
import { parseStoreDocument } from '../../../src/store/store-document.js';
import { loadConfig } from '../../../src/config/load.js';
import { FileStore } from '../../../src/store/file-store.js';
import { jsonSyntaxWhere, LatchkeyError } from '../../../src/core/errors.js';
import { Secret } from '../../../src/core/secret.js';
import { sanitizeRemoteText } from '../../../src/core/sanitize.js';
import { SealKey } from '../../../src/gateway/seal.js';
import { parsePgUrl } from '../../../src/store/pg/url.js';
import { makeHome } from '../../helpers/home.js';

const CANARY = 'CANARYcanary0123456789secretvalue';

/** Store texts whose JSON error V8 would describe by quoting the text around a secret. */
const corruptTexts = [
  `{"format":"latchkey-store","formatVersion":1,"sources":{"a":{"version":1,"grant":{"accessToken":"x","refreshToken": ${CANARY}}}}}`,
  `{"format":"latchkey-store","formatVersion":1,"sources":{"a":{"version":1,"grant":{"accessToken":"${CANARY}" ${CANARY}}}}}`,
  `{"refreshToken":"${CANARY}"}${CANARY}`,
  `{"refreshToken":"${CANARY}`,
  `{"refreshToken":"${CANARY}\u0001"}`,
];

test('a corrupt store is described by line and column, never by quoting its text', async (t) => {
  for (const text of corruptTexts) {
    assert.throws(
      () => parseStoreDocument(text, '/x/store.json'),
      (e: LatchkeyError) => e.code === 'LK_STORE_CORRUPT' && e.message.includes('/x/store.json') && !e.message.includes('CANARY') && !e.message.includes(CANARY.slice(6, 16)),
    );
  }
  const h = await makeHome();
  t.after(() => h.cleanup());
  await writeFile(h.storePath, corruptTexts[1]!, { mode: 0o600 });
  await assert.rejects(new FileStore({ path: h.storePath }).read('a'), (e: LatchkeyError) => /line 1, column \d+/.test(e.message) && !e.message.includes('CANARY'));
});

test('a config with broken JSON is described by position, not by quoting a pasted secret', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  await writeFile(h.configPath, `{\n  "sources": {\n    "a": { "token": { "secret": ${CANARY} } }\n  }\n}\n`);
  await assert.rejects(loadConfig(h.configPath), (e: LatchkeyError) => e.code === 'LK_CONFIG_INVALID' && e.message.includes(h.configPath) && !e.message.includes('CANARY'));
});

test('jsonSyntaxWhere: line and column from the position; truncation said as such', () => {
  const text = '{\n  "a": 1,\n  "b": x\n}';
  let err: unknown;
  try {
    JSON.parse(text);
  } catch (e) {
    err = e;
  }
  assert.match(jsonSyntaxWhere(err, text), /^(at line 3, column \d+|at an unexpected character)$/);
  try {
    JSON.parse('{"a":');
  } catch (e) {
    assert.equal(jsonSyntaxWhere(e, '{"a":'), 'it ends too early (truncated?)');
  }
});

test('sanitizeRemoteText removes every occurrence of each held secret, and only those', () => {
  const held = [new Secret(CANARY), new Secret('client-secret-value'), new Secret('abc')];
  const text = `refresh token ${CANARY} is unknown (client client-secret-value; again ${CANARY})`;
  const out = sanitizeRemoteText(text, 1000);
  assert.equal(out, 'refresh token [redacted] is unknown (client [redacted]; again [redacted])');
  assert.equal(sanitizeRemoteText('an ordinary abc word'), 'an ordinary abc word', 'too short to be a token: left alone');
  assert.equal(held.length, 3);
});

test('every holder of a secret (Secret, the gateway seal key, a store URL) prints [redacted] whichever way it is printed', () => {
  const url = parsePgUrl(`postgres://app:${CANARY}@db.internal:5432/lk`).connectionString;
  const holders = [new Secret(CANARY), new SealKey(Buffer.alloc(32, 7)), url];
  for (const h of holders) {
    const printed = [String(h), `${h}`, '' + h, JSON.stringify({ h }), inspect(h), inspect({ nested: [h] }), new Error(`failed with ${h}`).message];
    for (const p of printed) {
      assert.ok(p.includes('[redacted]'), `${h.constructor.name}: ${p}`);
      assert.ok(!p.includes(CANARY) && !p.includes(CANARY.slice(0, 10)), `${h.constructor.name} leaked: ${p}`);
    }
  }
  assert.ok(url.reveal().includes(CANARY), 'the URL still reveals its password to pg');
});
