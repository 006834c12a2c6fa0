import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SOURCE_NAME } from '../config/constants.js';
import { ExitCode, LatchkeyError } from '../core/errors.js';
import { isLoopbackHost } from '../oauth/endpoint.js';
import type { Secret } from '../core/secret.js';
import { bearerMatches, checkedBody, json, pathOf, problem, RouteTable, send, tokenDigest, type Reply, type Route } from '../http/route-table.js';
import { GZIP_JSON_HEADERS, JSON_HEADERS, SECURITY_HEADERS } from '../http/security-headers.js';
import { DASHBOARD_CSP, dashboardAsset, DASHBOARD_ASSET_PATHS } from './dashboard-page.js';

/**
 * The keeper's HTTP surface. Every route and its request schema is declared in one table
 * (`buildRoutes`, on the shared route table of src/http/);
 * everything a response needs that does not change per request (headers, the dashboard bytes,
 * the token digest) is computed at start-up, and the report bytes once per cycle, so a request
 * does a table lookup and a write.
 *
 * Loopback by default. A non-loopback bind needs `allowRemote` and a bearer token; then every
 * route except `/livez` and the static dashboard files (which hold no data, and which a browser
 * fetches without credentials) requires `Authorization: Bearer <token>`, compared in constant
 * time. On loopback the Host header must name a loopback address, so a web page on another
 * origin cannot read the report through DNS rebinding.
 */

/** What the server needs from the keeper (a narrow view, so tests can pass a stub). */
export interface KeeperHttpBackend {
  readonly reportBytes: Buffer;
  /** The same bytes gzipped (a dashboard polls them every few seconds, a phone on a slow link). */
  readonly reportGzip?: Buffer;
  /** `GET /api/history`: every source's 24 h probe timeline (built on demand, cached until the next change). */
  readonly history?: { bytes: Buffer; gzip: Buffer };
  readonly readinessBytes: Buffer;
  readonly readiness: { ready: boolean };
  probeNow(source?: string): Promise<unknown>;
  readonly metrics: { render(): Promise<string>; readonly contentType: string };
}

/** Where the keeper's HTTP server binds, and its guards for a non-loopback bind. */
export interface KeeperHttpOptions {
  host: string;
  port: number;
  allowRemote?: boolean;
  /** Bearer token required on every data route (mandatory for a non-loopback host). */
  token?: Secret;
}

/** The keeper's HTTP server once bound: its URL and `close()`. */
export interface KeeperHttpServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly remote: boolean;
  close(): Promise<void>;
}

/** `POST /api/probe` body: `{}` (every source) or `{ "source": "<name>" }`. */
export function probeBodySchema(v: unknown): { ok: true; value: { source?: string } } | { ok: false; message: string } {
  if (v === undefined) return { ok: true, value: {} };
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, message: 'expected a JSON object' };
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) if (k !== 'source') return { ok: false, message: `unknown field "${k}" (only "source")` };
  if (o.source === undefined) return { ok: true, value: {} };
  if (typeof o.source !== 'string' || !SOURCE_NAME.test(o.source)) return { ok: false, message: '"source" must be a source name' };
  return { ok: true, value: { source: o.source } };
}

/** The routes, their auth and schemas: the whole HTTP surface in one table. */
function buildRoutes(backend: KeeperHttpBackend): Route[] {
  const assets: Route[] = DASHBOARD_ASSET_PATHS.map((path) => {
    // Built on the first request, not at start-up: the PNG icons take ~40 ms and ~30 MB of
    // short-lived allocations to rasterize, which made the keeper's young heap grow before its
    // first cycle (keeper-scale RSS). Most keepers never serve them at all.
    let reply: Reply | undefined;
    const build = (): Reply => {
      const a = dashboardAsset(path);
      if (!a) throw new Error(`missing dashboard asset ${path}`);
      const headers = Object.freeze({ ...SECURITY_HEADERS, ...a.headers, 'Content-Security-Policy': path === '/' ? DASHBOARD_CSP : SECURITY_HEADERS['Content-Security-Policy']! });
      return { status: 200, headers: a.gzip ? { ...headers, Vary: 'Accept-Encoding' } : headers, body: a.body, ...(a.gzip ? { gzip: a.gzip } : {}) };
    };
    return { method: 'GET', path, auth: 'public', handle: () => (reply ??= build()) } satisfies Route;
  });
  return [
    ...assets,
    {
      method: 'GET',
      path: '/api/health',
      auth: 'bearer',
      handle: () => {
        const gzip = backend.reportGzip;
        return gzip ? { status: 200, headers: GZIP_JSON_HEADERS, body: backend.reportBytes, gzip } : { status: 200, headers: JSON_HEADERS, body: backend.reportBytes };
      },
    },
    {
      method: 'GET',
      path: '/api/history',
      auth: 'bearer',
      handle: () => {
        const h = backend.history;
        if (!h) return problem(404, 'not_found', 'this keeper keeps no history');
        return { status: 200, headers: GZIP_JSON_HEADERS, body: h.bytes, gzip: h.gzip };
      },
    },
    {
      method: 'POST',
      path: '/api/probe',
      auth: 'bearer',
      csrf: true,
      body: probeBodySchema,
      async handle({ body }) {
        const { source } = body as { source?: string };
        try {
          await backend.probeNow(source);
        } catch (err) {
          if (err instanceof LatchkeyError && err.code === 'LK_UNKNOWN_SOURCE') return problem(err.httpStatus, 'unknown_source', err.message);
          throw err;
        }
        return { status: 200, headers: JSON_HEADERS, body: backend.reportBytes };
      },
    },
    {
      method: 'GET',
      path: '/readyz',
      auth: 'bearer',
      handle: () => ({ status: backend.readiness.ready ? 200 : 503, headers: JSON_HEADERS, body: backend.readinessBytes }),
    },
    { method: 'GET', path: '/livez', auth: 'public', handle: () => json(200, { live: true }) },
    {
      method: 'GET',
      path: '/metrics',
      auth: 'bearer',
      async handle() {
        const text = await backend.metrics.render();
        return { status: 200, headers: { ...SECURITY_HEADERS, 'Content-Type': backend.metrics.contentType, 'Cache-Control': 'no-store' }, body: text };
      },
    },
  ];
}

/** Checks the configuration before anything binds: a non-loopback host needs both guards. */
export function checkBind(options: KeeperHttpOptions): { remote: boolean } {
  const remote = !isLoopbackHost(options.host);
  if (remote && !(options.allowRemote && options.token)) {
    throw new LatchkeyError(
      'LK_USAGE',
      `refusing to serve the keeper on ${options.host}, which is not a loopback address: the dashboard and /api/health would be open to the network. ` +
        'To do it anyway, pass --allow-remote and --token <secret-ref> (env:NAME, file:/path or keyring:service/account); every request must then carry that bearer token.',
    );
  }
  if (options.token && options.token.length < 16) {
    throw new LatchkeyError('LK_USAGE', 'the keeper access token is too short (at least 16 characters; e.g. `openssl rand -hex 32`)');
  }
  return { remote };
}

/** Starts the HTTP server. A port in use is a LK_KEEPER error naming host and port (exit 1). */
export async function startKeeperHttp(backend: KeeperHttpBackend, options: KeeperHttpOptions): Promise<KeeperHttpServer> {
  const { remote } = checkBind(options);
  const table = new RouteTable(buildRoutes(backend));
  const expected = options.token ? tokenDigest(options.token.reveal()) : undefined;
  let allowedHosts: Set<string> | undefined;

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(req, res, problem(500, 'internal', 'internal error'));
      else res.destroy();
    });
  });
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  server.keepAliveTimeout = 5_000;

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = pathOf(req.url);
    // RFC 9112 §3.2: a request with more than one Host field line is answered 400; Node keeps
    // only the first in `req.headers`, so a proxy and this keeper could disagree on the host.
    // (Missing Host, conflicting Content-Length and Content-Length with Transfer-Encoding are
    // refused with 400 by Node's parser before they get here, RFC 9112 §6.3.)
    if ((req.headersDistinct.host?.length ?? 0) > 1) {
      return send(req, res, problem(400, 'bad_request', 'more than one Host header (RFC 9112 §3.2)', { Connection: 'close' }));
    }
    if (allowedHosts && !allowedHosts.has((req.headers.host ?? '').toLowerCase())) {
      return send(req, res, problem(421, 'misdirected', 'this keeper answers only to a loopback Host (127.0.0.1, localhost or [::1])'));
    }
    const matched = table.match(req.method, path);
    if ('reply' in matched) return send(req, res, matched.reply);
    const { route } = matched;
    if (route.auth === 'bearer' && expected && !bearerMatches(req.headers.authorization, expected)) {
      return send(req, res, problem(401, 'unauthorized', 'this keeper requires Authorization: Bearer <token>', { 'WWW-Authenticate': 'Bearer realm="latchkey"' }));
    }
    const checked = await checkedBody(route, req);
    if (!checked.ok) return send(req, res, checked.reply);
    const reply = await route.handle({ req, body: checked.body });
    if (route.method === 'GET' && reply.status === 200 && reply.headers.ETag && req.headers['if-none-match'] === reply.headers.ETag) {
      return send(req, res, { status: 304, headers: reply.headers, body: '' });
    }
    send(req, res, reply);
  }

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      reject(listenError(err, options.host, options.port));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ host: options.host, port: options.port, exclusive: true });
  });
  const addr = server.address() as AddressInfo;
  const hostForUrl = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  if (!remote) {
    const names = new Set(['127.0.0.1', 'localhost', '[::1]', hostForUrl.toLowerCase()]);
    allowedHosts = new Set([...names].flatMap((h) => [`${h}:${addr.port}`, ...(addr.port === 80 ? [h] : [])]));
  }
  return {
    url: `http://${hostForUrl}:${addr.port}`,
    host: addr.address,
    port: addr.port,
    remote,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
        // A dashboard's keep-alive or a long POST /api/probe must not hold the shutdown.
        setTimeout(() => server.closeAllConnections(), 1_000).unref();
      }),
  };
}

/** The listen error (its `cause` carries the errno `code`, see {@link isTransientListenError}). */
function listenError(err: NodeJS.ErrnoException, host: string, port: number): Error {
  const where = `${host}:${port}`;
  const o = { exitCode: ExitCode.usage, cause: err } as const;
  switch (err.code) {
    case 'EADDRINUSE':
      return new LatchkeyError(
        'LK_KEEPER',
        `port ${port} on ${host} is already in use (another keeper, or another program, is listening on ${where}). ` +
          'Choose another port with --port <n> (or keeper.port in the config), or stop whatever holds it.',
        o,
      );
    case 'EACCES':
      return new LatchkeyError('LK_KEEPER', `not allowed to listen on ${where} (ports below 1024 need privileges); choose another with --port`, o);
    case 'EADDRNOTAVAIL':
      return new LatchkeyError('LK_KEEPER', `cannot listen on ${where}: no network interface has the address ${host} (yet)`, o);
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new LatchkeyError('LK_KEEPER', `cannot listen on ${where}: the host name ${host} does not resolve`, o);
    default:
      return new LatchkeyError('LK_KEEPER', `cannot listen on ${where}: ${err.message}`, o);
  }
}

/**
 * A bind failure that can go away by itself: the port is held by someone else for now, or the
 * interface is not up yet (a service started at boot). The keeper runs on without its HTTP
 * server and tries again; anything else (no permission, a host that does not resolve) is a
 * configuration error.
 */
export function isTransientListenError(err: unknown): boolean {
  const code = err instanceof LatchkeyError ? (err.cause as NodeJS.ErrnoException | undefined)?.code : undefined;
  return code === 'EADDRINUSE' || code === 'EADDRNOTAVAIL';
}
