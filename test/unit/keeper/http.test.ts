import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { startKeeperHttp, probeBodySchema, type KeeperHttpBackend } from '../../../src/keeper/http.js';
import { dashboardHtml, renderedIconSizes } from '../../../src/keeper/dashboard-page.js';
import { LatchkeyError } from '../../../src/core/errors.js';
import { Secret } from '../../../src/core/secret.js';

function stubBackend(): KeeperHttpBackend & { probes: Array<string | undefined>; ready: boolean } {
  const b = {
    probes: [] as Array<string | undefined>,
    ready: false,
    reportBytes: Buffer.from('{"generatedAt":"2030-01-01T00:00:00.000Z","intervalSeconds":300,"sources":{}}\n'),
    get readinessBytes() {
      return Buffer.from(JSON.stringify({ ready: b.ready, needsAction: b.ready ? [] : [{ source: 'hub', fix: 'latchkey login hub' }] }));
    },
    get readiness() {
      return { ready: b.ready };
    },
    async probeNow(source?: string) {
      if (source === 'nope') throw new LatchkeyError('LK_UNKNOWN_SOURCE', 'unknown source "nope"');
      b.probes.push(source);
    },
    metrics: { render: async () => 'latchkey_source_up{source="a"} 1\n', contentType: 'text/plain; version=0.0.4; charset=utf-8' },
  };
  return b;
}

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request (fetch cannot set Host, Origin or Sec-Fetch-Site freely). */
function raw(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

const SECURITY = ['x-content-type-options', 'referrer-policy', 'content-security-policy', 'x-frame-options'];

function assertSecurityHeaders(r: Raw, what: string): void {
  for (const h of SECURITY) assert.ok(r.headers[h], `${what}: missing ${h}`);
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.equal(r.headers['referrer-policy'], 'no-referrer');
  assert.match(String(r.headers['content-security-policy']), /frame-ancestors 'none'/);
}

// First in this file (its own process): nothing has asked for an icon yet.
test('start-up does not rasterize the PNG icons: they are built on the first request for them', async (t) => {
  const server = await startKeeperHttp(stubBackend(), { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  assert.deepEqual(renderedIconSizes(), [], 'no icon built at start-up (~30 MB of short-lived allocations)');
  const r = await raw(`${server.url}/icon-512.png`);
  assert.equal(r.status, 200);
  assert.equal(r.headers['content-type'], 'image/png');
  assert.deepEqual(renderedIconSizes(), [512]);
});

test('loopback server: dashboard, assets, API, readyz, livez, metrics; security headers on every answer', async (t) => {
  const backend = stubBackend();
  const srv = await startKeeperHttp(backend, { host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const u = (p: string) => `${srv.url}${p}`;

  const page = await raw(u('/'));
  assert.equal(page.status, 200);
  assert.match(String(page.headers['content-type']), /text\/html/);
  assert.equal(page.body, dashboardHtml());
  assertSecurityHeaders(page, '/');
  // The page's inline script and style are allowed by hash (computed once), nothing else.
  const csp = String(page.headers['content-security-policy']);
  const script = /<script>([\s\S]*?)<\/script>/.exec(page.body)?.[1] ?? '';
  assert.ok(csp.includes(`'sha256-${createHash('sha256').update(script).digest('base64')}'`), csp);
  assert.doesNotMatch(csp, /unsafe-inline/);

  for (const p of ['/manifest.webmanifest', '/icon.svg', '/icon.png']) {
    const r = await raw(u(p));
    assert.equal(r.status, 200, p);
    assertSecurityHeaders(r, p);
    const again = await raw(u(p), { headers: { 'if-none-match': String(r.headers.etag) } });
    assert.equal(again.status, 304, `${p} conditional`);
  }
  const health = await raw(u('/api/health'));
  assert.equal(health.status, 200);
  assert.equal(health.body, backend.reportBytes.toString());
  assert.equal(health.headers['cache-control'], 'no-store');
  assertSecurityHeaders(health, '/api/health');
  const head = await raw(u('/api/health'), { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.body, '');

  const notReady = await raw(u('/readyz'));
  assert.equal(notReady.status, 503);
  assert.equal(JSON.parse(notReady.body).needsAction[0].source, 'hub');
  backend.ready = true;
  assert.equal((await raw(u('/readyz'))).status, 200);
  assert.equal((await raw(u('/livez'))).status, 200);
  const metrics = await raw(u('/metrics'));
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /latchkey_source_up/);

  const missing = await raw(u('/nope'));
  assert.equal(missing.status, 404);
  assertSecurityHeaders(missing, '404');
  const wrongMethod = await raw(u('/api/health'), { method: 'DELETE' });
  assert.equal(wrongMethod.status, 405);
  assert.equal(wrongMethod.headers.allow, 'GET, HEAD');
  assert.equal((await raw(u('/api/probe'))).headers.allow, 'POST');

  // DNS rebinding: a page on another name resolving to 127.0.0.1 is refused.
  const rebound = await raw(u('/api/health'), { headers: { host: `evil.example:${srv.port}` } });
  assert.equal(rebound.status, 421);
  assert.equal((await raw(u('/api/health'), { headers: { host: `localhost:${srv.port}` } })).status, 200);
});

test('POST /api/probe: CSRF header required, cross-origin refused, body schema enforced', async (t) => {
  const backend = stubBackend();
  const srv = await startKeeperHttp(backend, { host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const url = `${srv.url}/api/probe`;
  const json = { 'content-type': 'application/json' };
  const action = { ...json, 'x-latchkey-action': '1' };

  assert.equal((await raw(url, { method: 'POST', headers: json, body: '{}' })).status, 403, 'no X-Latchkey-Action');
  const cross = await raw(url, { method: 'POST', headers: { ...action, origin: 'https://evil.example' }, body: '{}' });
  assert.equal(cross.status, 403);
  assert.match(JSON.parse(cross.body).message, /cross-origin/);
  assert.equal((await raw(url, { method: 'POST', headers: { ...action, 'sec-fetch-site': 'cross-site' }, body: '{}' })).status, 403);
  assert.deepEqual(backend.probes, [], 'nothing probed by refused requests');

  const all = await raw(url, { method: 'POST', headers: { ...action, origin: srv.url }, body: '{}' });
  assert.equal(all.status, 200);
  assert.equal(all.body, backend.reportBytes.toString(), 'answers the fresh report');
  const one = await raw(url, { method: 'POST', headers: action, body: '{"source":"hub"}' });
  assert.equal(one.status, 200);
  assert.equal((await raw(url, { method: 'POST', headers: { 'x-latchkey-action': '1' } })).status, 200, 'empty body = every source');
  assert.deepEqual(backend.probes, [undefined, 'hub', undefined]);

  assert.equal((await raw(url, { method: 'POST', headers: action, body: '{"source":"nope"}' })).status, 404);
  assert.equal((await raw(url, { method: 'POST', headers: action, body: '{"source":1}' })).status, 400);
  assert.equal((await raw(url, { method: 'POST', headers: action, body: '{"x":1}' })).status, 400);
  assert.equal((await raw(url, { method: 'POST', headers: action, body: 'not json' })).status, 400);
  assert.equal((await raw(url, { method: 'POST', headers: { 'x-latchkey-action': '1', 'content-type': 'text/plain' }, body: '{}' })).status, 415);
  assert.equal((await raw(url, { method: 'POST', headers: action, body: `{"source":"${'a'.repeat(5000)}"}` })).status, 413);
  assert.deepEqual(probeBodySchema({ source: 'a.b-c_d' }), { ok: true, value: { source: 'a.b-c_d' } });
});

test('remote mode: refused without --allow-remote and a token; then bearer on every data route, constant-time compare', async (t) => {
  const backend = stubBackend();
  await assert.rejects(startKeeperHttp(backend, { host: '0.0.0.0', port: 0 }), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, 'LK_USAGE');
    assert.match(err.message, /not a loopback address.*--allow-remote and --token/);
    return true;
  });
  await assert.rejects(startKeeperHttp(backend, { host: '0.0.0.0', port: 0, allowRemote: true }), /--allow-remote and --token/);
  await assert.rejects(startKeeperHttp(backend, { host: '0.0.0.0', port: 0, allowRemote: true, token: new Secret('short') }), /too short/);
  const token = 'k'.repeat(40);
  const srv = await startKeeperHttp(backend, { host: '0.0.0.0', port: 0, allowRemote: true, token: new Secret(token) });
  t.after(() => srv.close());
  assert.equal(srv.remote, true);
  const u = (p: string) => `http://127.0.0.1:${srv.port}${p}`;
  for (const p of ['/api/health', '/readyz', '/metrics']) {
    const anon = await raw(u(p));
    assert.equal(anon.status, 401, p);
    assert.equal(anon.headers['www-authenticate'], 'Bearer realm="latchkey"');
    assertSecurityHeaders(anon, `${p} 401`);
    assert.equal((await raw(u(p), { headers: { authorization: `Bearer ${token}x` } })).status, 401, `${p} wrong token`);
    assert.equal((await raw(u(p), { headers: { authorization: `Basic ${token}` } })).status, 401, `${p} wrong scheme`);
    assert.notEqual((await raw(u(p), { headers: { authorization: `Bearer ${token}` } })).status, 401, `${p} right token`);
  }
  const probe = await raw(u('/api/probe'), { method: 'POST', headers: { 'x-latchkey-action': '1' } });
  assert.equal(probe.status, 401, 'POST needs the token too');
  assert.equal((await raw(u('/api/probe'), { method: 'POST', headers: { 'x-latchkey-action': '1', authorization: `Bearer ${token}` } })).status, 200);
  // No data in these; a browser loads them without credentials (the page then sends the token).
  assert.equal((await raw(u('/livez'))).status, 200);
  assert.equal((await raw(u('/'))).status, 200);
  assert.equal((await raw(u('/icon.svg'))).status, 200);
  // Remote mode does not pin the Host header (the bearer token is the guard).
  assert.equal((await raw(u('/api/health'), { headers: { host: 'keeper.lan', authorization: `Bearer ${token}` } })).status, 200);
});

test('a port already in use is a clear error naming the port', async (t) => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as AddressInfo).port;
  await assert.rejects(startKeeperHttp(stubBackend(), { host: '127.0.0.1', port }), (err: unknown) => {
    assert.ok(err instanceof LatchkeyError);
    assert.equal(err.code, 'LK_KEEPER');
    assert.equal(err.exitCode, 1);
    assert.match(err.message, new RegExp(`port ${port} on 127.0.0.1 is already in use.*--port`));
    return true;
  });
});

/** Sends `text` as is on a fresh TCP connection and returns the status line's code (0 when closed without one). */
async function rawSocketStatus(port: number, text: string): Promise<number> {
  const socket = connect(port, '127.0.0.1');
  socket.end(text);
  let answer = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) answer += chunk as string;
  return Number(/^HTTP\/1\.[01] (\d{3})/.exec(answer)?.[1] ?? 0);
}

test('request framing: two Host headers, conflicting Content-Length or Transfer-Encoding are answered 400 (RFC 9112 §3.2, §6.3)', async (t) => {
  const srv = await startKeeperHttp(stubBackend(), { host: '127.0.0.1', port: 0 });
  t.after(() => srv.close());
  const host = `127.0.0.1:${srv.port}`;
  assert.equal(await rawSocketStatus(srv.port, `GET /livez HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), 200, 'the well-formed request');
  // Before: 200 (only the first Host was looked at).
  assert.equal(await rawSocketStatus(srv.port, `GET /livez HTTP/1.1\r\nHost: ${host}\r\nHost: evil.example\r\nConnection: close\r\n\r\n`), 400);
  assert.equal(await rawSocketStatus(srv.port, `GET /livez HTTP/1.1\r\nHost: ${host}\r\nHost: ${host}\r\nConnection: close\r\n\r\n`), 400);
  assert.equal(await rawSocketStatus(srv.port, `GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n`), 400, 'no Host at all');
  const post = (headers: string, body: string) =>
    `POST /api/probe HTTP/1.1\r\nHost: ${host}\r\nX-Latchkey-Action: 1\r\nContent-Type: application/json\r\n${headers}Connection: close\r\n\r\n${body}`;
  assert.equal(await rawSocketStatus(srv.port, post('Content-Length: 2\r\nContent-Length: 5\r\n', '{}')), 400, 'conflicting Content-Length');
  assert.equal(await rawSocketStatus(srv.port, post('Content-Length: 2\r\nTransfer-Encoding: chunked\r\n', '2\r\n{}\r\n0\r\n\r\n')), 400, 'Content-Length with Transfer-Encoding');
  assert.equal(await rawSocketStatus(srv.port, post('Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n', '2\r\n{}\r\n0\r\n\r\n')), 400, 'chunked not last');
});

test('compression: the page, the report and the history go gzipped when the browser accepts it, as they are otherwise', async (t) => {
  const { gunzipSync, gzipSync } = await import('node:zlib');
  const b = stubBackend();
  const historyBytes = Buffer.from('{"generatedAt":"2030-01-01T00:00:00.000Z","sources":{"a":{"t0":1,"dt":[0],"s":"o","l":[5]}}}\n');
  const backend = { ...b, reportBytes: b.reportBytes, readiness: b.readiness, readinessBytes: b.readinessBytes, reportGzip: gzipSync(b.reportBytes), history: { bytes: historyBytes, gzip: gzipSync(historyBytes) } };
  const server = await startKeeperHttp(backend, { host: '127.0.0.1', port: 0 });
  t.after(() => server.close());
  const get = (path: string, enc?: string) =>
    new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
      const req = request(`${server.url}${path}`, { headers: enc ? { 'accept-encoding': enc } : {} }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      });
      req.on('error', reject);
      req.end();
    });
  for (const [path, plain] of [
    ['/', Buffer.from(dashboardHtml(), 'utf8')],
    ['/api/health', b.reportBytes],
    ['/api/history', historyBytes],
  ] as const) {
    const zipped = await get(path, 'gzip, deflate, br');
    assert.equal(zipped.status, 200);
    assert.equal(zipped.headers['content-encoding'], 'gzip', path);
    assert.match(String(zipped.headers.vary), /Accept-Encoding/);
    assert.equal(Number(zipped.headers['content-length']), zipped.body.length);
    assert.deepEqual(gunzipSync(zipped.body), plain, `${path}: the same bytes`);
    const identity = await get(path);
    assert.equal(identity.headers['content-encoding'], undefined);
    assert.deepEqual(identity.body, plain);
    const refused = await get(path, 'gzip;q=0, identity');
    assert.equal(refused.headers['content-encoding'], undefined, `${path}: gzip;q=0 is a refusal`);
  }
  assert.ok((await get('/', 'gzip')).body.length < dashboardHtml().length / 2, 'the page compresses');
});
