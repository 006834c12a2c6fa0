/**
 * The upstream app of the gateway benchmarks, in its own process so the measured gateway and
 * the upstream never share an event loop. Lean on purpose (nothing recorded, no body read):
 *
 * - `GET /whoami`: 200 JSON with the identity headers it received (so a bench can check that a
 *   request really went through as the signed-in user);
 * - anything else: 200 `{"ok":true}`.
 *
 *   node dist/bench/gateway-upstream-server.js
 *
 * Prints one JSON line `{"origin":"http://127.0.0.1:PORT","pid":…}` once listening; serves
 * until SIGTERM/SIGINT.
 */
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

const OK_BODY = '{"ok":true}';

function header(headers: IncomingHttpHeaders, name: string): string | null {
  const v = headers[name];
  return typeof v === 'string' ? v : null;
}

const server = createServer((req, res) => {
  req.resume();
  if (req.url === '/whoami' || req.url?.startsWith('/whoami?')) {
    const body = JSON.stringify({ user: header(req.headers, 'x-forwarded-user'), email: header(req.headers, 'x-forwarded-email') });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
    res.end(body);
    return;
  }
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(OK_BODY.length) });
  res.end(OK_BODY);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid })}\n`);
});
const stop = (): void => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
