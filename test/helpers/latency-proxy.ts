/**
 * An HTTP proxy in front of the test IdP's token endpoint that gives it latency (each request is
 * held `delayMs()` before it is forwarded) and records, for every request, when the IdP answered
 * and when the answer was handed to the client, with the refresh token the answer carried.
 *
 * A request is forwarded even when its client hung up during the delay: its bytes were sent, and
 * a real IdP processes a request whose client died. So a client killed in flight can lose a
 * rotation, as it would in production; the records say which kills those were.
 */
import { createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ProxiedRequest {
  /** The label current when the request arrived ({@link LatencyProxy.label}). */
  label: string;
  receivedAt: number;
  /** The refresh token a `grant_type=refresh_token` request presented (to count replays). */
  sentRefreshToken?: string;
  /** When the IdP's whole answer was in (undefined while it is still being processed). */
  answeredAt?: number;
  status?: number;
  /** The new refresh token of a 200 (the IdP has rotated). */
  refreshToken?: string;
  /** The error code of a JSON error answer. */
  error?: string;
  /** When the answer was handed to the client's socket (undefined: the client was gone). */
  deliveredAt?: number;
}

export interface LatencyProxy {
  /** Base URL; the token endpoint is `${url}/token`. */
  url: string;
  /** Every request seen, in order. */
  requests: ProxiedRequest[];
  /** Labels the requests that arrive from now on (e.g. the cycle they belong to). */
  label: string;
  close(): Promise<void>;
}

export async function startLatencyProxy(target: string, delayMs: (request: ProxiedRequest) => number): Promise<LatencyProxy> {
  const upstream = new URL(target);
  const requests: ProxiedRequest[] = [];
  const proxy: LatencyProxy = { url: '', requests, label: '', close: async () => undefined };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const record: ProxiedRequest = { label: proxy.label, receivedAt: Date.now() };
    requests.push(record);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const form = new URLSearchParams(body.toString('utf8'));
    if (form.get('grant_type') === 'refresh_token') record.sentRefreshToken = form.get('refresh_token') ?? undefined;
    await new Promise((r) => setTimeout(r, delayMs(record)));
    const answer = await new Promise<{ status: number; headers: Record<string, string>; body: Buffer }>((resolve, reject) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string' && k !== 'host' && k !== 'connection') headers[k] = v;
      const up = request({ host: upstream.hostname, port: upstream.port, path: req.url, method: req.method, headers: { ...headers, 'content-length': String(body.length) } }, (r) => {
        const parts: Buffer[] = [];
        r.on('data', (d: Buffer) => parts.push(d));
        r.on('end', () => {
          const h: Record<string, string> = {};
          for (const [k, v] of Object.entries(r.headers)) if (typeof v === 'string' && k !== 'connection' && k !== 'transfer-encoding') h[k] = v;
          resolve({ status: r.statusCode ?? 502, headers: h, body: Buffer.concat(parts) });
        });
        r.on('error', reject);
      });
      up.on('error', reject);
      up.end(body);
    });
    record.answeredAt = Date.now();
    record.status = answer.status;
    try {
      const parsed = JSON.parse(answer.body.toString('utf8')) as { refresh_token?: unknown; error?: unknown };
      if (answer.status === 200 && typeof parsed.refresh_token === 'string') record.refreshToken = parsed.refresh_token;
      if (typeof parsed.error === 'string') record.error = parsed.error;
    } catch {
      // not JSON: recorded by status only
    }
    if (res.destroyed || req.socket.destroyed) return;
    res.writeHead(answer.status, { ...answer.headers, 'content-length': String(answer.body.length), connection: 'close' });
    res.end(answer.body, () => {
      record.deliveredAt = Date.now();
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent && !res.destroyed) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('proxy error');
      } else res.destroy();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.close = () =>
    new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  return proxy;
}
