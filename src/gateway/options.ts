import type { Clock } from '../core/clock.js';
import type { Secret } from '../core/secret.js';
import type { ClientAuthMethod } from '../oauth/client-auth.js';
import type { FetchLike } from '../oauth/endpoint.js';
import type { Store } from '../store/store.js';
import type { LoginRateLimit } from './login-limiter.js';

/** One line of the gateway's log (never a token, a cookie value or a session id). */
export type GatewayLog = (level: 'info' | 'warn' | 'error', event: string, fields?: Record<string, string | number | boolean | undefined>) => void;

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** The OpenID Provider's issuer URL (discovery: `<issuer>/.well-known/openid-configuration`). */
  issuer: string;
  /** The gateway's client id at the IdP (its redirect URI: `<public origin><prefix>/auth/callback`). */
  clientId: string;
  /** The client secret: a secret reference (`env:NAME`, `file:/path`, `keyring:service/account`) or a {@link Secret}. None: a public client. */
  clientSecret?: string | Secret;
  /** How the client authenticates at the token endpoint (default: Basic with a secret, none without). */
  clientAuth?: ClientAuthMethod;
  /** Where authenticated requests go (`handle`/`upgrade`/`startGateway`); not needed for middleware. */
  upstream?: string;
  /** LATCHKEY_HOME (default as everywhere: `$LATCHKEY_HOME`, else the per-user config directory). */
  home?: string;
  /** The store sessions and tickets live in (default: the file store under `home`). Several gateways on one store share sessions. */
  store?: Store;
  /** CIDRs of the proxies whose `X-Forwarded-*` headers count (none by default). */
  trustedProxies?: string[];
  /** Path prefixes served without a session (`/public`, `/healthz`…); identity headers are still stripped. */
  publicPaths?: string[];
  /** OAuth scopes (default `openid email profile offline_access`). */
  scopes?: string;
  fetch?: FetchLike;
  clock?: Clock;
  /** The sealing key: a secret reference or Secret holding 32 bytes (base64 or hex). Default: `<home>/gateway.key`, created 0600 on first start. */
  sealKey?: string | Secret;
  /** The refresh token's lifetime when the IdP does not send `refresh_expires_in` (default 14 days): the refresh cookie's Max-Age and the session's. */
  refreshTokenLifetimeSeconds?: number;
  /** Refresh this long before the access token expires (default 30 s; at most a third of its lifetime). */
  refreshSkewSeconds?: number;
  /** Require the CSRF checks on non-GET/HEAD requests proxied to the upstream too (default false). */
  upstreamCsrf?: boolean;
  /** Where the IdP sends the browser after RP-initiated logout (must be registered at the IdP). */
  postLogoutRedirectUri?: string;
  /** How long one process trusts a session it read (default 1000 ms; logout elsewhere takes effect within it). */
  sessionCacheMs?: number;
  /** Lifetime of a successor entry (default 60 s). */
  successorTtlSeconds?: number;
  /** How long a refresh waits for another process holding the session's lock before answering 503 (default 20 000 ms). */
  lockTimeoutMs?: number;
  /** Pause before a refused refresh token is confirmed once (default 1000 ms; see docs/DESIGN.md). */
  confirmRefusalDelayMs?: number;
  /**
   * How a live session's access token is judged: `idp` (default) checks it once per session
   * generation and process at the IdP's terms (a JWT against the JWKS, an opaque token by
   * introspection when offered), remembered until it expires, so a token revoked at the IdP
   * sends the session to a refresh; `expiry` trusts the stored expiry alone (no call).
   */
  accessTokenCheck?: 'idp' | 'expiry';
  /**
   * How many sign-ins may start, per client address and in all (defaults 10 a minute per client
   * with a burst of 10, 600 a minute in all; per gateway process): each stores a login marker
   * for 10 minutes, so a flood of `GET /auth/login` would otherwise fill the store. Beyond it: 429.
   */
  loginRateLimit?: LoginRateLimit;
  /** How often expired store entries (tickets, login markers, successors, sessions) are swept (default 60 000 ms). */
  sweepIntervalMs?: number;
  /** Environment for secret references and the default home (default `process.env`). */
  env?: NodeJS.ProcessEnv;
  /** Log sink (default: JSON lines on stderr). */
  log?: GatewayLog;
}

/** Default scopes: identity plus a refresh token. */
export const DEFAULT_SCOPES = 'openid email profile offline_access';
