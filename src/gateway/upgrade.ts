import { request as httpRequest, STATUS_CODES, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Duplex } from 'node:stream';
import type { GatewayMetrics } from './metrics.js';
import { upstreamRequestHeaders, type UpstreamProxy } from './proxy.js';
import type { RequestShape } from './request-shape.js';
import type { SessionIdentity } from './session-store.js';

/**
 * WebSocket (any HTTP Upgrade) pass-through: the upgrade request goes to the upstream with the
 * same header rules as a proxied request (plus `Connection: Upgrade` and `Upgrade`), the ticket
 * parameter removed from its query; the upstream's 101 and then the bytes both ways are relayed.
 */

/** The request target without its `ticket` query parameter(s), and the ticket values found. */
export function takeTicket(url: string | undefined): { url: string; tickets: string[] } {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  if (q === -1) return { url: raw, tickets: [] };
  const tickets: string[] = [];
  const kept: string[] = [];
  for (const part of raw.slice(q + 1).split('&')) {
    const eq = part.indexOf('=');
    const name = eq === -1 ? part : part.slice(0, eq);
    if (name === 'ticket') {
      let value = eq === -1 ? '' : part.slice(eq + 1);
      try {
        value = decodeURIComponent(value);
      } catch {
        value = '';
      }
      tickets.push(value);
    } else if (part !== '') {
      kept.push(part);
    }
  }
  return { url: kept.length ? `${raw.slice(0, q)}?${kept.join('&')}` : raw.slice(0, q), tickets };
}

/** Refuses an upgrade with a small JSON answer and closes the socket. */
export function refuseUpgrade(socket: Duplex, status: number, error: string, message: string, extra: Record<string, string> = {}): void {
  const body = JSON.stringify({ error, message });
  const lines = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}`, 'Content-Type: application/json; charset=utf-8', 'Cache-Control: no-store', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close'];
  for (const [k, v] of Object.entries(extra)) lines.push(`${k}: ${v}`);
  if (socket.writable) socket.end(`${lines.join('\r\n')}\r\n\r\n${body}`);
  else socket.destroy();
}

export function proxyUpgrade(
  proxy: UpstreamProxy,
  metrics: GatewayMetrics,
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
  shape: RequestShape,
  identity: SessionIdentity | undefined,
  targetUrl: string,
  setCookies: readonly string[],
): void {
  const target = proxy.target(targetUrl);
  const headers = upstreamRequestHeaders(req, shape, identity);
  headers.connection = 'Upgrade';
  headers.upgrade = req.headers.upgrade ?? 'websocket';
  const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
  const up = send(target, { method: req.method, headers });
  socket.on('error', () => up.destroy());
  up.on('upgrade', (upRes, upSocket, upHead) => {
    const lines = [`HTTP/1.1 101 ${upRes.statusMessage || 'Switching Protocols'}`];
    const raw = upRes.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) lines.push(`${raw[i]}: ${raw[i + 1]}`);
    for (const c of setCookies) lines.push(`Set-Cookie: ${c}`);
    socket.write(`${lines.join('\r\n')}\r\n\r\n`);
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    upSocket.on('error', () => socket.destroy());
    socket.on('error', () => upSocket.destroy());
    upSocket.on('close', () => socket.destroy());
    socket.on('close', () => upSocket.destroy());
    upSocket.pipe(socket);
    socket.pipe(upSocket);
  });
  up.on('response', (upRes) => {
    // The upstream refused the upgrade: relay its answer as is, then close.
    const lines = [`HTTP/1.1 ${upRes.statusCode ?? 502} ${upRes.statusMessage ?? ''}`];
    const raw = upRes.rawHeaders;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = (raw[i] ?? '').toLowerCase();
      if (name === 'connection' || name === 'transfer-encoding' || name === 'keep-alive') continue;
      lines.push(`${raw[i]}: ${raw[i + 1]}`);
    }
    lines.push('Connection: close');
    const chunks: Buffer[] = [];
    let size = 0;
    upRes.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 64 * 1024) chunks.push(c);
    });
    upRes.on('end', () => {
      const body = Buffer.concat(chunks);
      const filtered = lines.filter((l) => !/^content-length:/i.test(l));
      filtered.push(`Content-Length: ${body.length}`);
      if (socket.writable) socket.end(Buffer.concat([Buffer.from(`${filtered.join('\r\n')}\r\n\r\n`), body]));
    });
  });
  up.on('error', () => {
    metrics.upstreamErrors.inc();
    refuseUpgrade(socket, 502, 'bad_gateway', 'the upstream did not answer');
  });
  up.end();
}
