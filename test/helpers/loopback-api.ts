/**
 * A small real HTTP API on 127.0.0.1 for the fetch / probe / pre-flight tests: every request
 * is recorded (method, path, headers, body) and answered by a replaceable handler. A handler
 * that never answers is a stalled upstream; close() destroys its sockets.
 */
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

export type ApiHandler = (req: RecordedRequest, res: ServerResponse) => void;

export interface LoopbackApi {
  /** `http://127.0.0.1:PORT` */
  origin: string;
  url(path: string): string;
  requests: RecordedRequest[];
  /** Requests whose path (without query) is `path`. */
  requestsTo(path: string): RecordedRequest[];
  handler: ApiHandler;
  close(): Promise<void>;
}

export function send(res: ServerResponse, status: number, body = '', headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), ...headers });
  res.end(body);
}

/** A handler answering `status` with `body` as JSON (and `headers`, e.g. several Set-Cookie), whatever was asked. */
export function jsonAnswer(status: number, body: unknown, headers: Record<string, string | string[]> = {}): ApiHandler {
  return (_req, res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}

/** Accepts `Authorization: Bearer <token>` for the tokens in `good`, else 401. */
export function bearerHandler(good: Iterable<string>): ApiHandler {
  const accepted = new Set(good);
  return (req, res) => {
    const auth = req.headers.authorization ?? '';
    if (auth.startsWith('Bearer ') && accepted.has(auth.slice(7))) send(res, 200, '{"ok":true}');
    else send(res, 401, '{"error":"unauthorized"}');
  };
}

export async function startLoopbackApi(handler: ApiHandler = (_req, res) => send(res, 200, '{"ok":true}'), host = '127.0.0.1'): Promise<LoopbackApi> {
  const requests: RecordedRequest[] = [];
  const api = { handler } as LoopbackApi;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const rec: RecordedRequest = { method: req.method ?? 'GET', path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      requests.push(rec);
      api.handler(rec, res);
    });
  });
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  const origin = `http://${host === '127.0.0.1' ? '127.0.0.1' : host}:${port}`;
  Object.assign(api, {
    origin,
    url: (path: string) => `${origin}${path}`,
    requests,
    requestsTo: (path: string) => requests.filter((r) => r.path.split('?')[0] === path),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  });
  return api;
}
