/**
 * The shared HTTP pieces (src/http/): the capped body reader stops at the limit for both kinds
 * of stream it reads, and the route table answers 404 / 405 with the path's Allow header.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { readCappedBody } from '../../../src/http/capped-body.js';
import { RouteTable, problem, type Route } from '../../../src/http/route-table.js';
import { csrfRefusal } from '../../../src/http/csrf.js';

function webStream(chunks: number[], pulled: { count: number }): ReadableStream<Uint8Array> {
  let i = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      pulled.count += 1;
      const n = chunks[i++];
      if (n === undefined) controller.close();
      else controller.enqueue(new Uint8Array(n).fill(97));
    },
  });
}

test('readCappedBody: a web body within the limit is read whole; past it, reading stops', async () => {
  const within = await readCappedBody(webStream([3, 4], { count: 0 }), 7);
  assert.ok(within.ok);
  assert.equal(Buffer.from(within.bytes).toString(), 'aaaaaaa');
  const pulled = { count: 0 };
  const over = await readCappedBody(webStream([5, 5, 5, 5, 5, 5], pulled), 7);
  assert.deepEqual(over, { ok: false, tooLarge: true });
  assert.ok(pulled.count <= 3, `read on after the limit (${pulled.count} pulls)`);
});

test('readCappedBody: a Node stream (a request) past the limit is destroyed, not drained', async () => {
  const req = Readable.from([Buffer.alloc(3), Buffer.alloc(3), Buffer.alloc(3), Buffer.alloc(3)]);
  assert.deepEqual(await readCappedBody(req, 5), { ok: false, tooLarge: true });
  assert.equal(req.destroyed, true);
  const small = await readCappedBody(Readable.from([Buffer.from('{"a":'), Buffer.from('1}')]), 4096);
  assert.ok(small.ok);
  assert.equal(Buffer.from(small.bytes).toString(), '{"a":1}');
  const empty = await readCappedBody(null, 10);
  assert.ok(empty.ok && empty.bytes.length === 0);
});

test('RouteTable: unknown path 404, known path with another method 405 with Allow, HEAD served by GET', () => {
  const ok = (): ReturnType<Route['handle']> => problem(200, 'ok', 'ok');
  const table = new RouteTable([
    { method: 'GET', path: '/a', auth: 'public', handle: ok },
    { method: 'POST', path: '/a', auth: 'bearer', csrf: true, handle: ok },
    { method: 'POST', path: '/b', auth: 'bearer', handle: ok },
  ]);
  const missing = table.match('GET', '/nope');
  assert.ok('reply' in missing && missing.reply.status === 404);
  const wrong = table.match('DELETE', '/a');
  assert.ok('reply' in wrong && wrong.reply.status === 405);
  assert.equal(wrong.reply.headers.Allow, 'GET, HEAD, POST');
  const head = table.match('HEAD', '/a');
  assert.ok('route' in head && head.route.method === 'GET');
  const getB = table.match('GET', '/b');
  assert.ok('reply' in getB && getB.reply.headers.Allow === 'POST');
});

test('csrfRefusal: the action header is required; a cross-site fetch or a foreign Origin is refused', () => {
  const h = (headers: Record<string, string>): { headers: Record<string, string> } => ({ headers: { host: '127.0.0.1:8080', ...headers } });
  assert.match(csrfRefusal(h({})) ?? '', /X-Latchkey-Action/);
  assert.equal(csrfRefusal(h({ 'x-latchkey-action': '1' })), undefined);
  assert.equal(csrfRefusal(h({ 'x-latchkey-action': '1', 'sec-fetch-site': 'same-origin', origin: 'http://127.0.0.1:8080' })), undefined);
  assert.match(csrfRefusal(h({ 'x-latchkey-action': '1', 'sec-fetch-site': 'cross-site' })) ?? '', /cross-site/);
  assert.match(csrfRefusal(h({ 'x-latchkey-action': '1', origin: 'http://evil.example' })) ?? '', /cross-origin/);
});
