import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineEvent } from '../engine/fresh-token.js';
import type { HealthStatus } from '../client/probe-types.js';

/**
 * The keeper's Prometheus metrics, in a registry of its own (never prom-client's global one,
 * so two keepers in one process — tests — or a host application's metrics never collide).
 *
 * Cardinality stays bounded: per-source series are gauges and counters (one series per source,
 * or per source × a handful of outcomes); the latency histogram is labelled by auth path only.
 */
export class KeeperMetrics {
  readonly registry = new Registry();
  readonly #up: Gauge<'source'>;
  readonly #status: Gauge<'source' | 'status'>;
  readonly #expiry: Gauge<'source'>;
  readonly #failures: Gauge<'source'>;
  readonly #refreshes: Counter<'source' | 'outcome'>;
  readonly #probeFailures: Counter<'source' | 'outcome'>;
  readonly #latency: Histogram<'auth_path'>;
  readonly #cycles: Counter;
  readonly #cycleSeconds: Gauge;
  readonly #lastCycle: Gauge;
  readonly #reportWrites: Counter;
  readonly #alerts: Counter<'channel' | 'outcome'>;
  /** The last values written per source (so unchanged gauges are not rewritten). */
  readonly #known = new Map<string, { status: HealthStatus; failures: number }>();
  readonly #expiries = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    const registers = [this.registry];
    this.#up = new Gauge({ name: 'latchkey_source_up', help: '1 when the source is usable (ok or expiring), else 0', labelNames: ['source'], registers });
    this.#status = new Gauge({
      name: 'latchkey_source_status',
      help: '1 for the current health status of the source',
      labelNames: ['source', 'status'],
      registers,
    });
    const expiries = this.#expiries;
    const clockNow = this.#now;
    this.#expiry = new Gauge({
      name: 'latchkey_source_expiry_seconds',
      help: 'Seconds until the credential in use expires (negative when expired; absent when unknown)',
      labelNames: ['source'],
      registers,
      // Computed at scrape time, so the countdown is right between cycles too.
      collect() {
        const t = clockNow();
        for (const [source, at] of expiries) this.set({ source }, Math.round((at - t) / 1000));
      },
    });
    this.#failures = new Gauge({ name: 'latchkey_source_consecutive_failures', help: 'Failed checks in a row', labelNames: ['source'], registers });
    this.#refreshes = new Counter({
      name: 'latchkey_refreshes_total',
      help: 'Token refresh attempts by outcome (refreshed, adopted, fail_open, invalid_grant, revoked, rejected)',
      labelNames: ['source', 'outcome'],
      registers,
    });
    this.#probeFailures = new Counter({
      name: 'latchkey_probe_failures_total',
      help: 'Failed probes by outcome (degraded, unreachable, action_required)',
      labelNames: ['source', 'outcome'],
      registers,
    });
    this.#latency = new Histogram({
      name: 'latchkey_probe_duration_seconds',
      help: 'Probe latency by auth path',
      labelNames: ['auth_path'],
      buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.#cycles = new Counter({ name: 'latchkey_keeper_cycles_total', help: 'Completed keeper cycles', registers });
    this.#cycleSeconds = new Gauge({ name: 'latchkey_keeper_cycle_duration_seconds', help: 'Duration of the last cycle', registers });
    this.#lastCycle = new Gauge({ name: 'latchkey_keeper_last_cycle_timestamp_seconds', help: 'When the last cycle finished (unix time)', registers });
    this.#reportWrites = new Counter({ name: 'latchkey_keeper_health_report_writes_total', help: 'Times health.json was written', registers });
    this.#alerts = new Counter({
      name: 'latchkey_keeper_alerts_total',
      help: 'Alert deliveries by channel and outcome',
      labelNames: ['channel', 'outcome'],
      registers,
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Called for every refresh attempt of the token engine (the `onRefresh` hook). */
  recordRefresh(event: EngineEvent): void {
    this.#refreshes.inc({ source: event.source, outcome: event.outcome });
  }

  recordProbe(source: string, status: HealthStatus, authPath: string | null, latencyMs: number | null): void {
    if (latencyMs !== null) this.#latency.observe({ auth_path: authPath ?? 'none' }, latencyMs / 1000);
    if (status !== 'ok' && status !== 'expiring') this.#probeFailures.inc({ source, outcome: status });
  }

  /**
   * Sets the per-source gauges from the current state. Only what changed is written: each
   * prom-client `set` hashes its labels, and eight of them per probe were a measurable share of
   * a 1,000-source cycle's allocations.
   */
  setSource(source: string, status: HealthStatus, expiresAt: string | null, consecutiveFailures: number, now: number): void {
    const last = this.#known.get(source);
    if (last?.status !== status) {
      const up = status === 'ok' || status === 'expiring' ? 1 : 0;
      if (!last || (last.status === 'ok' || last.status === 'expiring' ? 1 : 0) !== up) this.#up.set({ source }, up);
      for (const s of ['ok', 'expiring', 'degraded', 'unreachable', 'action_required'] as const) {
        if (!last || s === status || s === last.status) this.#status.set({ source, status: s }, s === status ? 1 : 0);
      }
    }
    if (last?.failures !== consecutiveFailures) this.#failures.set({ source }, consecutiveFailures);
    this.#known.set(source, { status, failures: consecutiveFailures });
    const exp = expiresAt ? Date.parse(expiresAt) : Number.NaN;
    if (Number.isNaN(exp)) {
      if (this.#expiries.delete(source)) this.#expiry.remove({ source });
    } else if (this.#expiries.get(source) !== exp) {
      this.#expiries.set(source, exp);
      this.#expiry.set({ source }, Math.round((exp - now) / 1000));
    }
  }

  /** Drops the series of sources no longer in the config. */
  retainSources(names: ReadonlySet<string>): void {
    for (const source of this.#known.keys()) {
      if (names.has(source)) continue;
      this.#known.delete(source);
      this.#up.remove({ source });
      this.#expiries.delete(source);
      this.#expiry.remove({ source });
      this.#failures.remove({ source });
      for (const s of ['ok', 'expiring', 'degraded', 'unreachable', 'action_required']) this.#status.remove({ source, status: s });
    }
  }

  recordCycle(durationMs: number, finishedAt: number): void {
    this.#cycles.inc();
    this.#cycleSeconds.set(durationMs / 1000);
    this.#lastCycle.set(Math.floor(finishedAt / 1000));
  }

  recordReportWrite(): void {
    this.#reportWrites.inc();
  }

  recordAlert(channel: 'webhook' | 'uptime_kuma', outcome: 'delivered' | 'failed' | 'retried' | 'dropped'): void {
    this.#alerts.inc({ channel, outcome });
  }

  /** The exposition text (`GET /metrics`). */
  render(): Promise<string> {
    return this.registry.metrics();
  }
}
