/**
 * The peer of the gateway bench: what a Node team puts in front of a dashboard today.
 * `express-openid-connect` (authorization code flow with PKCE, `offline_access`, its default
 * encrypted rolling cookie session) protecting an upstream through `http-proxy-middleware`
 * with a keep-alive agent, plus the refresh-when-expired middleware its documentation gives
 * (express-openid-connect has no automatic refresh):
 *
 *   if (req.oidc.accessToken?.isExpired()) await req.oidc.accessToken.refresh();
 *
 * A refresh the IdP refuses (`invalid_grant`) ends the session as an app would: 401
 * `{"error":"session_expired"}` (express-openid-connect leaves this to the app; without the
 * handler it would be Express's 400/500 page). The identity goes upstream as
 * `X-Forwarded-User`, like the Latchkey gateway does, so both do the same work per request.
 *
 *   node gateway-peer-server.js --upstream URL --issuer URL --client-id ID [--port N]
 *     (env LATCHKEY_PEER_CLIENT_SECRET, LATCHKEY_PEER_SESSION_SECRET: shared by every process)
 *
 * Prints one JSON line `{"url":"http://127.0.0.1:PORT","pid":…}` once it listens (it discovers
 * the IdP on its first request). `GET /__peer/stats` (unauthenticated) answers its counters.
 */
import { Agent } from 'node:http';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parseArgs } from 'node:util';
import express, { type NextFunction, type Request, type Response } from 'express';
import { auth } from 'express-openid-connect';
import { createProxyMiddleware } from 'http-proxy-middleware';

interface PeerStats {
  refreshAttempts: number;
  refreshSuccesses: number;
  refreshFailures: number;
  sessionExpired: number;
  otherErrors: number;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { upstream: { type: 'string' }, issuer: { type: 'string' }, 'client-id': { type: 'string' }, port: { type: 'string' } },
    strict: true,
  });
  const upstream = values.upstream;
  const issuer = values.issuer;
  const clientId = values['client-id'];
  const clientSecret = process.env.LATCHKEY_PEER_CLIENT_SECRET;
  const sessionSecret = process.env.LATCHKEY_PEER_SESSION_SECRET;
  if (!upstream || !issuer || !clientId || !clientSecret || !sessionSecret) {
    throw new Error('usage: --upstream URL --issuer URL --client-id ID, env LATCHKEY_PEER_CLIENT_SECRET and LATCHKEY_PEER_SESSION_SECRET');
  }
  const stats: PeerStats = { refreshAttempts: 0, refreshSuccesses: 0, refreshFailures: 0, sessionExpired: 0, otherErrors: 0 };

  const app = express();
  app.disable('x-powered-by');
  const server = createServer(app);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(values.port === undefined ? 0 : Number(values.port), '127.0.0.1', resolve));
  const baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  app.get('/__peer/stats', (_req, res) => {
    res.json(stats);
  });
  app.use(
    auth({
      issuerBaseURL: issuer,
      baseURL,
      clientID: clientId,
      clientSecret,
      secret: sessionSecret,
      authRequired: true,
      idpLogout: false,
      authorizationParams: { response_type: 'code', scope: 'openid offline_access email', prompt: 'consent' },
    }),
  );
  // The refresh-when-expired middleware from express-openid-connect's documentation.
  app.use(async (req: Request, _res: Response, next: NextFunction) => {
    const oidc = req.oidc;
    if (oidc.accessToken?.isExpired()) {
      stats.refreshAttempts += 1;
      try {
        await oidc.accessToken.refresh();
        stats.refreshSuccesses += 1;
      } catch (err) {
        stats.refreshFailures += 1;
        throw err;
      }
    }
    next();
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  app.use(
    createProxyMiddleware<Request, Response>({
      target: upstream,
      agent,
      on: {
        proxyReq: (proxyReq, req) => {
          const user = (req as Request).oidc.user as { sub?: string; email?: string } | undefined;
          if (user?.sub) {
            proxyReq.setHeader('x-forwarded-user', user.sub);
            if (user.email) proxyReq.setHeader('x-forwarded-email', user.email);
          }
        },
      },
    }),
  );
  app.use((err: unknown, _req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(err);
      return;
    }
    const code = typeof err === 'object' && err !== null ? (err as { error?: unknown }).error : undefined;
    if (code === 'invalid_grant' || code === 'invalid_client') {
      stats.sessionExpired += 1;
      res.status(401).json({ error: 'session_expired' });
      return;
    }
    stats.otherErrors += 1;
    res.status(502).json({ error: 'bad_gateway' });
  });

  process.stdout.write(`${JSON.stringify({ url: baseURL, pid: process.pid })}\n`);
  const stop = (): void => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`[gateway-peer] failed to start: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
