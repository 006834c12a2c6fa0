import type { IncomingMessage } from 'node:http';
import { json } from '../http/route-table.js';
import { SECURITY_HEADERS } from '../http/security-headers.js';
import { Secret } from '../core/secret.js';
import { deletionHeaders, readGatewayCookies } from './cookie-rules.js';
import type { GatewayContext } from './context.js';
import { identityHeaders } from './identity-headers.js';
import { signInRequired, unavailable, type GatewayReply } from './replies.js';
import type { RequestShape } from './request-shape.js';
import { accessDueAt } from './session-cookies.js';
import { TICKET_TTL_SECONDS } from './tickets.js';

/**
 * The session's own routes: `GET /auth/me`, `POST /auth/ws-ticket`, `GET /auth/check`
 * (forward-auth) and `POST /auth/logout`. CSRF checks run before these (src/gateway/gateway.ts).
 */

/** `GET /auth/me`: who is signed in and until when. Never refreshes, never sets a cookie. */
export async function me(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape, skewMs: number): Promise<GatewayReply> {
  const r = await ctx.auth.authenticate(req, shape, { refresh: false });
  if (r.kind !== 'ok') return signInRequired(req, shape, undefined, [], false);
  const s = r.session;
  const now = ctx.clock.now();
  return json(200, {
    user: { sub: s.identity.sub, ...(s.identity.email ? { email: s.identity.email } : {}), ...(s.identity.name ? { name: s.identity.name } : {}) },
    session: {
      expiresAt: new Date(s.endsAt).toISOString(),
      accessExpiresAt: s.expiresAt !== undefined ? new Date(s.expiresAt).toISOString() : null,
      refreshDue: now >= accessDueAt(s, skewMs, now),
      canRefresh: s.refreshToken !== undefined,
    },
  });
}

/** `POST /auth/ws-ticket`: a single-use ticket for a WebSocket, bound to this session and Origin. Refreshes when due. */
export async function wsTicket(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape): Promise<GatewayReply> {
  const r = await ctx.auth.authenticate(req, shape, { refresh: true });
  if (r.kind === 'unavailable') return unavailable(r.retryAfterSeconds);
  if (r.kind !== 'ok') return signInRequired(req, shape, undefined, r.kind === 'ended' ? r.setCookies : [], false);
  const origin = typeof req.headers.origin === 'string' ? req.headers.origin : '';
  const ticket = await ctx.tickets.mint({ sid: r.sid, origin });
  ctx.metrics.tickets.inc({ outcome: 'minted' });
  return { ...json(200, { ticket, ttlSeconds: TICKET_TTL_SECONDS }), cookies: r.setCookies };
}

/**
 * `GET /auth/check`: forward-auth for nginx `auth_request`, Traefik `forwardAuth`, Envoy
 * `ext_authz`. 200 with the identity headers, or 401. It refreshes a due session server-side and
 * never depends on its `Set-Cookie` reaching the browser (nginx and Envoy drop it): the browser's
 * older-generation cookies keep pointing at the same session, which holds the new tokens.
 */
export async function check(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape): Promise<GatewayReply> {
  const r = await ctx.auth.authenticate(req, shape, { refresh: true });
  if (r.kind === 'unavailable') return unavailable(r.retryAfterSeconds);
  const original = req.headers['x-original-uri'] ?? req.headers['x-forwarded-uri'];
  if (r.kind !== 'ok') return signInRequired(req, shape, typeof original === 'string' ? original : undefined, r.kind === 'ended' ? r.setCookies : [], false);
  const ids = identityHeaders(r.session.identity);
  return { status: 200, headers: { ...SECURITY_HEADERS, 'Content-Type': 'application/json; charset=utf-8', 'Cache-Control': 'no-store', ...ids }, body: JSON.stringify({ ok: true }), cookies: r.setCookies };
}

/**
 * `POST /auth/logout`: revokes the refresh token where the IdP offers revocation, deletes the
 * session, deletes every variant of every gateway cookie, and names the IdP's end-session URL
 * (RP-initiated logout, with `id_token_hint`) for the browser to visit.
 */
export async function logout(ctx: GatewayContext, req: IncomingMessage, shape: RequestShape): Promise<GatewayReply> {
  const r = await ctx.auth.authenticate(req, shape, { refresh: false });
  let endSessionUrl: string | undefined;
  let revoked: string = 'none';
  if (r.kind === 'ok') {
    const s = r.session;
    await ctx.sessions.delete(r.sid);
    ctx.auth.forget(r.sid);
    if (s.refreshToken) revoked = await ctx.oidc.revoke(new Secret(s.refreshToken));
    endSessionUrl = await ctx.oidc.endSessionUrl(s.idToken, ctx.postLogoutRedirectUri);
    ctx.metrics.logouts.inc();
  }
  ctx.log('info', 'logout', { hadSession: r.kind === 'ok', revoked });
  const cookies = [...ctx.cookies.clear(shape)];
  for (const base of readGatewayCookies(req).values.keys()) {
    if (base.startsWith('latchkey_login_')) cookies.push(...deletionHeaders('login', shape, base.slice('latchkey_login_'.length)));
  }
  return { ...json(200, { loggedOut: true, ...(endSessionUrl ? { endSessionUrl } : {}) }), cookies };
}
