import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { openLatchkey, type Latchkey } from '../../../src/latchkey.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { UnauthorizedError } from '../../../src/client/fetch.js';
import { REJECTION_HOLD_MS } from '../../../src/client/auth-path.js';
import { makeHome, type TempHome } from '../../helpers/home.js';
import { TestClock } from '../../helpers/lk.js';
import { bearerHandler, send, startLoopbackApi, type LoopbackApi } from '../../helpers/loopback-api.js';

let api: LoopbackApi;
before(async () => {
  api = await startLoopbackApi();
});
after(async () => {
  await api.close();
});

interface Ctx {
  lk: Latchkey;
  h: TempHome;
  clock: TestClock;
  env: NodeJS.ProcessEnv;
}

async function profile(t: { after(fn: () => Promise<void>): void }, sources: Record<string, unknown>, env: NodeJS.ProcessEnv = {}, fetchImpl?: typeof fetch): Promise<Ctx> {
  const h = await makeHome({ version: 1, sources });
  t.after(() => h.cleanup());
  const clock = new TestClock();
  const lk = await openLatchkey({ home: h.home, env, clock, ...(fetchImpl ? { fetch: fetchImpl } : {}) });
  t.after(() => lk.close());
  api.requests.length = 0;
  return { lk, h, clock, env };
}

const oauthAt = (name = 'o') => ({ [name]: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'c' } } });

test('adds the auth path\'s header; keeps the caller\'s headers; replaces a caller Authorization', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'tok-1' });
  api.handler = bearerHandler(['tok-1']);
  const res = await lk.fetch('gh', api.url('/user?page=1'), { headers: { 'x-trace': 'abc', authorization: 'Bearer caller' } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { ok: true });
  assert.equal(api.requests.length, 1);
  assert.equal(api.requests[0]!.headers.authorization, 'Bearer tok-1');
  assert.equal(api.requests[0]!.headers['x-trace'], 'abc');
  assert.equal(api.requests[0]!.path, '/user?page=1');
});

test('a server that always answers 401 sees exactly two requests per fetch, then LK_UNAUTHORIZED with the action', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH_TOKEN' } } }, { GH_TOKEN: 'dead-token' });
  api.handler = (_req, res) => send(res, 401, '{"message":"Bad credentials"}');
  for (let call = 1; call <= 3; call++) {
    const before = api.requests.length;
    await assert.rejects(lk.fetch('gh', api.url('/user?access_token=leak')), (err: unknown) => {
      assert.ok(err instanceof UnauthorizedError);
      assert.ok(err instanceof LatchkeyError);
      assert.equal(err.code, 'LK_UNAUTHORIZED');
      assert.equal(err.operatorAction, 'replace_token');
      assert.equal(err.exitCode, 4);
      assert.equal(err.status, 401);
      assert.equal(err.authPath, 'token');
      assert.match(err.fix ?? '', /^export GH_TOKEN=<the new value>/);
      assert.ok(!err.message.includes('dead-token'), 'no secret in the message');
      assert.ok(!err.message.includes('leak'), 'no query string in the message');
      return true;
    });
    assert.equal(api.requests.length - before, 2, `call ${call}: exactly two requests`);
  }
});

test('a transient 401 (then 200) is ridden over by the one retry', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'tok' });
  let n = 0;
  api.handler = (_req, res) => (++n === 1 ? send(res, 401) : send(res, 200, '{"ok":true}'));
  const res = await lk.fetch('gh', api.url('/x'));
  assert.equal(res.status, 200);
  assert.equal(api.requests.length, 2);
});

test('other statuses are returned as they are, with one request (403, 404, 500)', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'tok' });
  for (const status of [403, 404, 500]) {
    api.requests.length = 0;
    api.handler = (_req, res) => send(res, status, '{}');
    const res = await lk.fetch('gh', api.url('/x'));
    assert.equal(res.status, status);
    await res.arrayBuffer();
    assert.equal(api.requests.length, 1);
  }
});

test('token recovery re-reads the secret: a token replaced by the operator is used by the retry', async (t) => {
  const dir = await makeHome();
  t.after(() => dir.cleanup());
  const file = join(dir.home, 'pat');
  await writeFile(file, 'old-pat\n');
  const { lk } = await profile(t, { gh: { token: { secret: `file:${file}` } } });
  api.handler = bearerHandler(['old-pat']);
  assert.equal((await lk.fetch('gh', api.url('/x'))).status, 200);
  await writeFile(file, 'new-pat\n'); // rotated; the old one now fails
  api.handler = bearerHandler(['new-pat']);
  api.requests.length = 0;
  const res = await lk.fetch('gh', api.url('/x'));
  assert.equal(res.status, 200);
  assert.deepEqual(
    api.requests.map((r) => r.headers.authorization),
    ['Bearer old-pat', 'Bearer new-pat'],
  );
});

test('a string body is replayed on the retry', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'tok' });
  let n = 0;
  api.handler = (_req, res) => (++n === 1 ? send(res, 401) : send(res, 201, '{}'));
  const res = await lk.fetch('gh', api.url('/items'), { method: 'POST', body: '{"name":"x"}', headers: { 'content-type': 'application/json' } });
  assert.equal(res.status, 201);
  assert.deepEqual(
    api.requests.map((r) => [r.method, r.body]),
    [
      ['POST', '{"name":"x"}'],
      ['POST', '{"name":"x"}'],
    ],
  );
});

test('a Request input with a body is buffered and replayed', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'tok' });
  let n = 0;
  api.handler = (_req, res) => (++n === 1 ? send(res, 401) : send(res, 200, '{}'));
  const req = new Request(api.url('/items'), { method: 'PUT', body: 'payload-1', headers: { 'x-a': '1' } });
  const res = await lk.fetch('gh', req);
  assert.equal(res.status, 200);
  assert.deepEqual(
    api.requests.map((r) => [r.method, r.body, r.headers['x-a'], r.headers.authorization]),
    [
      ['PUT', 'payload-1', '1', 'Bearer tok'],
      ['PUT', 'payload-1', '1', 'Bearer tok'],
    ],
  );
});

test('a ReadableStream body is sent once and never retried (typed error, one request)', async (t) => {
  const { lk } = await profile(t, { gh: { token: { secret: 'env:GH' } } }, { GH: 'tok' });
  api.handler = (_req, res) => send(res, 401);
  const body = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(new TextEncoder().encode('streamed'));
      c.close();
    },
  });
  await assert.rejects(lk.fetch('gh', api.url('/upload'), { method: 'POST', body, duplex: 'half' } as RequestInit), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, 'LK_UNAUTHORIZED');
    assert.match(err.message, /body is a stream/);
    return true;
  });
  assert.equal(api.requests.length, 1);
  assert.equal(api.requests[0]!.body, 'streamed');
});

test('falls back to the next method when the preferred is unavailable, and back when it returns', async (t) => {
  const { lk, env } = await profile(t, { s: { token: { secret: 'env:PAT' }, ...oauthAt('x').x, methods: ['token', 'oauth'] } }, {});
  await lk.installGrant('s', { access_token: 'oauth-at', refresh_token: 'rt', expires_in: 3600 });
  api.handler = bearerHandler(['oauth-at', 'pat-1']);
  assert.equal((await lk.fetch('s', api.url('/a'))).status, 200);
  assert.equal(api.requests.at(-1)!.headers.authorization, 'Bearer oauth-at');
  env.PAT = 'pat-1';
  assert.equal((await lk.fetch('s', api.url('/a'))).status, 200);
  assert.equal(api.requests.at(-1)!.headers.authorization, 'Bearer pat-1', 'preferred again once available');
  assert.equal(api.requests.length, 2);
});

test('a rejected preferred credential: the retry uses the next method; later calls skip it until it changes or the hold ends', async (t) => {
  const { lk, env, clock } = await profile(t, { s: { token: { secret: 'env:PAT' }, ...oauthAt('x').x, methods: ['token', 'oauth'] } }, { PAT: 'expired-pat' });
  await lk.installGrant('s', { access_token: 'oauth-at', refresh_token: 'rt', expires_in: 24 * 3600 });
  api.handler = bearerHandler(['oauth-at', 'new-pat']);
  assert.equal((await lk.fetch('s', api.url('/a'))).status, 200);
  assert.deepEqual(
    api.requests.map((r) => r.headers.authorization),
    ['Bearer expired-pat', 'Bearer oauth-at'],
    'one retry, with the fallback',
  );
  assert.equal(await lk.authPath('s'), 'oauth');
  api.requests.length = 0;
  assert.equal((await lk.fetch('s', api.url('/a'))).status, 200);
  assert.deepEqual(
    api.requests.map((r) => r.headers.authorization),
    ['Bearer oauth-at'],
    'the rejected PAT is skipped',
  );
  // The operator replaces the PAT: it is preferred again at once (its credential changed).
  env.PAT = 'new-pat';
  api.requests.length = 0;
  await lk.fetch('s', api.url('/a'));
  assert.deepEqual(
    api.requests.map((r) => r.headers.authorization),
    ['Bearer new-pat'],
  );
  // Rejected again; after the hold the preferred method is tried again (no sticky fallback).
  env.PAT = 'expired-pat';
  await lk.fetch('s', api.url('/a'));
  clock.advance(REJECTION_HOLD_MS + 1);
  api.requests.length = 0;
  await lk.fetch('s', api.url('/a'));
  assert.equal(api.requests[0]!.headers.authorization, 'Bearer expired-pat', 'tried again after the hold');
});

test('no usable method: a typed error naming every method\'s problem, no request', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT_MISSING' }, ...oauthAt('x').x, methods: ['token', 'oauth'] } });
  await assert.rejects(lk.fetch('s', api.url('/a')), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.operatorAction, 'replace_token');
    assert.equal(err.exitCode, 4);
    assert.match(err.message, /token: .*PAT_MISSING/);
    assert.match(err.message, /oauth: no grant stored/);
    return true;
  });
  assert.equal(api.requests.length, 0);
});

test('a hostile token value is never sent', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' } } }, { PAT: 'x\r\nX-Injected: 1' });
  await assert.rejects(lk.fetch('s', api.url('/a')), (err: unknown) => err instanceof LatchkeyError && err.operatorAction === 'replace_token' && !err.message.includes('Injected'));
  assert.equal(api.requests.length, 0);
});

test('credentials are refused over plain http to a non-loopback host, and for non-http URLs', async (t) => {
  const calls: string[] = [];
  const spy = (async (input: string | URL | Request) => {
    calls.push(String(input));
    return new Response('{}');
  }) as typeof fetch;
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' } } }, { PAT: 'tok' }, spy);
  await assert.rejects(lk.fetch('s', 'http://api.example.com/x'), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_INSECURE_ENDPOINT');
  await assert.rejects(lk.fetch('s', 'file:///etc/passwd'), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_USAGE');
  await assert.rejects(lk.fetch('s', 'not a url'), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_USAGE');
  assert.deepEqual(calls, []);
  await lk.fetch('s', 'https://api.example.com/x');
  await lk.fetch('s', 'http://localhost:1/x');
  assert.equal(calls.length, 2);
});

test('unknown source -> LK_UNKNOWN_SOURCE', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' } } }, { PAT: 'tok' });
  await assert.rejects(lk.fetch('nope', api.url('/a')), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_UNKNOWN_SOURCE');
});

test('redirects: same origin keeps the credentials; another origin never receives them', async (t) => {
  const other = await startLoopbackApi((_req, res) => send(res, 200, '{"other":true}'), 'localhost');
  t.after(() => other.close());
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT', header: 'X-API-Key', scheme: '' } } }, { PAT: 'secret-key' });
  api.handler = (req, res) => {
    if (req.path === '/start') send(res, 302, '', { location: '/same' });
    else if (req.path === '/same') send(res, 307, '', { location: `${other.origin}/elsewhere` });
    else send(res, 404);
  };
  const res = await lk.fetch('s', api.url('/start'), { headers: { cookie: 'a=b', 'x-keep': '1' } });
  assert.equal(res.status, 200);
  assert.deepEqual(await res.json(), { other: true });
  assert.equal(api.requests[0]!.headers['x-api-key'], 'secret-key');
  assert.equal(api.requests[1]!.headers['x-api-key'], 'secret-key', 'same-origin hop keeps it');
  const hop = other.requests[0]!;
  assert.equal(hop.headers['x-api-key'], undefined, 'cross-origin hop drops it');
  assert.equal(hop.headers.cookie, undefined);
  assert.equal(hop.headers['x-keep'], '1');
});

test('redirect: 303 after POST becomes a GET without the body; redirect: manual is honoured', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' } } }, { PAT: 'tok' });
  api.handler = (req, res) => (req.path === '/post' ? send(res, 303, '', { location: '/result' }) : send(res, 200, '{}'));
  const res = await lk.fetch('s', api.url('/post'), { method: 'POST', body: 'data' });
  assert.equal(res.status, 200);
  assert.deepEqual(
    api.requests.map((r) => [r.method, r.path, r.body]),
    [
      ['POST', '/post', 'data'],
      ['GET', '/result', ''],
    ],
  );
  const manual = await lk.fetch('s', api.url('/post'), { method: 'POST', body: 'data', redirect: 'manual' });
  assert.equal(manual.status, 303);
});

test('a redirect loop is bounded', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' } } }, { PAT: 'tok' });
  api.handler = (_req, res) => send(res, 302, '', { location: '/loop' });
  await assert.rejects(lk.fetch('s', api.url('/loop')), (err: unknown) => err instanceof LatchkeyError && err.code === 'LK_UNREACHABLE' && /redirected more than 20/.test(err.message));
  assert.equal(api.requests.length, 21);
});

test('a stalled server is bounded by the caller\'s signal', async (t) => {
  const { lk } = await profile(t, { s: { token: { secret: 'env:PAT' } } }, { PAT: 'tok' });
  api.handler = () => undefined;
  const started = Date.now();
  await assert.rejects(lk.fetch('s', api.url('/stall'), { signal: AbortSignal.timeout(200) }), (err: unknown) => (err as Error).name === 'TimeoutError');
  assert.ok(Date.now() - started < 1000);
});

test('a method that produces a hostile header (CR/LF, bad name) is refused before anything is sent', async () => {
  const { SourceAuth } = await import('../../../src/client/auth-path.js');
  const { sendAuthorized } = await import('../../../src/client/fetch.js');
  const calls: string[] = [];
  const spy = (async (input: string | URL | Request) => {
    calls.push(String(input));
    return new Response('{}');
  }) as typeof fetch;
  const hostile: Record<string, string>[] = [{ 'X-CSRF': 'ok\r\nX-Injected: 1' }, { 'Bad Name': 'v' }, { Cookie: 'a=b\u0000' }];
  for (const headers of hostile) {
    const method = {
      name: 'session' as const,
      rejectedAction: 'renew_session' as const,
      available: async () => ({ ok: true as const }),
      authorize: async () => ({ headers, credential: 'c' }),
      recover: async () => false,
    };
    const auth = new SourceAuth('hs', [method], new TestClock());
    await assert.rejects(sendAuthorized(auth, spy, 'https://app.example.com/api', undefined), (err: unknown) => {
      assert.ok(err instanceof LatchkeyError);
      assert.equal(err.code, 'LK_UNAUTHORIZED');
      assert.equal(err.operatorAction, 'renew_session');
      assert.ok(!err.message.includes('Injected'));
      return true;
    });
  }
  assert.deepEqual(calls, []);
});
