import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { systemClock } from '../core/clock.js';
import { LatchkeyError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { sanitizeMessage } from '../core/sanitize.js';
import { csrfRefusalFor } from '../http/csrf.js';
import { pathOf, problem, RouteTable, type Reply, type Route } from '../http/route-table.js';
import { checkEndpoint } from '../oauth/endpoint.js';
import { latchkeyHome, homePaths } from '../paths.js';
import { FileStore } from '../store/file-store.js';
import type { Store } from '../store/store.js';
import type { GatewayContext } from './context.js';
import { finishLogin, startLogin } from './login.js';
import { LoginLimiter } from './login-limiter.js';
import { GatewayMetrics } from './metrics.js';
import { OidcClient } from './oidc-client.js';
import { DEFAULT_SCOPES, type GatewayLog, type GatewayOptions } from './options.js';
import { UpstreamProxy } from './proxy.js';
import { SessionRefresher } from './refresh.js';
import { appendCookies, json, sendReply, signInRequired, unavailable, type GatewayReply } from './replies.js';
import { requestShape, type RequestShape } from './request-shape.js';
import { loadOrCreateKeyFile, sealKeyFromSecret, type SealKey } from './seal.js';
import { SessionAuth } from './session-auth.js';
import { SessionCookies } from './session-cookies.js';
import { check, logout, me, wsTicket } from './session-routes.js';
import { SessionStore } from './session-store.js';
import { Tickets } from './tickets.js';
import { TrustedProxies } from './trusted-proxies.js';
import { proxyUpgrade, refuseUpgrade, takeTicket } from './upgrade.js';
import type { SessionIdentity } from './session-store.js';
import { stripIdentityHeaders, identityHeaders } from './identity-headers.js';
import { withoutGatewayCookies } from './cookie-rules.js';

/** The identity a request was authenticated as (what middleware puts on `req.latchkey`). */
export interface GatewayIdentity {
  sub: string;
  email?: string;
  name?: string;
  /** When the session ends (ms since the epoch). */
  sessionExpiresAt: number;
}

/** Node `http` / Express middleware: `(req, res, next)`. */
export type NodeMiddleware = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;

/** A Fastify plugin (encapsulation skipped, so its hook covers the whole app). */
export interface FastifyPlugin {
  (instance: { addHook(name: 'onRequest', hook: (request: { raw: IncomingMessage; latchkey?: GatewayIdentity }, reply: { raw: ServerResponse; hijack(): void; header(k: string, v: unknown): unknown }) => Promise<void>): unknown; decorateRequest?(name: string, value: unknown): unknown }, opts: unknown): Promise<void>;
}

/** The gateway's middleware for the three server styles, over one core. */
export interface GatewayMiddleware {
  /** Node `http`: `createServer((req, res) => gw.middleware.node(req, res, () => app(req, res)))`. */
  node: NodeMiddleware;
  /** Express: `app.use(gw.middleware.express)`. */
  express: NodeMiddleware;
  /** Fastify: `await fastify.register(gw.middleware.fastify)`; the identity is on `request.latchkey`. */
  fastify: FastifyPlugin;
}

/** A session gateway: reverse proxy, forward-auth and middleware over one core. */
export interface Gateway {
  /** Answers one request: `/auth/*`, `/livez`, `/readyz`, `/metrics`, else authenticates and proxies to the upstream. */
  handle(req: IncomingMessage, res: ServerResponse): Promise<void>;
  /** Answers an HTTP upgrade (WebSocket): authenticated by the session cookie or `?ticket=`, then passed through. */
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void>;
  middleware: GatewayMiddleware;
  /** Metrics registry (Prometheus text at `/metrics`). */
  readonly metrics: GatewayMetrics;
  close(): Promise<void>;
}

/** What {@link GatewayCore.intercept} decided. */
type Interception = { kind: 'handled' } | { kind: 'pass'; identity?: SessionIdentity; sessionExpiresAt?: number; setCookies: readonly string[]; shape: RequestShape };

function defaultLog(): GatewayLog {
  return (level, event, fields = {}) => {
    const line: Record<string, unknown> = { time: new Date().toISOString(), level, event };
    for (const [k, v] of Object.entries(fields)) if (v !== undefined) line[k] = typeof v === 'string' ? sanitizeMessage(v) : v;
    try {
      process.stderr.write(`${JSON.stringify(line)}\n`);
    } catch {
      // a closed stderr must not take the gateway down
    }
  };
}

async function resolveSecret(value: string | Secret | undefined, env: NodeJS.ProcessEnv): Promise<Secret | undefined> {
  if (value === undefined) return undefined;
  if (value instanceof Secret) return value;
  const { resolveSecretRef } = await import('../config/secret-ref.js');
  return resolveSecretRef(value, env);
}

function checkUrl(value: string, field: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new LatchkeyError('LK_CONFIG_INVALID', `gateway ${field} is not a valid URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new LatchkeyError('LK_CONFIG_INVALID', `gateway ${field} must be an http(s) URL`);
  return u;
}

/** Builds a gateway: the key, the store, the IdP client (discovered lazily; `/readyz` says when it is ready). */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  if (!options.issuer) throw new LatchkeyError('LK_CONFIG_INVALID', 'gateway needs an issuer (--issuer <url>)');
  if (!options.clientId) throw new LatchkeyError('LK_CONFIG_INVALID', 'gateway needs a client id (--client-id <id>)');
  checkUrl(options.issuer, 'issuer');
  // RFC 9700 §2.6: the IdP over HTTPS (plain HTTP only on loopback), said at start, not at the first login.
  checkEndpoint(options.issuer, 'gateway issuer');
  const upstream = options.upstream !== undefined ? checkUrl(options.upstream, 'upstream') : undefined;
  const env = options.env ?? process.env;
  const clock = options.clock ?? systemClock;
  const fetchImpl = options.fetch ?? globalThis.fetch.bind(globalThis);
  const home = options.home ?? latchkeyHome(env);
  const log = options.log ?? defaultLog();
  const trusted = new TrustedProxies(options.trustedProxies ?? []);
  const publicPaths = (options.publicPaths ?? []).map((p) => {
    if (!p.startsWith('/') || /[\s?#\\]/.test(p)) throw new LatchkeyError('LK_CONFIG_INVALID', `gateway public path "${p}" must be a path prefix starting with /`);
    return p.endsWith('/') && p.length > 1 ? p.slice(0, -1) : p;
  });
  const ownsStore = options.store === undefined;
  const store: Store = options.store ?? new FileStore({ path: homePaths(home).store, now: () => clock.now() });
  const key: SealKey = options.sealKey !== undefined ? sealKeyFromSecret((await resolveSecret(options.sealKey, env)) as Secret) : await loadOrCreateKeyFile(home);
  const clientSecret = await resolveSecret(options.clientSecret, env);
  const skewMs = (options.refreshSkewSeconds ?? 30) * 1000;
  const metrics = new GatewayMetrics();
  const oidc = new OidcClient({ issuer: options.issuer, clientId: options.clientId, clientSecret, clientAuth: options.clientAuth, scopes: options.scopes ?? DEFAULT_SCOPES, fetch: fetchImpl, clock });
  const sessions = new SessionStore({ store, key, clock, refreshTtlMs: (options.refreshTokenLifetimeSeconds ?? 14 * 86_400) * 1000, successorTtlMs: options.successorTtlSeconds !== undefined ? options.successorTtlSeconds * 1000 : undefined });
  const cookies = new SessionCookies(key, clock, skewMs);
  // The refresh settings need discovery; the refresher asks for them on first use.
  let settings: Awaited<ReturnType<OidcClient['refreshSettings']>> | undefined;
  const refresher = new SessionRefresher({
    sessions,
    store,
    clock,
    fetch: fetchImpl,
    get settings() {
      return settings ?? { clientId: options.clientId };
    },
    confirmRefusalDelayMs: options.confirmRefusalDelayMs,
    lockTimeoutMs: options.lockTimeoutMs,
    onEvent: (e) => {
      metrics.onEngineEvent(e);
      if (e.outcome !== 'adopted') log(e.outcome === 'refreshed' ? 'info' : 'warn', 'refresh', { outcome: e.outcome, durationMs: e.durationMs, message: e.message });
    },
  });
  const auth = new SessionAuth({
    sessions,
    cookies,
    refresher,
    clock,
    skewMs,
    metrics,
    sessionCacheMs: options.sessionCacheMs ?? 1000,
    ...(options.accessTokenCheck === 'expiry' ? {} : { checkAccessToken: (at: string) => oidc.checkAccessToken(at) }),
  });
  const ctx: GatewayContext = { store, key, clock, oidc, sessions, cookies, auth, tickets: new Tickets(store, key), loginLimiter: new LoginLimiter(options.loginRateLimit), metrics, log, postLogoutRedirectUri: options.postLogoutRedirectUri };
  const proxy = upstream ? new UpstreamProxy(upstream, metrics) : undefined;
  const ensureSettings = async (): Promise<void> => {
    settings ??= await oidc.refreshSettings(skewMs);
  };
  // Expired tickets, login markers, successors and ended sessions are removed once a minute
  // (several gateways sweeping the same store is safe: the file store claims before removing).
  const sweeper = setInterval(() => {
    store.sweep().catch((err: unknown) => log('warn', 'sweep_failed', { message: err instanceof Error ? err.message : 'sweep failed' }));
  }, options.sweepIntervalMs ?? 60_000);
  sweeper.unref();
  // Discovery at start-up, without failing it: /readyz says 503 until the IdP answered once.
  void ensureSettings().catch(() => log('warn', 'discovery_failed', { message: `cannot read the IdP's metadata yet (${options.issuer}); retrying on demand` }));

  type Handler = (req: IncomingMessage, shape: RequestShape) => Promise<GatewayReply>;
  const csrf = (h: Handler): Handler => async (req, shape) => {
    const refusal = csrfRefusalFor(req, { header: 'X-Latchkey-CSRF', expectedOrigin: shape.origin });
    return refusal ? problem(403, 'csrf', refusal) : h(req, shape);
  };
  const needsIdp = (h: Handler): Handler => async (req, shape) => {
    try {
      await ensureSettings();
    } catch {
      return unavailable(5);
    }
    return h(req, shape);
  };
  // The shape of each request in flight, for the route handlers (the route table hands them the request only).
  const shapes = new WeakMap<IncomingMessage, RequestShape>();
  // The gateway's CSRF rule (its own header, the public origin) wraps the handler (`csrf` below),
  // so the table's generic `csrf` flag stays unset.
  const route = (method: 'GET' | 'POST', path: string, h: Handler): Route => ({
    method,
    path,
    auth: 'public',
    handle: ({ req }) => h(req, shapes.get(req) as RequestShape),
  });
  /** Every route the gateway answers itself, in one table (Fastify style: built once at start-up). */
  const authRoutes: Route[] = [
    route('GET', '/auth/login', (req, shape) => startLogin(ctx, req, shape)),
    route('GET', '/auth/callback', needsIdp((req, shape) => finishLogin(ctx, req, shape))),
    route('POST', '/auth/logout', csrf((req, shape) => logout(ctx, req, shape))),
    route('GET', '/auth/me', async (req, shape) => me(ctx, req, shape, skewMs)),
    route('POST', '/auth/ws-ticket', csrf(needsIdp((req, shape) => wsTicket(ctx, req, shape)))),
    route('GET', '/auth/check', needsIdp((req, shape) => check(ctx, req, shape))),
  ];
  const healthRoutes: Route[] = [
    route('GET', '/livez', async () => json(200, { status: 'ok' })),
    route('GET', '/readyz', async () => (oidc.ready ? json(200, { status: 'ready' }) : json(503, { status: 'not_ready', message: 'the IdP has not answered discovery yet' }, { 'Retry-After': '5' }))),
    route('GET', '/metrics', async () => {
      metrics.inFlight.set(refresher.inFlight);
      return { status: 200, headers: { 'Content-Type': metrics.registry.contentType, 'Cache-Control': 'no-store' }, body: await metrics.registry.metrics() } satisfies Reply;
    }),
  ];
  const authTable = new RouteTable(authRoutes);
  const fullTable = new RouteTable([...authRoutes, ...healthRoutes]);

  /**
   * Public paths are matched on a path without dot segments or backslashes (raw or
   * percent-encoded): `/public/../admin` would match `/public` here and be `/admin` upstream.
   * Such a path is never public (it needs a session like any other).
   */
  const isPublic = (path: string): boolean => {
    if (publicPaths.length === 0) return false;
    let decoded: string;
    try {
      decoded = decodeURIComponent(path);
    } catch {
      return false;
    }
    if (decoded.includes('\\') || /(^|\/)\.{1,2}(;[^/]*)?(\/|$)/.test(decoded)) return false;
    return publicPaths.some((p) => p === '/' || path === p || path.startsWith(`${p}/`));
  };

  /**
   * The one core every front end uses: answers the gateway's own routes and every refusal
   * itself; for a request that may go on, says who it is and which cookies to set.
   */
  async function intercept(req: IncomingMessage, res: ServerResponse, own: { health: boolean; beforeWrite?: () => void }): Promise<Interception> {
    const reply = (r: GatewayReply): Interception => {
      own.beforeWrite?.();
      sendReply(req, res, r);
      return { kind: 'handled' };
    };
    const shaped = requestShape(req, trusted);
    if (!shaped.ok) return reply(problem(400, 'bad_request', shaped.message));
    const shape = shaped.shape;
    // Origin-form targets only (RFC 9112 §3.2.1): an absolute-form one is meant for a forward proxy.
    if (!req.url?.startsWith('/')) return reply(problem(400, 'bad_request', 'the request target must be a path (origin-form)'));
    const path = pathOf(req.url);
    const table = own.health ? fullTable : authTable;
    if (path.startsWith('/auth/') || (own.health && (path === '/livez' || path === '/readyz' || path === '/metrics'))) {
      const m = table.match(req.method, path);
      if ('reply' in m) return reply(m.reply);
      shapes.set(req, shape);
      return reply(await m.route.handle({ req, body: undefined }));
    }
    if (isPublic(path)) {
      metrics.requests.inc({ outcome: 'public' });
      return { kind: 'pass', setCookies: [], shape };
    }
    if (options.upstreamCsrf && req.method !== 'GET' && req.method !== 'HEAD' && req.method !== 'OPTIONS') {
      const refusal = csrfRefusalFor(req, { header: 'X-Latchkey-CSRF', expectedOrigin: shape.origin });
      if (refusal) return reply(problem(403, 'csrf', refusal));
    }
    try {
      await ensureSettings();
    } catch {
      // Without the IdP's metadata a due session cannot be refreshed; a live one still passes.
    }
    const r = await auth.authenticate(req, shape, { refresh: true });
    metrics.requests.inc({ outcome: r.kind });
    if (r.kind === 'ok') return { kind: 'pass', identity: r.session.identity, sessionExpiresAt: r.session.endsAt, setCookies: r.setCookies, shape };
    if (r.kind === 'unavailable') return reply(unavailable(r.retryAfterSeconds));
    return reply(signInRequired(req, shape, req.url, r.kind === 'ended' ? r.setCookies : []));
  }

  async function guarded<T>(res: ServerResponse | undefined, work: () => Promise<T>): Promise<T | undefined> {
    try {
      return await work();
    } catch (err) {
      log('error', 'request_failed', { message: err instanceof Error ? err.message : 'unexpected error', code: err instanceof LatchkeyError ? err.code : undefined });
      if (res && !res.headersSent) {
        const body = JSON.stringify({ error: 'temporarily_unavailable', message: 'the gateway could not complete the request; try again shortly' });
        res.writeHead(503, { 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', 'Retry-After': '5', 'Content-Length': String(Buffer.byteLength(body)) });
        res.end(body);
      } else res?.destroy();
      return undefined;
    }
  }

  /** Puts the identity where an in-process app reads it, and takes the gateway's cookies out of its view. */
  function present(req: IncomingMessage & { latchkey?: GatewayIdentity }, pass: Extract<Interception, { kind: 'pass' }>): void {
    stripIdentityHeaders(req.headers);
    const cookie = withoutGatewayCookies(req.headers.cookie);
    if (cookie === undefined) delete req.headers.cookie;
    else req.headers.cookie = cookie;
    if (pass.identity) {
      Object.assign(req.headers, identityHeaders(pass.identity));
      req.latchkey = { sub: pass.identity.sub, ...(pass.identity.email ? { email: pass.identity.email } : {}), ...(pass.identity.name ? { name: pass.identity.name } : {}), sessionExpiresAt: pass.sessionExpiresAt ?? 0 };
    }
  }

  const node: NodeMiddleware = (req, res, next) => {
    void guarded(res, async () => {
      const r = await intercept(req, res, { health: false });
      if (r.kind === 'handled') return;
      present(req, r);
      if (r.setCookies.length) res.setHeader('Set-Cookie', appendCookies(res.getHeader('set-cookie'), r.setCookies));
      next();
    });
  };

  const fastify: FastifyPlugin = async (instance) => {
    instance.decorateRequest?.('latchkey', null);
    instance.addHook('onRequest', async (request, reply) => {
      const req = request.raw;
      const res = reply.raw;
      let hijacked = false;
      const done = await guarded(undefined, async () => {
        const r = await intercept(req, res, {
          health: false,
          beforeWrite: () => {
            hijacked = true;
            reply.hijack();
          },
        });
        if (r.kind === 'handled') return;
        present(req, r);
        request.latchkey = (req as IncomingMessage & { latchkey?: GatewayIdentity }).latchkey;
        if (r.setCookies.length) reply.header('set-cookie', [...r.setCookies]);
        return true;
      });
      if (done === undefined && !hijacked) {
        // Fail closed: the app's handler must not run for a request the gateway could not judge.
        hijacked = true;
        reply.hijack();
        if (!res.headersSent) sendReply(req, res, unavailable(5, 'the gateway could not complete the request; try again shortly'));
        else res.destroy();
      }
      if (!hijacked && res.headersSent) reply.hijack();
    });
  };
  (fastify as unknown as Record<symbol, boolean>)[Symbol.for('skip-override')] = true;

  const gateway: Gateway = {
    metrics,
    middleware: { node, express: node, fastify },
    async handle(req, res) {
      await guarded(res, async () => {
        const r = await intercept(req, res, { health: true });
        if (r.kind === 'handled') return;
        if (!proxy) {
          sendReply(req, res, { ...problem(404, 'not_found', 'this gateway has no upstream'), cookies: r.setCookies });
          return;
        }
        metrics.requests.inc({ outcome: 'proxied' });
        await proxy.forward(req, res, r.shape, r.identity, r.setCookies);
      });
    },
    async upgrade(req, socket, head) {
      socket.on('error', () => socket.destroy());
      const answered = await guarded(undefined, async () => {
        await upgradeOnce();
        return true;
      });
      if (answered === undefined) refuseUpgrade(socket, 503, 'temporarily_unavailable', 'the gateway could not complete the request; try again shortly', { 'Retry-After': '5' });

      async function upgradeOnce(): Promise<void> {
        const shaped = requestShape(req, trusted);
        if (!shaped.ok) return refuseUpgrade(socket, 400, 'bad_request', shaped.message);
        const shape = shaped.shape;
        if (!req.url?.startsWith('/')) return refuseUpgrade(socket, 400, 'bad_request', 'the request target must be a path (origin-form)');
        if (!proxy) return refuseUpgrade(socket, 404, 'not_found', 'this gateway has no upstream');
        const { url, tickets } = takeTicket(req.url);
        const path = pathOf(url);
        if (path.startsWith('/auth/')) return refuseUpgrade(socket, 404, 'not_found', 'no upgrade on the gateway\'s own routes');
        let identity: SessionIdentity | undefined;
        let setCookies: readonly string[] = [];
        if (tickets.length > 1) return refuseUpgrade(socket, 400, 'bad_request', 'more than one ticket');
        if (tickets.length === 1) {
          const check = await ctx.tickets.redeem(tickets[0] as string, typeof req.headers.origin === 'string' ? req.headers.origin : undefined);
          metrics.tickets.inc({ outcome: check.ok ? 'redeemed' : check.reason });
          if (!check.ok) return refuseUpgrade(socket, check.reason === 'malformed' ? 400 : 401, 'invalid_ticket', check.reason === 'origin' ? 'the ticket was minted for another Origin' : 'the ticket is unknown, expired or already used');
          const session = await sessions.load(check.claims.sid);
          if (!session) return refuseUpgrade(socket, 401, 'session_expired', 'the session of this ticket has ended');
          identity = session.identity;
        } else if (!isPublic(path)) {
          await ensureSettings().catch(() => undefined);
          const r = await auth.authenticate(req, shape, { refresh: true });
          if (r.kind === 'unavailable') return refuseUpgrade(socket, 503, 'temporarily_unavailable', 'the identity provider cannot be reached right now', { 'Retry-After': String(r.retryAfterSeconds) });
          if (r.kind !== 'ok') return refuseUpgrade(socket, 401, 'session_expired', 'sign in first (or present a ticket from POST /auth/ws-ticket)');
          // A cross-site page may open a WebSocket with the browser's cookies (no CORS for WebSockets): the Origin must be ours.
          const origin = req.headers.origin;
          if (origin !== undefined && origin !== shape.origin) return refuseUpgrade(socket, 403, 'csrf', 'cross-origin WebSocket refused (Origin)');
          identity = r.session.identity;
          setCookies = r.setCookies;
        }
        proxyUpgrade(proxy, metrics, req, socket, head, shape, identity, url, setCookies);
      }
    },
    async close() {
      clearInterval(sweeper);
      proxy?.close();
      if (ownsStore) await store.close();
    },
  };
  return gateway;
}
