import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { openLatchkey, type Latchkey } from '../../../src/latchkey.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { methodRegistry } from '../../../src/methods/index.js';
import { MAX_TOKEN_LENGTH, PAT_EXPIRING_WITHIN_MS } from '../../../src/methods/token.js';
import { OAUTH_EXPIRING_WITHIN_MS } from '../../../src/methods/oauth.js';
import { makeHome, type TempHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';

const TOKEN_ENDPOINT = 'http://127.0.0.1:9/token'; // never called in these tests

async function profile(t: { after(fn: () => Promise<void>): void }, sources: Record<string, unknown>, env: NodeJS.ProcessEnv = {}): Promise<{ lk: Latchkey; h: TempHome; clock: TestClock; env: NodeJS.ProcessEnv }> {
  const h = await makeHome({ version: 1, sources });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const lk = await openLatchkey({ home: h.home, env, clock });
  t.after(() => lk.close());
  return { lk, h, clock, env };
}

async function methodOf(lk: Latchkey, source: string, name: string) {
  const auth = await lk.sourceAuth(source);
  const m = auth.methods.find((x) => x.name === name);
  assert.ok(m, `method ${name}`);
  return m;
}

test('token: default header is Authorization: Bearer <token>', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'ghp_abc123' });
  const m = await methodOf(lk, 'gh', 'token');
  assert.deepEqual(await m.available(), { ok: true });
  const auth = await m.authorize();
  assert.deepEqual(auth.headers, { Authorization: 'Bearer ghp_abc123' });
  assert.equal(m.rejectedAction, 'replace_token');
});

test('token: configurable header and scheme; empty scheme sends the bare token', async (t) => {
  const { lk } = await profile(
    t,
    {
      apikey: { token: { secret: 'env:K', header: 'X-API-Key', scheme: '' } },
      gh: { token: { secret: 'env:K', scheme: 'token' } },
    },
    { K: 'k-123' },
  );
  assert.deepEqual((await (await methodOf(lk, 'apikey', 'token')).authorize()).headers, { 'X-API-Key': 'k-123' });
  assert.deepEqual((await (await methodOf(lk, 'gh', 'token')).authorize()).headers, { Authorization: 'token k-123' });
});

test('token: surrounding whitespace (a trailing newline) is trimmed', async (t) => {
  const { lk } = await profile(t, { a: { token: { secret: 'env:K' } } }, { K: '  tok-1\n' });
  assert.deepEqual((await (await methodOf(lk, 'a', 'token')).authorize()).headers, { Authorization: 'Bearer tok-1' });
});

test('token: a missing secret makes the method unavailable (replace_token), naming the reference only', async (t) => {
  const { lk } = await profile(t, { a: { token: { secret: 'env:MISSING_TOKEN' } } });
  const av = await (await methodOf(lk, 'a', 'token')).available();
  assert.equal(av.ok, false);
  assert.ok(!av.ok && av.operatorAction === 'replace_token');
  assert.match(!av.ok ? av.reason : '', /env:MISSING_TOKEN/);
});

test('token: a hostile value (CR/LF header injection) is refused and never echoed', async (t) => {
  const hostile = 'abc\r\nX-Injected: yes';
  const { lk } = await profile(t, { a: { token: { secret: 'env:K' } } }, { K: hostile });
  const m = await methodOf(lk, 'a', 'token');
  const av = await m.available();
  assert.equal(av.ok, false);
  assert.ok(!av.ok && av.operatorAction === 'replace_token');
  assert.ok(!av.ok && !av.reason.includes('X-Injected'), 'the value is not in the message');
  await assert.rejects(m.authorize(), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.operatorAction, 'replace_token');
    assert.ok(!err.message.includes('abc'));
    return true;
  });
});

test('token: an oversized value is refused (a whole file behind a reference, not a token)', async (t) => {
  const dir = await makeHome();
  t.after(() => dir.cleanup());
  const file = join(dir.home, 'token.txt');
  await writeFile(file, 'x'.repeat(MAX_TOKEN_LENGTH + 1));
  const { lk } = await profile(t, { a: { token: { secret: `file:${file}` } } });
  const av = await (await methodOf(lk, 'a', 'token')).available();
  assert.equal(av.ok, false);
  assert.match(!av.ok ? av.reason : '', new RegExp(`more than the ${MAX_TOKEN_LENGTH}`));
  // Exactly the limit is fine.
  await writeFile(file, 'y'.repeat(MAX_TOKEN_LENGTH));
  assert.deepEqual(await (await methodOf(lk, 'a', 'token')).available(), { ok: true });
});

test('token: an invalid scheme in the config is a config error when the source is used', async (t) => {
  const { lk } = await profile(t, { a: { token: { secret: 'env:K', scheme: 'Bearer\r\nX-Evil: 1' } } }, { K: 'k' });
  await assert.rejects(lk.sourceAuth('a'), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_CONFIG_INVALID' && /token\.scheme/.test(err.message));
});

test('token: recover() re-reads the reference: true only when the operator replaced the token', async (t) => {
  const dir = await makeHome();
  t.after(() => dir.cleanup());
  const file = join(dir.home, 'token.txt');
  await writeFile(file, 'old-token\n');
  const { lk } = await profile(t, { a: { token: { secret: `file:${file}` } } });
  const m = await methodOf(lk, 'a', 'token');
  const used = await m.authorize();
  assert.equal(await m.recover(used), false, 'same value: nothing to retry with');
  await writeFile(file, 'new-token\n');
  assert.equal(await m.recover(used), true);
  assert.deepEqual((await m.authorize()).headers, { Authorization: 'Bearer new-token' });
});

test('token: expiry from token.expiresAt (expiring within 7 days; past = expired)', async (t) => {
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  const { lk } = await profile(
    t,
    {
      soon: { token: { secret: 'env:K', expiresAt: iso(now + 2 * 86_400_000) } },
      later: { token: { secret: 'env:K', expiresAt: iso(now + PAT_EXPIRING_WITHIN_MS + 86_400_000) } },
      past: { token: { secret: 'env:K', expiresAt: iso(now - 1000) } },
      none: { token: { secret: 'env:K' } },
    },
    { K: 'k' },
  );
  const soon = await (await methodOf(lk, 'soon', 'token')).expiry!();
  assert.equal(soon.expiringSoon, true);
  assert.equal(soon.operatorAction, 'replace_token');
  assert.equal((await (await methodOf(lk, 'later', 'token')).expiry!()).expiringSoon, false);
  const past = await (await methodOf(lk, 'past', 'token')).expiry!();
  assert.equal(past.expiringSoon, true);
  assert.match(past.note ?? '', /expired/);
  assert.deepEqual(await (await methodOf(lk, 'none', 'token')).expiry!(), { expiresAt: null, expiringSoon: false });
});

test('token: fixFor names where the new token goes', async (t) => {
  const { lk } = await profile(t, { e: { token: { secret: 'env:GH_TOKEN' } }, k: { token: { secret: 'keyring:latchkey/gh' } }, f: { token: { secret: 'file:/run/secrets/gh' } } });
  assert.match((await methodOf(lk, 'e', 'token')).fixFor!('replace_token')!, /^export GH_TOKEN=<the new value>/);
  assert.match((await methodOf(lk, 'k', 'token')).fixFor!('replace_token')!, /latchkey secrets set keyring:latchkey\/gh/);
  assert.equal((await methodOf(lk, 'f', 'token')).fixFor!('replace_token')!, 'latchkey secrets set file:/run/secrets/gh', 'a command, not prose');
});

const oauthSource = { oauth: { tokenEndpoint: TOKEN_ENDPOINT, clientId: 'c' } };

test('oauth: no grant -> unavailable, relogin', async (t) => {
  const { lk } = await profile(t, { o: oauthSource });
  const av = await (await methodOf(lk, 'o', 'oauth')).available();
  assert.ok(!av.ok && av.operatorAction === 'relogin');
});

test('oauth: a grant marked revoked -> unavailable, reauthorize (no network)', async (t) => {
  const { lk, h } = await profile(t, { o: oauthSource });
  await lk.installGrant('o', { access_token: 'at', refresh_token: 'rt', expires_in: 3600 });
  const doc = JSON.parse(await (await import('node:fs/promises')).readFile(h.storePath, 'utf8'));
  doc.sources.o.grant.revoked = { at: Date.now(), reason: 'invalid_grant' };
  await writeFile(h.storePath, JSON.stringify(doc));
  const av = await (await methodOf(lk, 'o', 'oauth')).available();
  assert.ok(!av.ok && av.operatorAction === 'reauthorize', inspect(av));
});

test('oauth: expired access token without refresh token -> unavailable, relogin; with one -> available', async (t) => {
  const { lk, clock } = await profile(t, { o: oauthSource, r: oauthSource });
  await lk.installGrant('o', { access_token: 'at', expires_in: 60 });
  await lk.installGrant('r', { access_token: 'at', refresh_token: 'rt', expires_in: 60 });
  clock.advance(61_000);
  const o = await (await methodOf(lk, 'o', 'oauth')).available();
  assert.ok(!o.ok && o.operatorAction === 'relogin');
  assert.deepEqual(await (await methodOf(lk, 'r', 'oauth')).available(), { ok: true });
});

test('oauth: authorize() sends the fresh access token as Bearer; expiry warns only without refresh token', async (t) => {
  const { lk } = await profile(t, { o: oauthSource, r: oauthSource });
  await lk.installGrant('o', { access_token: 'at-o', expires_in: 1800 });
  await lk.installGrant('r', { access_token: 'at-r', refresh_token: 'rt', expires_in: 1800 });
  const o = await methodOf(lk, 'o', 'oauth');
  assert.deepEqual((await o.authorize()).headers, { Authorization: 'Bearer at-o' });
  const exp = await o.expiry!();
  assert.equal(exp.expiringSoon, true, `within ${OAUTH_EXPIRING_WITHIN_MS} ms and no refresh token`);
  assert.equal(exp.operatorAction, 'relogin');
  assert.equal((await (await methodOf(lk, 'r', 'oauth')).expiry!()).expiringSoon, false);
});

test('registry: a session method without its module is unavailable ("session method not installed")', async (t) => {
  const installed = methodRegistry.session;
  methodRegistry.session = undefined;
  t.after(() => {
    methodRegistry.session = installed;
  });
  const { lk } = await profile(t, { hs: { session: { origin: 'https://app.example.com' }, token: { secret: 'env:K' }, methods: ['session', 'token'] } }, { K: 'k' });
  const auth = await lk.sourceAuth('hs');
  assert.deepEqual(
    auth.methods.map((m) => m.name),
    ['session', 'token'],
  );
  const av = await auth.methods[0]!.available();
  assert.ok(!av.ok && av.reason === 'session method not installed' && av.operatorAction === 'renew_session');
  assert.equal(await lk.authPath('hs'), 'token');
});

test('authPath: first available method; the preferred one is preferred again once it is back (no sticky fallback)', async (t) => {
  const env: NodeJS.ProcessEnv = {};
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' }, oauth: oauthSource.oauth, methods: ['token', 'oauth'] } }, env);
  assert.equal(await lk.authPath('s'), null, 'nothing available');
  await lk.installGrant('s', { access_token: 'at', refresh_token: 'rt', expires_in: 3600 });
  assert.equal(await lk.authPath('s'), 'oauth', 'falls back to oauth');
  env.PAT = 'pat-1';
  assert.equal(await lk.authPath('s'), 'token', 'back to the preferred method');
  delete env.PAT;
  assert.equal(await lk.authPath('s'), 'oauth');
});

test('config: a methods entry whose section is missing is a config error naming both keys', async (t) => {
  const h = await makeHome({ version: 1, sources: { hs: { token: { secret: 'env:K' }, methods: ['token', 'session'] } } });
  t.after(() => h.cleanup());
  await assert.rejects(openLatchkey({ home: h.home, env: {} }), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, 'LK_CONFIG_INVALID');
    assert.match(err.message, /sources\.hs\.methods lists "session" but sources\.hs\.session is not configured/);
    assert.ok(err.message.includes(h.configPath), 'names the file');
    return true;
  });
});

test('config: an unknown method name is rejected by the schema', async (t) => {
  const h = await makeHome({ version: 1, sources: { a: { token: { secret: 'env:K' }, methods: ['token', 'cookie'] } } });
  t.after(() => h.cleanup());
  await assert.rejects(openLatchkey({ home: h.home, env: {} }), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_CONFIG_INVALID' && /methods/.test(err.message));
});
