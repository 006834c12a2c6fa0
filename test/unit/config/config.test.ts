import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { loadConfig } from '../../../src/config/load.js';
import { resolveSecretRef } from '../../../src/config/secret-ref.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { makeHome } from '../../helpers/home.js';

async function configError(config: unknown): Promise<LatchkeyError> {
  const h = await makeHome(config);
  try {
    await loadConfig(h.configPath);
  } catch (err) {
    return err as LatchkeyError;
  } finally {
    await h.cleanup();
  }
  throw new Error('expected an error');
}

test('a missing config says where and what to run', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  await assert.rejects(loadConfig(h.configPath), (e: LatchkeyError) => e.code === 'LK_CONFIG_MISSING' && e.message.includes(h.configPath) && e.message.includes('latchkey init'));
});

test('malformed JSON names the file', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  await writeFile(h.configPath, '{ "sources": ');
  await assert.rejects(loadConfig(h.configPath), (e: LatchkeyError) => e.code === 'LK_CONFIG_INVALID' && e.message.includes(h.configPath) && e.exitCode === 1);
});

test('schema errors name the field path and what was expected', async () => {
  let e = await configError({ sources: { hub: { oauth: { clientId: 'x', tokenEndpoint: 'not a url' } } } });
  assert.match(e.message, /sources\.hub\.oauth\.tokenEndpoint/);
  e = await configError({ sources: { hub: { token: { secret: 'ghp_rawsecretvalue' } } } });
  assert.match(e.message, /sources\.hub\.token\.secret: expected a secret reference/);
  assert.ok(!e.message.includes('ghp_rawsecretvalue'), 'the raw value is not echoed');
  e = await configError({ sources: { hub: { tokn: {} } } });
  assert.match(e.message, /sources\.hub\.tokn: unknown key/);
  e = await configError({ sources: { hub: { methods: ['oauth'], token: { secret: 'env:X' } } } });
  assert.match(e.message, /methods lists "oauth" but sources\.hub\.oauth is not configured/);
  e = await configError({ sources: { hub: { oauth: { clientId: 'x' } } } });
  assert.match(e.message, /needs "tokenEndpoint" or "issuer"/);
  e = await configError({ sources: { 'bad name': { token: { secret: 'env:X' } } } });
  assert.match(e.message, /source names are letters/);
  e = await configError({ keeper: { perHostConcurrency: 0 } });
  assert.match(e.message, /keeper\.perHostConcurrency/);
  e = await configError({ store: { url: 'postgres://u:hunter2@db/x' } });
  assert.match(e.message, /store\.url: expected a secret reference/);
  assert.ok(!e.message.includes('hunter2'), 'the password in a raw URL is not echoed');
  e = await configError({ gateway: { port: 70000 } });
  assert.match(e.message, /gateway\.port/);
  e = await configError({ gateway: { loginRateLimit: { perClientBurst: 0 } } });
  assert.match(e.message, /gateway\.loginRateLimit\.perClientBurst/);
  e = await configError({ gateway: { loginRateLimit: { perMinute: 5 } } });
  assert.match(e.message, /gateway\.loginRateLimit\.perMinute: unknown key/);
});

test('a config that passed once is trusted by its hash; an edited one is validated again', async (t) => {
  const h = await makeHome({ sources: { a: { token: { secret: 'env:A' } } } });
  t.after(() => h.cleanup());
  await loadConfig(h.configPath);
  const again = await loadConfig(h.configPath);
  assert.ok(again.sources.has('a'));
  await writeFile(h.configPath, JSON.stringify({ sources: { a: { token: { secret: 'raw' } } } }));
  await assert.rejects(loadConfig(h.configPath), (e: LatchkeyError) => e.code === 'LK_CONFIG_INVALID');
  assert.equal(await readFile(h.configPath, 'utf8'), JSON.stringify({ sources: { a: { token: { secret: 'raw' } } } }));
});

test('secret references: env, file, and clear errors that name the reference only', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  assert.equal((await resolveSecretRef('env:LK_T', { LK_T: 'v1' })).reveal(), 'v1');
  await assert.rejects(resolveSecretRef('env:LK_MISSING', {}), (e: LatchkeyError) => e.code === 'LK_SECRET_UNRESOLVED' && e.message.includes('LK_MISSING'));
  const f = `${h.home}/tok`;
  await writeFile(f, 'file-secret\n', { mode: 0o600 });
  assert.equal((await resolveSecretRef(`file:${f}`)).reveal(), 'file-secret');
  await assert.rejects(resolveSecretRef(`file:${h.home}/nope`), (e: LatchkeyError) => e.message.includes(`${h.home}/nope`) && e.message.includes('ENOENT'));
  await assert.rejects(resolveSecretRef('sk_live_verysecret'), (e: LatchkeyError) => !e.message.includes('sk_live_verysecret'));
});

test('an array where an object belongs is an error naming the path, not "no sources"', async () => {
  for (const [config, path] of [
    [[], '(top level)'],
    [{ sources: [] }, 'sources'],
    [{ sources: { a: [] } }, 'sources.a'],
  ] as const) {
    const e = await configError(config);
    assert.equal(e.code, 'LK_CONFIG_INVALID');
    assert.ok(e.message.includes(`${path}: expected an object, got an array`), e.message);
  }
  // Sources written as a list of named objects: the first element's keys are already wrong.
  const list = await configError({ sources: [{ name: 'a', token: { secret: 'env:X' } }] });
  assert.match(list.message, /sources\.0\.name: unknown key/);
});

test('a config saved with a byte-order mark loads (and the stamped fast route reads it alike)', async (t) => {
  const h = await makeHome();
  t.after(() => h.cleanup());
  await writeFile(h.configPath, `\ufeff${JSON.stringify({ version: 1, sources: { a: { token: { secret: 'env:A' } } } })}`);
  assert.ok((await loadConfig(h.configPath)).sources.has('a'));
  assert.ok((await loadConfig(h.configPath)).sources.has('a'), 'again, through the stamp');
});
