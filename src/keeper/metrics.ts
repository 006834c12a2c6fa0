import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EngineEvent } from '../engine/fresh-token.js';
import { HEALTH_STATUSES, isHealthy, type HealthStatus } from '../core/health.js';

/**
 * The keeper's Prometheus metrics, in a registry of its own (never prom-client's global one,
 * so two keepers in one process — tests — or a host application's metrics never collide).
 *
 * Cardinality stays bounded: per-source series are gauges and counters (one series per source,
 * or per source × a handful of outcomes); the latency histogram is labelled by auth path only.
 */

interface SourceValues {
  status: HealthStatus;
  failures: number;
  /** ms epoch; undefined when unknown. */
  expiresAt: number | undefined;
}

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
  /** Per-source values as the keeper last reported them (cheap to update every probe). */
  readonly #wanted = new Map<string, SourceValues>();
  /** What the prom-client gauges hold (updated from `#wanted` at scrape time). */
  readonly #applied = new Map<string, SourceValues>();
  /** Sources whose wanted values changed (or that were dropped) since the last scrape. */
  readonly #dirty = new Set<string>();
  readonly #expiries = new Map<string, number>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
    const registers = [this.registry];
    // The per-source gauges are brought up to date when scraped, not when probed: every
    // prom-client `set` hashes its labels, which for 1,000 sources × 8 series was a large share
    // of a cycle's garbage, and a keeper nobody scrapes should not pay for it at all.
    const sync = (): void => this.#sync();
    this.#up = new Gauge({ name: 'latchkey_source_up', help: '1 when the source is usable (ok or expiring), else 0', labelNames: ['source'], registers, collect: sync });
    this.#status = new Gauge({
      name: 'latchkey_source_status',
      help: '1 for the current health status of the source',
      labelNames: ['source', 'status'],
      registers,
      collect: sync,
    });
    const expiries = this.#expiries;
    const clockNow = this.#now;
    const expiry: Gauge<'source'> = new Gauge({
      name: 'latchkey_source_expiry_seconds',
      help: 'Seconds until the credential in use expires (negative when expired; absent when unknown)',
      labelNames: ['source'],
      registers,
      // Computed at scrape time, so the countdown is right between cycles too.
      collect() {
        sync();
        const t = clockNow();
        for (const [source, at] of expiries) expiry.set({ source }, Math.round((at - t) / 1000));
      },
    });
    this.#expiry = expiry;
    this.#failures = new Gauge({ name: 'latchkey_source_consecutive_failures', help: 'Failed checks in a row', labelNames: ['source'], registers, collect: sync });
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

  /** Records a source's current state for the per-source gauges (applied at the next scrape). */
  setSource(source: string, status: HealthStatus, expiresAt: string | null, consecutiveFailures: number): void {
    const exp = expiresAt ? Date.parse(expiresAt) : Number.NaN;
    const next: SourceValues = { status, failures: consecutiveFailures, expiresAt: Number.isNaN(exp) ? undefined : exp };
    const last = this.#wanted.get(source);
    if (last && last.status === next.status && last.failures === next.failures && last.expiresAt === next.expiresAt) return;
    this.#wanted.set(source, next);
    this.#dirty.add(source);
  }

  /** Drops the series of sources no longer in the config. */
  retainSources(names: ReadonlySet<string>): void {
    for (const source of this.#wanted.keys()) {
      if (names.has(source)) continue;
      this.#wanted.delete(source);
      this.#dirty.add(source);
    }
  }

  /** Writes what changed since the last scrape into the gauges (only what changed). */
  #sync(): void {
    for (const source of this.#dirty) {
      const want = this.#wanted.get(source);
      const had = this.#applied.get(source);
      if (!want) {
        if (had) this.#removeSeries(source);
        continue;
      }
      if (had?.status !== want.status) {
        const up = isHealthy(want.status);
        if (!had || isHealthy(had.status) !== up) this.#up.set({ source }, up ? 1 : 0);
        for (const s of HEALTH_STATUSES) {
          if (!had || s === want.status || s === had.status) this.#status.set({ source, status: s }, s === want.status ? 1 : 0);
        }
      }
      if (had?.failures !== want.failures) this.#failures.set({ source }, want.failures);
      if (want.expiresAt === undefined) {
        if (this.#expiries.delete(source)) this.#expiry.remove({ source });
      } else {
        this.#expiries.set(source, want.expiresAt);
      }
      this.#applied.set(source, want);
    }
    this.#dirty.clear();
  }

  #removeSeries(source: string): void {
    this.#applied.delete(source);
    this.#up.remove({ source });
    if (this.#expiries.delete(source)) this.#expiry.remove({ source });
    this.#failures.remove({ source });
    for (const s of HEALTH_STATUSES) this.#status.remove({ source, status: s });
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
