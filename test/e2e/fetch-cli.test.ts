/** `latchkey fetch` as a script in any language runs it: a separate process, exit codes, stdout/stderr. */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { makeHome, runCli, type TempHome } from '../helpers/home.js';
import { send, startLoopbackApi, type LoopbackApi } from '../helpers/loopback-api.js';

let api: LoopbackApi;
let h: TempHome;
let env: NodeJS.ProcessEnv;
let deadPort: number;

before(async () => {
  api = await startLoopbackApi((req, res) => {
    const good = req.headers.authorization === 'Bearer good';
    switch (req.path.split('?')[0]) {
      case '/me':
        return good ? send(res, 200, '{"login":"alice"}') : send(res, 401, '{"message":"Bad credentials"}');
      case '/echo':
        return send(res, 200, JSON.stringify({ method: req.method, body: req.body, type: req.headers['content-type'] ?? null, x: req.headers['x-extra'] ?? null }));
      case '/missing':
        return send(res, 404, '{"message":"Not Found"}');
      case '/boom':
        return send(res, 502, 'bad gateway');
      case '/limited':
        return send(res, 429, '');
      case '/forbidden':
        return send(res, 403, '{"message":"scope"}');
      case '/stall':
        return undefined;
      default:
        return send(res, 404);
    }
  });
  // Port 2 is privileged and never served here (and not on fetch's bad-port list), so the connection is refused; a
  // just-closed ephemeral port could be reused by a server of a test running in parallel.
  deadPort = 2;
  h = await makeHome({ version: 1, sources: { gh: { token: { secret: 'env:GH_TOKEN' } }, dead: { token: { secret: 'env:DEAD_TOKEN' } } } });
  env = { LATCHKEY_HOME: h.home, GH_TOKEN: 'good', DEAD_TOKEN: 'revoked-pat' };
});
after(async () => {
  await api.close();
  await h.cleanup();
});

test('prints the body on stdout and exits 0', async () => {
  const r = await runCli(['fetch', 'gh', api.url('/me')], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '{"login":"alice"}');
  assert.equal(r.stderr, '');
});

test('-X, -d (JSON detected), -H are sent', async () => {
  const r = await runCli(['fetch', 'gh', api.url('/echo'), '-X', 'PUT', '-d', '{"a":1}', '-H', 'X-Extra: yes'], { env });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { method: 'PUT', body: '{"a":1}', type: 'application/json', x: 'yes' });
});

test('-d alone means POST; -d @- reads the body from stdin', async () => {
  const r = await runCli(['fetch', 'gh', api.url('/echo'), '-d', '@-', '-H', 'Content-Type: text/plain'], { env, input: 'from stdin' });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { method: 'POST', body: 'from stdin', type: 'text/plain', x: null });
});

test('always 401: exactly two requests, exit 4, the fix on stderr, no secret anywhere', async () => {
  const before = api.requestsTo('/me').length;
  const r = await runCli(['fetch', 'dead', api.url('/me?token=q')], { env });
  assert.equal(r.code, 4);
  assert.equal(api.requestsTo('/me').length - before, 2);
  assert.match(r.stderr, /answered 401/);
  assert.match(r.stderr, /fix: export DEAD_TOKEN=<the new value>/);
  assert.ok(!r.stderr.includes('revoked-pat') && !r.stdout.includes('revoked-pat'));
  assert.ok(!r.stderr.includes('token=q'), 'no query string in messages');
});

test('exit codes: 403 -> 4, 404 -> 1, 502 -> 3, 429 -> 3 (body still printed, message on stderr)', async () => {
  const cases: [string, number][] = [
    ['/forbidden', 4],
    ['/missing', 1],
    ['/boom', 3],
    ['/limited', 3],
  ];
  for (const [path, code] of cases) {
    const r = await runCli(['fetch', 'gh', api.url(path)], { env });
    assert.equal(r.code, code, `${path}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`answered ${path === '/forbidden' ? 403 : path === '/missing' ? 404 : path === '/boom' ? 502 : 429}`));
  }
  const r = await runCli(['fetch', 'gh', api.url('/missing')], { env });
  assert.equal(r.stdout, '{"message":"Not Found"}');
});

test('network error -> exit 3; a stalled server with --timeout -> exit 3', async () => {
  const refused = await runCli(['fetch', 'gh', `http://127.0.0.1:${deadPort}/x`], { env });
  assert.equal(refused.code, 3);
  assert.match(refused.stderr, /network error: .*ECONNREFUSED/);
  const started = Date.now();
  const stalled = await runCli(['fetch', 'gh', api.url('/stall'), '--timeout', '300'], { env });
  assert.equal(stalled.code, 3);
  assert.match(stalled.stderr, /no answer within 300 ms/);
  assert.ok(Date.now() - started < 5000);
});

test('bad input: hostile -H value, malformed -H, bad method, missing args, unknown source, plain http off-box -> exit 1', async () => {
  const hostile = await runCli(['fetch', 'gh', api.url('/echo'), '-H', 'X-Evil: a\r\nInjected: 1'], { env });
  assert.equal(hostile.code, 1);
  assert.match(hostile.stderr, /X-Evil: the value is not a valid HTTP header value/);
  assert.ok(!hostile.stderr.includes('Injected'));
  assert.equal((await runCli(['fetch', 'gh', api.url('/echo'), '-H', 'no colon here'], { env })).code, 1);
  assert.equal((await runCli(['fetch', 'gh', api.url('/echo'), '-X', 'GET /x'], { env })).code, 1);
  assert.equal((await runCli(['fetch', 'gh'], { env })).code, 1);
  const getBody = await runCli(['fetch', 'gh', api.url('/echo'), '-X', 'GET', '-d', 'x'], { env });
  assert.equal(getBody.code, 1, 'a usage error, not a network error');
  assert.match(getBody.stderr, /a GET request cannot have/);
  const unknown = await runCli(['fetch', 'nope', api.url('/me')], { env });
  assert.equal(unknown.code, 1);
  assert.match(unknown.stderr, /unknown source "nope"/);
  const insecure = await runCli(['fetch', 'gh', 'http://example.com/me'], { env });
  assert.equal(insecure.code, 1);
  assert.match(insecure.stderr, /refusing to send credentials over plain http/);
});

test('an oversized header value: sent as given, and the server\'s refusal (431) is exit 1', async () => {
  const r = await runCli(['fetch', 'gh', api.url('/echo'), '-H', `X-Big: ${'b'.repeat(64 * 1024)}`], { env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /answered 431/);
});
