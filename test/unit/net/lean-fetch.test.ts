import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { leanFetch } from '../../../src/net/lean-fetch.js';
import { describeNetworkError } from '../../../src/net/describe-network-error.js';
import { closedPort } from '../../helpers/closed-port.js';

/**
 * The probes' transport (src/net/lean-fetch.ts) against real loopback servers: what it sends,
 * what it answers, and fetch's semantics where the probe depends on them (manual redirects,
 * the signal's reason on a timeout, a body read or cancelled by the caller, errors that name
 * host:port).
 */

interface Upstream {
  origin: string;
  /** Sockets the server accepted, and how many of them have closed. */
  connections: number;
  closed: number;
  requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }>;
  close(): Promise<void>;
}

async function upstream(t: { after(fn: () => Promise<void>): void }, handler: (req: IncomingMessage, res: ServerResponse) => void, server: Server = createHttpServer(), proto = 'http'): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const u: Upstream = {
    origin: '',
    connections: 0,
    closed: 0,
    requests: [],
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
  server.on('connection', (s: Socket) => {
    u.connections++;
    sockets.add(s);
    s.on('close', () => {
      u.closed++;
      sockets.delete(s);
    });
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      u.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.origin = `${proto}://127.0.0.1:${(server.address() as AddressInfo).port}`;
  t.after(() => u.close());
  return u;
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
}

test('lean fetch: sends the caller headers with fetch defaults, answers status, headers and body, and reuses its connection', async (t) => {
  const u = await upstream(t, (_req, res) => {
    res.writeHead(200, 'Fine', [
      ['content-type', 'application/json'],
      ['set-cookie', 'a=1'],
      ['set-cookie', 'b=2'],
    ]);
    res.end('{"ok":true}');
  });
  const f = leanFetch();
  for (let i = 0; i < 2; i++) {
    const res = await f(`${u.origin}/me?x=1`, { redirect: 'manual', headers: { authorization: 'Bearer t0k' } });
    assert.equal(res.status, 200);
    assert.equal(res.statusText, 'Fine');
    assert.equal(res.headers.get('content-type'), 'application/json');
    assert.deepEqual(res.headers.getSetCookie(), ['a=1', 'b=2']);
    assert.deepEqual(await res.json(), { ok: true });
  }
  assert.equal(u.requests.length, 2);
  assert.equal(u.requests[0]!.url, '/me?x=1');
  assert.equal(u.requests[0]!.headers.authorization, 'Bearer t0k');
  assert.equal(u.requests[0]!.headers.accept, '*/*');
  assert.equal(u.connections, 1, 'the second request went over the kept-alive connection');
});

test('lean fetch: a string body goes with its length and fetch\'s default content type; a byte body as is', async (t) => {
  const u = await upstream(t, (_req, res) => res.end('done'));
  const f = leanFetch();
  await (await f(`${u.origin}/a`, { method: 'post', body: 'héllo', redirect: 'manual' })).text();
  await (await f(`${u.origin}/b`, { method: 'PUT', body: new Uint8Array([1, 2, 3]), headers: { 'content-type': 'application/octet-stream' }, redirect: 'manual' })).text();
  assert.equal(u.requests[0]!.method, 'POST');
  assert.equal(u.requests[0]!.body, 'héllo');
  assert.equal(u.requests[0]!.headers['content-length'], String(Buffer.byteLength('héllo')));
  assert.equal(u.requests[0]!.headers['content-type'], 'text/plain;charset=UTF-8');
  assert.equal(u.requests[1]!.headers['content-length'], '3');
  assert.equal(u.requests[1]!.headers['content-type'], 'application/octet-stream');
});

test('lean fetch: a redirect is answered, not followed (the caller follows by hand), and a 204 has a null body', async (t) => {
  const u = await upstream(t, (req, res) => {
    if (req.url === '/moved') {
      res.writeHead(302, { location: '/elsewhere', 'content-length': '0' });
      res.end();
    } else {
      res.writeHead(204);
      res.end();
    }
  });
  const f = leanFetch();
  const moved = await f(`${u.origin}/moved`, { redirect: 'manual' });
  assert.equal(moved.status, 302);
  assert.equal(moved.headers.get('location'), '/elsewhere');
  const empty = await f(`${u.origin}/empty`, { redirect: 'manual' });
  assert.equal(empty.status, 204);
  assert.equal(empty.body, null);
  assert.deepEqual(
    u.requests.map((r) => r.url),
    ['/moved', '/empty'],
  );
});

test('lean fetch: a gzip-encoded answer is decoded, as fetch does', async (t) => {
  const u = await upstream(t, (_req, res) => {
    const body = gzipSync('{"ok":"zipped"}');
    res.writeHead(200, { 'content-encoding': 'gzip', 'content-length': String(body.length) });
    res.end(body);
  });
  const res = await leanFetch()(`${u.origin}/`, { redirect: 'manual' });
  assert.deepEqual(await res.json(), { ok: 'zipped' });
});

test('lean fetch: an upstream that never answers is given up on with the signal\'s reason, and its connection is closed', async (t) => {
  const u = await upstream(t, () => undefined);
  const f = leanFetch();
  const signal = AbortSignal.timeout(50);
  await assert.rejects(f(`${u.origin}/stall`, { redirect: 'manual', signal }), (err: Error) => err.name === 'TimeoutError' && err === signal.reason);
  await until(() => u.closed === 1);
  assert.equal(u.closed, 1, 'the stalled request does not keep its socket');
});

test('lean fetch: a body that stalls after the headers fails its read with the signal\'s reason; a cancelled unfinished body closes the connection', async (t) => {
  const u = await upstream(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.write('{"partial":');
  });
  const f = leanFetch();
  const ctrl = new AbortController();
  const res = await f(`${u.origin}/half`, { redirect: 'manual', signal: ctrl.signal });
  assert.equal(res.status, 200);
  const reading = res.text();
  ctrl.abort(new DOMException('probe timed out', 'TimeoutError'));
  await assert.rejects(reading, (err: Error) => err.name === 'TimeoutError');
  await until(() => u.closed === 1);
  assert.equal(u.closed, 1);

  const res2 = await f(`${u.origin}/half`, { redirect: 'manual' });
  await res2.body!.cancel();
  await until(() => u.closed === 2);
  assert.equal(u.closed, 2, 'cancelling a body still arriving closes its connection');
});

test('lean fetch: a large body is read only as far as the reader goes (the probe caps it), then dropped', async (t) => {
  let written = 0;
  const u = await upstream(t, (_req, res) => {
    const chunk = Buffer.alloc(64 * 1024, 'a');
    const pump = (): void => {
      // Endless: only the reader's cancel ends it.
      while (written < 64 * 1024 * 1024 && res.write(chunk)) written += chunk.length;
      if (!res.destroyed) res.once('drain', pump);
    };
    res.writeHead(200, { 'content-type': 'text/plain' });
    pump();
  });
  const res = await leanFetch()(`${u.origin}/huge`, { redirect: 'manual' });
  const reader = res.body!.getReader();
  let read = 0;
  while (read <= 1024 * 1024) read += (await reader.read()).value!.byteLength;
  await reader.cancel();
  await until(() => u.closed === 1);
  assert.equal(u.closed, 1);
  assert.ok(written < 16 * 1024 * 1024, `backpressure held the upstream back (it wrote ${written} bytes for a 1 MB read)`);
});

test('lean fetch: a refused connection and a rejected TLS certificate fail as fetch does, naming host:port', async (t) => {
  const port = await closedPort();
  const f = leanFetch();
  const refused = await f(`http://127.0.0.1:${port}/x`, { redirect: 'manual' }).then(
    () => assert.fail('should not answer'),
    (err: unknown) => err,
  );
  assert.ok(refused instanceof TypeError);
  assert.equal(describeNetworkError(refused, `http://127.0.0.1:${port}/x`), `connection refused by 127.0.0.1:${port} (ECONNREFUSED)`);

  const dir = await mkdtemp(join(tmpdir(), 'latchkey-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const server = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) });
  const u = await upstream(t, (_req, res) => res.end('secret page'), server, 'https');
  assert.ok(u.origin.startsWith('https://'));
  const tls = await f(`${u.origin}/probe?token=s3cr3t`, { redirect: 'manual' }).then(
    () => assert.fail('a self-signed certificate must not be accepted'),
    (err: unknown) => err,
  );
  assert.ok(tls instanceof TypeError);
  const text = describeNetworkError(tls, `${u.origin}/probe?token=s3cr3t`);
  assert.equal(text, `the TLS certificate of ${u.origin.slice('https://'.length)} was not accepted (DEPTH_ZERO_SELF_SIGNED_CERT)`);
  assert.equal(u.requests.length, 0, 'nothing was sent over the untrusted connection');
});

test('lean fetch: a form body goes as fetch sends it; preconnect opens the connection the next request uses, and none when a free one is open', async (t) => {
  const u = await upstream(t, (_req, res) => res.end('{"ok":true}'));
  const f = leanFetch();
  f.preconnect(`${u.origin}/token`);
  await until(() => u.connections === 1);
  assert.equal(u.connections, 1, 'connected before any request');
  assert.equal(u.requests.length, 0, 'and nothing sent');
  const res = await f(`${u.origin}/token`, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: 'r t' }) });
  assert.equal(await res.text(), '{"ok":true}');
  assert.equal(u.connections, 1, 'the request went on the connection opened ahead');
  assert.equal(u.requests[0]!.body, 'grant_type=refresh_token&refresh_token=r+t');
  assert.equal(u.requests[0]!.headers['content-type'], 'application/x-www-form-urlencoded;charset=UTF-8');
  // Its connection is free again (keep-alive): preconnect opens no other.
  f.preconnect(`${u.origin}/token`);
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(u.connections, 1);
  await (await f(`${u.origin}/token`, { redirect: 'manual' })).text();
  assert.equal(u.connections, 1);
});

test('lean fetch: a connection opened ahead and not used is closed after warmSocketMs; one the server closed first is not used', async (t) => {
  const u = await upstream(t, (_req, res) => res.end('ok'));
  const f = leanFetch({ warmSocketMs: 100 });
  f.preconnect(u.origin);
  await until(() => u.closed === 1);
  assert.deepEqual([u.connections, u.closed], [1, 1], 'closed unused');

  // A server that closes the first connection as soon as it is accepted: the request opens its own.
  let first = true;
  const g = leanFetch();
  const dropping = createHttpServer((_req, res) => res.end('fine'));
  dropping.on('connection', (s: Socket) => {
    if (first) {
      first = false;
      s.end();
    }
  });
  const d = await upstream(t, (_req, res) => res.end('fine'), dropping);
  g.preconnect(d.origin);
  await until(() => d.closed === 1);
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(await (await g(`${d.origin}/x`, { redirect: 'manual' })).text(), 'fine');
  assert.equal(d.connections, 2, 'a new connection, not the closed one');
});

test('lean fetch: over https, preconnect does the TLS handshake ahead (server name and certificate checked) and the request uses that connection', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'latchkey-tls-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' });
  const server = createHttpsServer({ key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) });
  const handshakes: Array<string | false | null> = [];
  let handshakeAt = 0;
  let requestAt = 0;
  server.on('secureConnection', (s: TLSSocket) => {
    handshakes.push(s.servername);
    handshakeAt = Date.now();
  });
  const u = await upstream(
    t,
    (_req, res) => {
      requestAt = Date.now();
      res.end('tls ok');
    },
    server,
    'https',
  );
  const origin = u.origin.replace('127.0.0.1', 'localhost');
  // The certificate is trusted the way an operator would (NODE_EXTRA_CA_CERTS), in a process of its own.
  const script = `
    const { leanFetch } = await import(${JSON.stringify(new URL('../../../src/net/lean-fetch.js', import.meta.url).href)});
    const f = leanFetch();
    f.preconnect(${JSON.stringify(`${origin}/token`)});
    await new Promise((r) => setTimeout(r, 300));
    const res = await f(${JSON.stringify(`${origin}/token`)}, { method: 'POST', redirect: 'manual', body: new URLSearchParams({ a: '1' }) });
    process.stdout.write(await res.text());
  `;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') } }, (err, stdout, stderr) => (err ? reject(new Error(stderr || String(err))) : resolve(stdout)));
  });
  assert.equal(out, 'tls ok');
  assert.equal(u.connections, 1, 'one connection: the one opened ahead');
  assert.deepEqual(handshakes, ['localhost'], 'its handshake named the server');
  assert.ok(requestAt - handshakeAt >= 200, `the handshake was done ahead (${requestAt - handshakeAt} ms before the request)`);
  assert.equal(u.requests[0]!.body, 'a=1');
});

test('lean fetch: what it does not handle (a Request, redirect follow, a stream body) goes to the fallback untouched', async () => {
  const seen: Array<[unknown, unknown]> = [];
  const f = leanFetch({
    fallback: (input, init) => {
      seen.push([input, init?.redirect]);
      return Promise.resolve(new Response('from fallback'));
    },
  });
  const request = new Request('http://127.0.0.1:9/x');
  assert.equal(await (await f(request)).text(), 'from fallback');
  assert.equal(await (await f('http://127.0.0.1:9/y', { redirect: 'follow' })).text(), 'from fallback');
  assert.equal(await (await f('http://127.0.0.1:9/z', { redirect: 'manual', body: new ReadableStream(), method: 'POST' })).text(), 'from fallback');
  assert.equal(seen.length, 3);
  assert.equal(seen[0]![0], request);
});
