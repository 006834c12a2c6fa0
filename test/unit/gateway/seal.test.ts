import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { test } from 'node:test';
import { randomBytes } from 'node:crypto';
import { Secret } from '../../../src/core/secret.js';
import { loadOrCreateKeyFile, SealKey, sealKeyFromSecret } from '../../../src/gateway/seal.js';

test('sealed values open only with the same key and purpose; tampering, truncation and junk do not open', () => {
  const key = new SealKey(randomBytes(32));
  const sealed = key.seal('{"s":"abc","g":1}', 'at');
  assert.match(sealed, /^v1\.[A-Za-z0-9_-]+$/);
  assert.equal(key.open(sealed, 'at'), '{"s":"abc","g":1}');
  assert.equal(key.open(sealed, 'rt'), undefined, 'another purpose');
  assert.equal(new SealKey(randomBytes(32)).open(sealed, 'at'), undefined, 'another key');
  const flipped = sealed.slice(0, -2) + (sealed.endsWith('AA') ? 'BB' : 'AA');
  assert.equal(key.open(flipped, 'at'), undefined);
  for (const junk of ['', 'v1.', 'v1.!!!', 'v2.abc', sealed.slice(0, 20), `v1.${'A'.repeat(70_000)}`]) assert.equal(key.open(junk, 'at'), undefined);
  assert.notEqual(key.seal('x', 'at'), key.seal('x', 'at'), 'a fresh IV each time');
  assert.equal(String(key), '[redacted]');
  assert.equal(inspect(key), '[redacted]');
  assert.equal(JSON.stringify({ key }), '{"key":"[redacted]"}');
});

test('a key from a secret: 32 bytes as base64, base64url or hex; anything else is refused by name', () => {
  const raw = randomBytes(32);
  for (const text of [raw.toString('base64'), raw.toString('base64url'), raw.toString('hex')]) {
    const k = sealKeyFromSecret(new Secret(text));
    assert.equal(k.open(new SealKey(raw).seal('x', 'p'), 'p'), 'x');
  }
  assert.throws(() => sealKeyFromSecret(new Secret('short')), /32 random bytes/);
});

test('the key file: created 0600 once; eight processes starting at the same instant all end up with the same key', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'lk-key-'));
  try {
    const home = join(dir, 'home');
    const script = fileURLToPath(new URL('./seal-child.js', import.meta.url));
    const outs = await Promise.all(
      Array.from({ length: 8 }, () =>
        new Promise<string>((resolve, reject) => {
          const c = spawn(process.execPath, [script, home], { stdio: ['ignore', 'pipe', 'inherit'] });
          let out = '';
          c.stdout.on('data', (d: Buffer) => (out += d.toString()));
          c.on('exit', (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`child exited ${code}`))));
        }),
      ),
    );
    const st = await stat(join(home, 'gateway.key'));
    assert.equal(st.mode & 0o777, 0o600);
    const key = await loadOrCreateKeyFile(home);
    for (const out of outs) assert.equal(key.open(out, 'probe'), 'same', 'every process sealed with the one key on disk');
    assert.equal((await readFile(join(home, 'gateway.key'), 'utf8')).trim().length, 43);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
