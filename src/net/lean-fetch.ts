import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import { createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import type { FetchLike } from '../oauth/endpoint.js';

/**
 * A `fetch` for probes, on `node:http`/`node:https` instead of Node's built-in fetch (undici).
 *
 * Why: a keeper probing 1,000–10,000 sources every cycle spent most of its memory on undici's
 * per-request machinery, which stays reachable well after a request has finished (the
 * keeper's peak RSS at 1,000 sources was ~150 MB on bare `node`, issue 9). Here a request is
 * a `ClientRequest` on a keep-alive socket from a bounded pool, and its answer a `Response`
 * whose body streams straight from the socket: nothing outlives the request.
 *
 * It is also the token endpoint's transport when no fetch is injected (src/latchkey.ts): a
 * request on a free keep-alive socket is written in the same turn of the event loop (the
 * built-in fetch dispatches it a turn later), and {@link LeanFetch.preconnect} opens a
 * connection while the refresh claims its lock, so the refresh token leaves as soon as the claim
 * is won instead of a connection (and a TLS handshake) later.
 *
 * It handles exactly what the probe, `sendAuthorized` and oauth4webapi send — a URL string, a
 * string, byte or form (URLSearchParams) body, `redirect: 'manual'` (redirects are followed by
 * hand in src/client/fetch.ts so that credentials never cross origins) — with fetch's semantics: resolves when the headers
 * arrive; the body is read (or cancelled, which closes an unfinished connection) by the
 * caller; `signal` aborts the request and its body with the signal's reason; a network or TLS
 * failure rejects with `TypeError('fetch failed', { cause })` as undici does, so
 * `describeNetworkError` names host:port the same way. Anything else (a `Request`, a stream
 * body, `redirect: 'follow'`) goes to `fallback` (the built-in fetch).
 */
export interface LeanFetchOptions {
  /** Open sockets per origin (requests beyond wait for one); at least the keeper's concurrency. */
  maxSockets?: number;
  /** An idle keep-alive socket is closed after this long (undici's default is 4 s). */
  idleSocketMs?: number;
  /** Where requests this transport does not handle go (default: the global fetch). */
  fallback?: FetchLike;
  /** A connection opened by {@link LeanFetch.preconnect} and not used within this long is closed (default 3 s). */
  warmSocketMs?: number;
}

/** The lean fetch, and a way to open the connection a request will need before it is sent. */
export interface LeanFetch extends FetchLike {
  /**
   * Opens a connection (TCP, and TLS for https) to `url`'s origin unless one is open and free
   * or already opening, for the next request there to use; closed unused after `warmSocketMs`,
   * or as soon as the server closes it. Never sends a byte of HTTP.
   */
  preconnect(url: string | URL): void;
}

/** Statuses whose Response must have a null body (fetch standard "null body status"). */
const NULL_BODY_STATUSES = new Set([101, 103, 204, 205, 304]);
const DEFAULT_MAX_SOCKETS = 256;
const DEFAULT_IDLE_SOCKET_MS = 4_000;
const DEFAULT_WARM_SOCKET_MS = 3_000;

export function leanFetch(options: LeanFetchOptions = {}): LeanFetch {
  const agentOptions = {
    keepAlive: true,
    maxSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS,
    maxFreeSockets: options.maxSockets ?? DEFAULT_MAX_SOCKETS,
    // Applies to idle sockets in the pool (the Agent destroys a free socket that times out);
    // a request in flight is bounded by its signal, not by this.
    timeout: options.idleSocketMs ?? DEFAULT_IDLE_SOCKET_MS,
    scheduling: 'lifo' as const,
  };
  const http = new HttpAgent(agentOptions);
  const https = new HttpsAgent(agentOptions);
  const warmMs = options.warmSocketMs ?? DEFAULT_WARM_SOCKET_MS;
  const warmHttp = warmable(http, warmMs);
  const warmHttps = warmable(https, warmMs);
  const fallback = options.fallback ?? ((input, init) => fetch(input, init));
  const lean = (input: string | URL | Request, init: RequestInit = {}): Promise<Response> => {
    const given = init.body;
    const body = given instanceof URLSearchParams ? given.toString() : given;
    const simpleBody = body === undefined || body === null || typeof body === 'string' || body instanceof Uint8Array;
    if (!(typeof input === 'string' || input instanceof URL) || init.redirect !== 'manual' || !simpleBody) return fallback(input, init);
    return send(new URL(input), init, body, given instanceof URLSearchParams ? FORM_TYPE : TEXT_TYPE, http, https);
  };
  return Object.assign(lean, {
    preconnect(url: string | URL): void {
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        return;
      }
      if (u.protocol === 'https:') warmHttps(u);
      else if (u.protocol === 'http:') warmHttp(u);
    },
  });
}

/** fetch's Content-Type for a form body and for a string one, when the caller set none. */
const FORM_TYPE = 'application/x-www-form-urlencoded;charset=UTF-8';
const TEXT_TYPE = 'text/plain;charset=UTF-8';

/**
 * `agent` taught to take a connection opened ahead: the returned function opens one to a URL's
 * origin (through the agent's own createConnection, so with the same TLS options, server name and
 * session cache as any of its requests), and the agent's next new connection to that origin is
 * that one while it is open and younger than `warmMs`. An agent with a free socket for the
 * origin needs none.
 */
function warmable(agent: HttpAgent, warmMs: number): (url: URL) => void {
  const warm = new Map<string, { socket: Duplex; drop: () => void }>();
  const isHttps = agent instanceof HttpsAgent;
  // The options an agent builds a connection from (Agent#createSocket): its own, host, port and
  // the server name (none for an IP address), keyed by its getName.
  const optionsFor = (u: URL): Record<string, unknown> => {
    const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
    const port = Number(u.port || (isHttps ? 443 : 80));
    const opts: Record<string, unknown> = { ...(agent as unknown as { options: object }).options, host, port };
    if (isHttps) opts.servername = isIP(host) ? '' : host;
    opts._agentKey = agent.getName(opts);
    return opts;
  };
  const create = agent.createConnection.bind(agent) as (opts: Record<string, unknown>, cb?: (err: Error | null, socket: Duplex) => void) => Duplex | undefined;
  (agent as unknown as { createConnection: typeof create }).createConnection = (opts, cb) => {
    const name = agent.getName(opts as Parameters<HttpAgent['getName']>[0]);
    const w = warm.get(name);
    if (w !== undefined) {
      w.drop();
      // Open, and nothing received on it (a server's unsolicited answer would be read as the request's).
      if (!w.socket.destroyed && w.socket.writable && !w.socket.readableEnded && w.socket.readableLength === 0) return w.socket;
      w.socket.destroy();
    }
    return create(opts, cb);
  };
  return (u) => {
    const opts = optionsFor(u);
    const name = opts._agentKey as string;
    if (warm.has(name) || (agent.freeSockets[name]?.length ?? 0) > 0) return;
    let socket: Duplex | undefined;
    try {
      socket = create(opts);
    } catch {
      return;
    }
    if (socket === undefined) return;
    const s = socket;
    const close = (): void => {
      drop();
      s.destroy();
    };
    const timer = setTimeout(close, warmMs);
    timer.unref();
    const drop = (): void => {
      clearTimeout(timer);
      s.off('error', close);
      s.off('end', close);
      if (warm.get(name)?.socket === s) warm.delete(name);
    };
    // An error or the server's close before a request took it: forget it (an error listener is
    // needed until then; the request adds its own).
    s.on('error', close);
    s.on('end', close);
    warm.set(name, { socket: s, drop });
  };
}

function send(url: URL, init: RequestInit, body: string | Uint8Array | null | undefined, contentType: string, http: HttpAgent, https: HttpsAgent): Promise<Response> {
  const signal = init.signal ?? undefined;
  if (signal?.aborted) return Promise.reject(signal.reason as Error);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return Promise.reject(new TypeError('fetch failed', { cause: new Error(`${url.protocol} URLs are not supported`) }));
  const method = (init.method ?? 'GET').toUpperCase();
  let headers: Record<string, string>;
  try {
    headers = outgoingHeaders(init.headers, body, contentType);
  } catch (err) {
    return Promise.reject(err as Error);
  }
  return new Promise<Response>((resolve, reject) => {
    let settled = false;
    let onAbort: (() => void) | undefined;
    const cleanup = (): void => {
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      onAbort = undefined;
    };
    const fail = (err: unknown): void => {
      if (settled) return;
      settled = true;
      cleanup();
      reject(signal?.aborted ? (signal.reason as Error) : new TypeError('fetch failed', { cause: err }));
    };
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, { method, headers, agent: url.protocol === 'https:' ? https : http });
    req.on('error', fail);
    if (signal) {
      onAbort = (): void => {
        req.destroy(signal.reason as Error);
        fail(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
    }
    req.on('response', (res: IncomingMessage) => {
      if (settled) {
        res.destroy();
        return;
      }
      let response: Response;
      try {
        response = toResponse(res, method, signal, cleanup);
      } catch (err) {
        res.destroy();
        fail(err);
        return;
      }
      settled = true;
      resolve(response);
    });
    req.end(body ?? undefined);
  });
}

/** The caller's headers (validated as fetch does) with fetch's defaults where the caller set none. */
function outgoingHeaders(init: HeadersInit | undefined, body: string | Uint8Array | null | undefined, contentType: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (init !== undefined) {
    // Headers validates names and values (no CR/LF) and joins repeated names, as fetch does.
    for (const [name, value] of new Headers(init)) out[name] = value;
  }
  out.accept ??= '*/*';
  out['user-agent'] ??= 'node';
  if (body !== undefined && body !== null) {
    out['content-length'] = String(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
    if (typeof body === 'string') out['content-type'] ??= contentType;
  }
  return out;
}

/**
 * A Response whose body streams from `res`: read on demand (backpressure pauses the socket),
 * cancelled by destroying an unfinished answer (its socket is not reused), and errored with
 * the signal's reason when the signal aborts mid-body.
 */
function toResponse(res: IncomingMessage, method: string, signal: AbortSignal | undefined, done: () => void): Response {
  const status = res.statusCode ?? 0;
  const headers = new Headers();
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
  const init: ResponseInit = { status, headers };
  if (res.statusMessage && /^[\t\x20-\x7e\x80-\xff]*$/.test(res.statusMessage)) init.statusText = res.statusMessage;
  if (NULL_BODY_STATUSES.has(status) || method === 'HEAD') {
    res.resume();
    res.once('end', done);
    res.once('close', done);
    return new Response(null, init);
  }
  const source = decoded(res, headers.get('content-encoding'));
  let finished = false;
  const stream = new ReadableStream<Uint8Array>({
    start(controller) {
      const finish = (err?: unknown): void => {
        if (finished) return;
        finished = true;
        done();
        if (err === undefined) controller.close();
        else controller.error(signal?.aborted ? signal.reason : new TypeError('terminated', { cause: err }));
      };
      source.on('data', (chunk: Buffer) => {
        if (finished) return;
        controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        if ((controller.desiredSize ?? 0) <= 0) source.pause();
      });
      source.once('end', () => finish());
      source.once('error', (err) => finish(err));
      // The socket closed before the body ended (a reset, or the request aborted by the signal).
      res.once('close', () => {
        if (!res.complete) finish(new Error('the connection closed before the answer ended'));
      });
      if (source !== res) res.once('error', (err) => finish(err));
    },
    pull() {
      source.resume();
    },
    cancel() {
      finished = true;
      done();
      // A body already received is drained so its socket goes back to the pool; an unfinished
      // one (maybe stalled, maybe large) is not worth waiting for: its connection is closed.
      if (res.complete) source.resume();
      else res.destroy();
    },
  });
  source.pause();
  return new Response(stream, init);
}

/** `res` decoded per its Content-Encoding (fetch decodes gzip, deflate and br; nothing asked for them here, but a server may send them). */
function decoded(res: IncomingMessage, encoding: string | null): Readable {
  const coding = encoding?.trim().toLowerCase();
  const decoder = coding === 'gzip' || coding === 'x-gzip' ? createGunzip() : coding === 'deflate' ? createInflate() : coding === 'br' ? createBrotliDecompress() : undefined;
  if (!decoder) return res;
  res.pipe(decoder);
  return decoder;
}
