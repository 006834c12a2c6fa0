import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { readCappedBody } from './capped-body.js';
import { csrfRefusal } from './csrf.js';
import { JSON_HEADERS } from './security-headers.js';

/**
 * A Latchkey HTTP surface as one table (Fastify style): every route declares its method, path,
 * auth, CSRF requirement and body schema next to its handler, and the table is built once at
 * start-up, so a request does a map lookup, the declared checks and a write.
 */

/** Validates a parsed JSON body: the value, or the message a 400 answer carries. */
export type Schema<T> = (v: unknown) => { ok: true; value: T } | { ok: false; message: string };

export interface Reply {
  status: number;
  headers: Readonly<Record<string, string>>;
  body: Buffer | string;
  /** The same body gzipped: sent instead when the request accepts gzip. */
  gzip?: Buffer;
}

export interface RequestContext {
  req: IncomingMessage;
  /** Parsed and validated JSON body (POST routes with a schema). */
  body: unknown;
}

export interface Route {
  method: 'GET' | 'POST';
  path: string;
  auth: 'public' | 'bearer';
  /** POST only: the CSRF checks of src/http/csrf.ts must pass. */
  csrf?: boolean;
  body?: Schema<unknown>;
  handle(ctx: RequestContext): Reply | Promise<Reply>;
}

/** Default cap on a request body: the surfaces take small JSON commands, never uploads. */
export const MAX_REQUEST_BODY_BYTES = 4096;

export function json(status: number, value: unknown, extra: Record<string, string> = {}): Reply {
  return { status, headers: Object.keys(extra).length ? { ...JSON_HEADERS, ...extra } : JSON_HEADERS, body: JSON.stringify(value) };
}

/** An error answer: `{ error, message }` (a stable code and a sentence). */
export function problem(status: number, error: string, message: string, extra: Record<string, string> = {}): Reply {
  return json(status, { error, message }, extra);
}

/** The routes by path, with the `Allow` header of each path (for a 405), computed once. */
export class RouteTable {
  readonly #byPath = new Map<string, Route[]>();
  readonly #allow = new Map<string, string>();

  constructor(routes: readonly Route[]) {
    for (const r of routes) this.#byPath.set(r.path, [...(this.#byPath.get(r.path) ?? []), r]);
    for (const [path, rs] of this.#byPath) this.#allow.set(path, [...new Set(rs.flatMap((r) => (r.method === 'GET' ? ['GET', 'HEAD'] : [r.method])))].join(', '));
  }

  /** The route for a request, or the 404 / 405 answer (HEAD is served by the GET route). */
  match(method: string | undefined, path: string): { route: Route } | { reply: Reply } {
    const candidates = this.#byPath.get(path);
    if (!candidates) return { reply: problem(404, 'not_found', `no route ${path}`) };
    const want = method === 'HEAD' ? 'GET' : method;
    const route = candidates.find((r) => r.method === want);
    if (!route) return { reply: problem(405, 'method_not_allowed', `${method} is not allowed on ${path}`, { Allow: this.#allow.get(path) ?? '' }) };
    return { route };
  }
}

/**
 * A POST route's declared checks, in order: CSRF (403), the capped JSON body (413, 415, 400),
 * the schema (400). The validated body, or the answer that refuses the request.
 */
export async function checkedBody(route: Route, req: IncomingMessage, maxBytes = MAX_REQUEST_BODY_BYTES): Promise<{ ok: true; body: unknown } | { ok: false; reply: Reply }> {
  if (route.method !== 'POST') return { ok: true, body: undefined };
  if (route.csrf) {
    const refusal = csrfRefusal(req);
    if (refusal) return { ok: false, reply: problem(403, 'forbidden', refusal) };
  }
  const read = await readJsonBody(req, maxBytes);
  if (!read.ok) return { ok: false, reply: problem(read.status, 'bad_request', read.message) };
  const checked = route.body ? route.body(read.value) : { ok: true as const, value: read.value };
  if (!checked.ok) return { ok: false, reply: problem(400, 'bad_request', checked.message) };
  return { ok: true, body: checked.value };
}

/** A JSON request body, at most `maxBytes` (declared or sent); empty is `undefined`. */
export async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<{ ok: true; value: unknown } | { ok: false; status: number; message: string }> {
  const declared = Number(req.headers['content-length'] ?? '0');
  const tooLarge = { ok: false, status: 413, message: `body larger than ${maxBytes} bytes` } as const;
  if (declared > maxBytes) return tooLarge;
  const read = await readCappedBody(req, maxBytes);
  if (!read.ok) return tooLarge;
  const text = Buffer.from(read.bytes).toString('utf8').trim();
  if (text === '') return { ok: true, value: undefined };
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') return { ok: false, status: 415, message: 'expected Content-Type: application/json' };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch {
    return { ok: false, status: 400, message: 'body is not valid JSON' };
  }
}

/** The path of a request target, without its query. */
export function pathOf(url: string | undefined): string {
  const raw = url ?? '/';
  const q = raw.indexOf('?');
  return q === -1 ? raw : raw.slice(0, q);
}

/** SHA-256 of a bearer token: what is kept in memory and compared. */
export function tokenDigest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** Whether an `Authorization` header carries the bearer token whose digest is `expected`. */
export function bearerMatches(header: string | undefined, expected: Buffer): boolean {
  if (!header) return false;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(header);
  if (!m) return false;
  // Digests have equal length whatever was sent, so the comparison time reveals nothing.
  return timingSafeEqual(tokenDigest(m[1] as string), expected);
}

/** Whether the request accepts gzip (RFC 9110 §12.5.3; `gzip;q=0` refuses it). */
export function acceptsGzip(req: IncomingMessage): boolean {
  const v = req.headers['accept-encoding'];
  if (typeof v !== 'string') return false;
  return v.split(',').some((part) => {
    const [coding, ...params] = part.trim().toLowerCase().split(';');
    if (coding?.trim() !== 'gzip' && coding?.trim() !== '*') return false;
    const q = params.map((p) => /^\s*q=([\d.]+)/.exec(p)?.[1]).find((x) => x !== undefined);
    return q === undefined || Number(q) > 0;
  });
}

/** Writes a reply (gzipped when it has a gzip body and the request accepts it; no body for HEAD and 304). */
export function send(req: IncomingMessage, res: ServerResponse, reply: Reply): void {
  const zipped = reply.gzip !== undefined && reply.status === 200 && acceptsGzip(req);
  const body = zipped ? (reply.gzip as Buffer) : typeof reply.body === 'string' ? Buffer.from(reply.body, 'utf8') : reply.body;
  const encoding = zipped ? { 'Content-Encoding': 'gzip' } : {};
  res.writeHead(reply.status, { ...reply.headers, ...encoding, ...(reply.status === 304 ? {} : { 'Content-Length': String(body.length) }) });
  res.end(req.method === 'HEAD' || reply.status === 304 ? undefined : body);
}
