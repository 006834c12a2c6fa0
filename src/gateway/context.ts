import type { Clock } from '../core/clock.js';
import type { Store } from '../store/store.js';
import type { LoginLimiter } from './login-limiter.js';
import type { GatewayMetrics } from './metrics.js';
import type { OidcClient } from './oidc-client.js';
import type { GatewayLog } from './options.js';
import type { SealKey } from './seal.js';
import type { SessionAuth } from './session-auth.js';
import type { SessionCookies } from './session-cookies.js';
import type { SessionStore } from './session-store.js';
import type { Tickets } from './tickets.js';

/** What the gateway's route families share (built once at start-up). */
export interface GatewayContext {
  store: Store;
  key: SealKey;
  clock: Clock;
  oidc: OidcClient;
  sessions: SessionStore;
  cookies: SessionCookies;
  auth: SessionAuth;
  tickets: Tickets;
  loginLimiter: LoginLimiter;
  metrics: GatewayMetrics;
  log: GatewayLog;
  postLogoutRedirectUri?: string;
}
