/**
 * The floor of the gateway bench: the least a Node reverse proxy does, with no authentication at
 * all. `node:http` server, `http.request` to the upstream through a keep-alive agent, hop-by-hop
 * headers dropped, bodies piped. Whatever the Latchkey gateway costs beyond this is its own work
 * (the session check, cookie handling, identity headers); what this costs beyond the bare
 * upstream is any Node proxy's.
 *
 *   node dist/bench/gateway-floor-proxy.js --upstream URL
 *
 * Prints one JSON line `{"url":"http://127.0.0.1:PORT","pid":…}` once listening.
 */
import { Agent, createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';

const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade'];

function endToEnd(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out = { ...headers };
  for (const h of HOP_BY_HOP) delete out[h];
  return out;
}

const { values } = parseArgs({ options: { upstream: { type: 'string' } }, strict: true });
if (!values.upstream) throw new Error('usage: --upstream URL');
const upstream = new URL(values.upstream);
const agent = new Agent({ keepAlive: true, maxSockets: 256 });

const server = createServer((req, res) => {
  const up = request({ host: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers: endToEnd(req.headers), agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, endToEnd(upRes.headers));
    upRes.pipe(res);
  });
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, pid: process.pid })}\n`);
});
const stop = (): void => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
