import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineEvent } from '../engine/rotation-core.js';

/**
 * The gateway's Prometheus metrics, in a registry of its own (never prom-client's global one:
 * two gateways in one process, or the host application's own metrics, never collide). Labels
 * are small fixed sets; nothing per user or per session.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly requests: Counter<'outcome'>;
  readonly refreshes: Counter<'outcome'>;
  readonly logins: Counter<'outcome'>;
  readonly loginStarts: Counter<'outcome'>;
  readonly logouts: Counter;
  readonly tickets: Counter<'outcome'>;
  readonly olderGeneration: Counter<'window'>;
  readonly badCookies: Counter;
  readonly upstreamErrors: Counter;
  readonly refreshSeconds: Histogram;
  readonly inFlight: Gauge;

  constructor() {
    const registers = [this.registry];
    this.requests = new Counter({ name: 'latchkey_gateway_requests_total', help: 'Requests by authentication outcome', labelNames: ['outcome'], registers });
    this.refreshes = new Counter({ name: 'latchkey_gateway_refreshes_total', help: 'Session refresh outcomes (rotation core events)', labelNames: ['outcome'], registers });
    this.logins = new Counter({ name: 'latchkey_gateway_logins_total', help: 'Login callbacks by outcome', labelNames: ['outcome'], registers });
    this.loginStarts = new Counter({ name: 'latchkey_gateway_login_starts_total', help: 'Sign-ins started (GET /auth/login) and refused by the rate limit (per client or for all)', labelNames: ['outcome'], registers });
    this.logouts = new Counter({ name: 'latchkey_gateway_logouts_total', help: 'Logouts', registers });
    this.tickets = new Counter({ name: 'latchkey_gateway_ws_tickets_total', help: 'WebSocket tickets minted and redeemed', labelNames: ['outcome'], registers });
    this.olderGeneration = new Counter({ name: 'latchkey_gateway_older_generation_total', help: 'Requests carrying a previous generation of their session (successor window or stale)', labelNames: ['window'], registers });
    this.badCookies = new Counter({ name: 'latchkey_gateway_bad_cookies_total', help: 'Gateway cookies that were malformed, oversized, forged or tampered', registers });
    this.upstreamErrors = new Counter({ name: 'latchkey_gateway_upstream_errors_total', help: 'Requests the upstream did not answer', registers });
    this.refreshSeconds = new Histogram({ name: 'latchkey_gateway_refresh_seconds', help: 'Time of a session refresh (locked units included)', buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers });
    this.inFlight = new Gauge({ name: 'latchkey_gateway_refreshes_in_flight', help: 'Session refreshes in flight in this process', registers });
  }

  onEngineEvent(e: EngineEvent): void {
    this.refreshes.inc({ outcome: e.outcome });
    if (e.outcome === 'refreshed') this.refreshSeconds.observe(e.durationMs / 1000);
  }
}
