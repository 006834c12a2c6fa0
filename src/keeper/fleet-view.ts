import { hostname } from 'node:os';
import { gzipSync } from 'node:zlib';
import { LatchkeyError } from '../core/errors.js';
import type { SharedKeeperSnapshot, SharedKeeperState } from '../store/store.js';
import type { HealthReport, KeeperFleetInfo } from './health-report.js';
import type { KeeperHttpBackend } from './http.js';
import type { Keeper } from './keeper.js';
import { StandbyMetrics } from './standby-metrics.js';

/**
 * The keeper's side of fleet mode on a store that shares the keeper state (PostgreSQL): the
 * leader publishes each report it writes (`health.json`'s content, source by source, with the
 * next refresh time) stamped with its epoch; a keeper standing by serves the last published
 * report from its own HTTP server, marked as a standby's and naming the leader, until it takes
 * over (docs/DESIGN.md "Fleet mode: keeper leadership").
 */
export class FleetView {
  readonly #board: SharedKeeperState;
  readonly #store: string;
  readonly #epoch: () => number | undefined;
  readonly #onDeposed: () => void;
  #deposed = false;

  constructor(board: SharedKeeperState, store: string, epoch: () => number | undefined, onDeposed: () => void) {
    this.#board = board;
    this.#store = store;
    this.#epoch = epoch;
    this.#onDeposed = onDeposed;
  }

  /** Publishes `report` when this keeper leads (a standby publishes nothing). */
  async publish(report: HealthReport): Promise<void> {
    const epoch = this.#epoch();
    if (epoch === undefined) return;
    const { sources, ...rest } = report;
    const rows = new Map<string, { health: unknown; dueAt: number | undefined }>();
    for (const [name, s] of Object.entries(sources)) {
      const due = s.refreshAt ? Date.parse(s.refreshAt) : NaN;
      rows.set(name, { health: s, dueAt: Number.isFinite(due) ? due : undefined });
    }
    try {
      await this.#board.publish(epoch, rest as Record<string, unknown>, rows);
    } catch (err) {
      // Refused for an epoch that is not the store's: deposed (the lock's heartbeat may not know yet).
      if (err instanceof LatchkeyError && err.code === 'LK_KEEPER' && !this.#deposed) {
        this.#deposed = true;
        this.#onDeposed();
      }
      throw err;
    }
  }

  /** `keeper.fleet` of this keeper's own report (it leads once it runs cycles). */
  leaderInfo(): KeeperFleetInfo | undefined {
    const epoch = this.#epoch();
    if (epoch === undefined) return undefined;
    return { role: 'leader', store: this.#store, leader: { epoch, pid: process.pid, host: hostname(), heartbeatAt: null }, publishedAt: null };
  }

  /**
   * What the HTTP server serves while this keeper stands by: the published report, read every
   * `pollMs`; from {@link StandbyBackend.lead} on, the keeper's own.
   */
  standbyBackend(keeper: Keeper, pollMs: number, onError: (err: unknown) => void): StandbyBackend {
    return new StandbyBackend(this.#board, this.#store, keeper, pollMs, onError);
  }
}

/** The HTTP backend of a standby keeper (see {@link FleetView.standbyBackend}). */
export class StandbyBackend implements KeeperHttpBackend {
  readonly #board: SharedKeeperState;
  readonly #store: string;
  readonly #keeper: Keeper;
  readonly #onError: (err: unknown) => void;
  #leading = false;
  #timer: NodeJS.Timeout | undefined;
  #reading: Promise<void> | undefined;
  #bytes: Buffer;
  #gzip: { of: Buffer; gzip: Buffer } | undefined;
  #ready = false;
  #readinessBytes: Buffer;
  readonly #metrics = new StandbyMetrics();

  constructor(board: SharedKeeperState, store: string, keeper: Keeper, pollMs: number, onError: (err: unknown) => void) {
    this.#board = board;
    this.#store = store;
    this.#keeper = keeper;
    this.#onError = onError;
    this.#bytes = this.#render(undefined);
    this.#readinessBytes = this.#readinessOf(undefined);
    this.#timer = setInterval(() => void this.poll(), pollMs);
    this.#timer.unref();
  }

  /** Reads the published state once (the daemon awaits the first read before it listens). */
  poll(): Promise<void> {
    if (this.#leading) return Promise.resolve();
    this.#reading ??= this.#board
      .read()
      .then(
        (snap) => {
          if (this.#leading) return;
          const published = typeof snap?.report.generatedAt === 'string' ? Date.parse(snap.report.generatedAt) : NaN;
          this.#metrics.observe(Number.isFinite(published) ? published : undefined, snap?.epoch);
          this.#bytes = this.#render(snap);
          this.#readinessBytes = this.#readinessOf(snap);
        },
        (err: unknown) => this.#onError(err),
      )
      .finally(() => {
        this.#reading = undefined;
      });
    return this.#reading;
  }

  /**
   * This keeper took the lead: its own report once its first cycle has finished (until then its
   * report is only what its home remembered; the last published state is the better answer).
   */
  lead(): void {
    this.#leading = true;
    this.close();
  }

  get #own(): boolean {
    return this.#leading && this.#keeper.stages.schedule.lastCycleFinishedAt !== null;
  }

  close(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  get reportBytes(): Buffer {
    return this.#own ? this.#keeper.reportBytes : this.#bytes;
  }

  get reportGzip(): Buffer {
    if (this.#own) return this.#keeper.reportGzip;
    if (this.#gzip?.of !== this.#bytes) this.#gzip = { of: this.#bytes, gzip: gzipSync(this.#bytes) };
    return this.#gzip.gzip;
  }

  /** The 24 h timelines are the leader's; a standby has none of its own (404 until it leads). */
  get history(): { bytes: Buffer; gzip: Buffer } | undefined {
    return this.#own ? this.#keeper.history : undefined;
  }

  get readiness(): { ready: boolean } {
    return this.#own ? this.#keeper.readiness : { ready: this.#ready };
  }

  get readinessBytes(): Buffer {
    return this.#own ? this.#keeper.readinessBytes : this.#readinessBytes;
  }

  /** A standby's own few series until it leads (see StandbyMetrics), then the keeper's. */
  get metrics(): KeeperHttpBackend['metrics'] {
    return this.#leading ? this.#keeper.metrics : this.#metrics;
  }

  /** Only the leader probes: a standby's "Probe now" answers with the published report as it is. */
  async probeNow(source?: string): Promise<unknown> {
    if (this.#leading) return this.#keeper.probeNow(source);
    await this.poll();
    return undefined;
  }

  #fleet(snap: SharedKeeperSnapshot | undefined): KeeperFleetInfo {
    const l = snap?.leader;
    const publishedAt = typeof snap?.report.generatedAt === 'string' ? snap.report.generatedAt : null;
    return {
      role: 'standby',
      store: this.#store,
      leader: l ? { epoch: l.epoch, pid: l.pid, host: l.host, heartbeatAt: new Date(l.at).toISOString() } : null,
      publishedAt,
    };
  }

  #render(snap: SharedKeeperSnapshot | undefined): Buffer {
    const keeperInfo = (snap?.report.keeper ?? {}) as Record<string, unknown>;
    const report = {
      generatedAt: publishedAtOr(snap),
      intervalSeconds: snap?.report.intervalSeconds ?? this.#keeper.settings.intervalSeconds,
      sources: snap?.sources ?? {},
      keeper: {
        nextCycleAt: null,
        config: { file: this.#keeper.lk.config.file, loadedAt: null, error: null },
        activity: { hours: [], recent: [] },
        ...keeperInfo,
        fleet: this.#fleet(snap),
      },
    };
    return Buffer.from(JSON.stringify(report));
  }

  #readinessOf(snap: SharedKeeperSnapshot | undefined): Buffer {
    // Ready when it has the leader's state to serve: a dashboard behind a load balancer may be
    // any keeper of the fleet. The leader's own /readyz says whether the sources are healthy.
    this.#ready = snap !== undefined;
    const l = snap?.leader;
    const reason = snap === undefined ? `standing by for ${this.#store}; no keeper has published its state yet` : `standing by for ${this.#store}; serving the state published by the leader (pid ${l?.pid ?? '?'} on ${l?.host ?? '?'}, epoch ${snap.epoch})`;
    return Buffer.from(JSON.stringify({ ready: this.#ready, reason, role: 'standby' }));
  }
}

function publishedAtOr(snap: SharedKeeperSnapshot | undefined): string {
  return typeof snap?.report.generatedAt === 'string' ? snap.report.generatedAt : new Date().toISOString();
}
