/**
 * `latchkey/gateway`: the session gateway (backend-for-frontend) in front of a web app — login
 * with OAuth + PKCE, sessions held server-side with sealed cookies, transparent refresh that
 * bursts cannot break, WebSocket tickets, forward-auth, reverse proxy and middleware.
 *
 * @packageDocumentation
 */
export { createGateway, type Gateway, type GatewayIdentity, type GatewayMiddleware, type NodeMiddleware, type FastifyPlugin } from './gateway.js';
export { startGateway, type StartGatewayOptions, type RunningGateway } from './server.js';
export { DEFAULT_SCOPES, type GatewayOptions, type GatewayLog } from './options.js';
export { cookieRule, cookieVariants, COOKIE_BASE, type CookieKind, type CookieSpec } from './cookie-rules.js';
export { TICKET_TTL_SECONDS } from './tickets.js';
