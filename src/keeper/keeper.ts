import { setMaxListeners } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { Clock } from '../core/clock.js';
import type { HealthExitCode, HealthStatus } from '../core/health.js';
import { LatchkeyError } from '../core/errors.js';
import { openLatchkey, type Latchkey, type OpenLatchkeyOptions } from '../latchkey.js';
import type { FetchLike } from '../oauth/endpoint.js';
import { metaOf, type DueWorkPicker, type SourceMeta, type SourceRecord } from '../store/store.js';
import { AlertDispatcher, kumaStatus, type AlertSettings, type AlertStageState } from './alerts.js';
import {
  buildHealthReport,
  exitCodeFor,
  HealthReportWriter,
  healthReportPieces,
  type KeeperFleetInfo,
  serializeHealthReport,
  type HealthReport,
  type KeeperReportInfo,
  type RefreshSchedule,
} from './health-report.js';
import { fitYoungGeneration, holdYoungGeneration } from './heap-settings.js';
import { silentLog, type KeeperLog } from './log.js';
import { KeeperMetrics } from './metrics.js';
import { CANCELLED, probeWithDeadline, runBounded, type GroupCap, type ProbeFn } from './probe-stage.js';
import { refreshAhead, type RefreshOutcome, type RefreshStageResult } from './refresh-stage.js';
import { backoffCapCycles, ClockJumpDetector, DueTimes, jitteredDelayMs, refreshDueAt, refreshRetryDelayMs } from './scheduler.js';
import {
  applyVerdict,
  countActivity,
  noteActivity,
  emptySourceState,
  loadKeeperState,
  saveKeeperState,
  takeTurn,
  type KeeperStateFile,
  type SourceKeeperState,
  type StateChange,
  Timeline,
} from './state.js';
import { bytesOfPieces } from './json-bytes.js';
import { combineVerdict } from './verdict.js';
import { keepWarm, type WarmResult } from './warm-stage.js';

/**
 * The keeper: a loop over small stages — schedule → refresh → probe → state → report →
 * notify — each in its own module and each reporting its own state (`/readyz` shows them).
 * This class only sequences them: one cycle or manual probe at a time, never overlapping.
 */

export const DEFAULT_INTERVAL_SECONDS = 300;
/**
 * Probes in flight at once. 96: 10,000 sources on a 50 ms API need 5.2 s of network at 96 (15.6 s
 * at the former 32); a slot is held for the answer plus the keeper's own turn on a busy event
 * loop (~70 ms a probe at 10,000 sources), and a stalled upstream gives its slot back after 2 s
 * (probe-stage.ts). Measured first cycles at 10,000 sources on an idle machine: 23.0 s at 64,
 * 19.4 s at 96, 17.8 s at 128 (bench/keeper-scale, issue 9). Below the 100 concurrent requests
 * some APIs allow one client (GitHub's secondary rate limit), so even a profile whose sources all
 * call one API stays within it; one host gets at most {@link perHostDefault} of the slots while
 * other hosts' probes wait.
 */
export const DEFAULT_CONCURRENCY = 96;

/**
 * The default per-host share of the probe slots: half of them (48 of the default 96), so one
 * slow host never holds every slot while probes of other hosts wait. It only orders the work:
 * when nothing else is waiting, the host gets the free slots (a profile of sources on one API
 * is probed at the full concurrency).
 */
export function perHostDefault(concurrency: number): number {
  return Math.max(1, Math.ceil(concurrency / 2));
}
/** Per-source probe timeout: a stalled upstream is `unreachable` after this. */
export const DEFAULT_PROBE_TIMEOUT_MS = 10_000;
/** `/readyz` turns 503 when no cycle finished for this many intervals (plus the last cycle's length)… */
const STALLED_INTERVALS = 2.5;
/** …and never sooner than this. */
const STALLED_FLOOR_MS = 60_000;
/** The refresh timer wakes at least this often, whatever is due (a wall clock that jumped is caught up). */
const MAX_REFRESH_SLEEP_MS = 15 * 60 * 1000;
/** Timer refreshes in flight at once (bounded by `concurrency` too). */
const REFRESH_SLOTS = 8;
/** A grant with no known expiry (daily refresh) is queued as if it expired this long after its due time. */
const DAILY_DEADLINE_SLACK_MS = 60 * 60 * 1000;
/**
 * Probes that gave their slot back (stalled past 2 s) may wait out their timeout beside the pool,
 * up to this many per slot. With one per slot, 100 stalled sources probed first (last cycle's
 * `unreachable`) filled the 64 waits of a 64-slot pool and the next 36 each held a slot for the whole 10 s: a
 * 10,000-source cycle ran at 28 slots for 10 s (bench/keeper-scale). A waiting probe is an idle
 * socket and two timers.
 */
const RELEASED_PER_SLOT = 4;

/** With a due-work picker (PostgreSQL), how often the refresh timer asks the store what is due. */
const PICK_TICK_MS = 1000;
/** Expired keyspace entries are swept at the end of a cycle at most this often (the first cycle always sweeps). */
export const KEYSPACE_SWEEP_MS = 5 * 60 * 1000;
/** Refreshes the timer found due wait this long for one `health.json` rewrite (a burst costs one write). */
const REPORT_FLUSH_MS = 1000;
/** Changes to the config directory settle for this long before the config is read again (editors write in steps). */
const CONFIG_SETTLE_MS = 250;

/** One refresh the keeper's timer woke for: how late it started past its due time, and how it went. */
export interface RefreshWake {
  source: string;
  dueAt: number;
  startedAt: number;
  finishedAt: number;
  outcome: RefreshStageResult['kind'];
}

/** The keeper's schedule and limits (interval, concurrency, probe timeout). */
export interface KeeperSettings {
  intervalSeconds: number;
  concurrency: number;
  /** Probe slots one host may hold while probes of other hosts wait (default: half of `concurrency`). */
  perHostConcurrency: number;
  probeTimeoutMs: number;
}

/** Options of `openKeeper`: the profile (as for `openLatchkey`) and the keeper's settings. */
export interface KeeperOptions extends Partial<KeeperSettings> {
  /** An open Latchkey. Without it the keeper opens its own (and reopens it when config.json changes). */
  lk?: Latchkey;
  /** How to open Latchkey when `lk` is not given (home, env, fetch, clock, store…). */
  open?: OpenLatchkeyOptions;
  /** The probe (default `lk.probe`). */
  probe?: ProbeFn;
  alerts?: AlertSettings;
  /** fetch for alert deliveries (default: `open.fetch`, else the global fetch). */
  fetch?: FetchLike;
  log?: KeeperLog;
  /** Uniform [0, 1) draws for the jitter (tests pin it). */
  random?: () => number;
  /** Called after each refresh the refresh timer woke for (lateness measurements: bench/keeper-refresh). */
  onRefreshWake?: (wake: RefreshWake) => void;
  /**
   * Fleet mode (a shared store): called with each report once written, to publish it for the
   * keepers standing by; a failure is logged and the keeper goes on (the file is written).
   */
  publish?: (report: HealthReport) => Promise<void>;
  /** Fleet mode: this keeper's part in the fleet, carried in the report (`keeper.fleet`). */
  fleet?: () => KeeperFleetInfo | undefined;
  /**
   * Fleet mode on PostgreSQL: the store picks the grants due for refresh-ahead (an indexed due
   * time, `FOR UPDATE SKIP LOCKED`), so a refresh tick costs the due sources, not all of them.
   * Without it the keeper's own plan decides (one listing per cycle, one timer).
   */
  dueWork?: DueWorkPicker;
}

/** What one stage last did (the `/readyz` body carries all of them). */
export interface KeeperStages {
  schedule: {
    state: 'starting' | 'running' | 'idle' | 'stopped';
    intervalSeconds: number;
    cycles: number;
    lastCycleStartedAt: string | null;
    lastCycleFinishedAt: string | null;
    lastCycleMs: number | null;
    nextCycleAt: string | null;
  };
  refresh: {
    lastRunAt: string | null;
    counts: Record<RefreshStageResult['kind'], number>;
    /** Grants with a refresh due time, and the earliest of them (the refresh timer's next wake-up). */
    scheduled: number;
    nextDueAt: string | null;
    /** Refreshes the timer woke for since start, and the latest one's lateness past its due time. */
    wakeups: number;
    lastLatenessMs: number | null;
  };
  probe: { lastRunAt: string | null; checked: number; skipped: number; concurrency: number; perHostConcurrency: number; timeoutMs: number };
  report: { state: 'ok' | 'failing' | 'pending'; path: string; writes: number; lastWriteAt: string | null; lastError: string | null };
  state: { state: 'ok' | 'failing'; path: string; lastSaveAt: string | null; lastError: string | null };
  notify: AlertStageState;
  config: { state: 'ok' | 'failing'; file: string; loadedAt: string | null; lastError: string | null };
}

/** The keeper's `/readyz` verdict: ready or not and why, the sources needing a person or unreachable, and each stage's state. */
export interface Readiness {
  ready: boolean;
  reason: string;
  needsAction: Array<{ source: string; operatorAction: string | null; fix: string | null; message: string }>;
  unreachable: string[];
  stages: KeeperStages;
}

/** What one keeper cycle did: sources checked and skipped, status changes, counts, exit code. */
export interface CycleSummary {
  cycle: number;
  durationMs: number;
  checked: number;
  skipped: number;
  changes: StateChange[];
  counts: Record<HealthStatus, number>;
  /** 0 healthy, 3 something unreachable/degraded, 4 something needs a person. */
  exitCode: HealthExitCode;
}

function zeroRefreshCounts(): Record<RefreshStageResult['kind'], number> {
  return { none: 0, not_due: 0, refreshed: 0, adopted: 0, transient: 0, revoked: 0, action: 0 };
}

/**
 * Identifies the stored credential, so a new login is noticed (see `credentialStamp`): the same
 * stamp from a record and from its metadata (`store.listMeta()`, which the keeper lists by).
 */
export function credentialStamp(rec: SourceRecord | SourceMeta | undefined): string | null {
  if (rec === undefined) return null;
  const m = 'hasGrant' in rec ? rec : metaOf(rec);
  if (m.hasGrant) return `g:${m.obtainedAt}:${m.revoked ? 'revoked' : 'live'}`;
  if (m.hasSession) return `s:${m.sessionUpdatedAt}`;
  return null;
}

/** The keeper loop over a profile: schedule → refresh → probe → report → notify, one cycle at a time. */
export class Keeper {
  readonly settings: KeeperSettings;
  readonly metrics: KeeperMetrics;
  readonly alerts: AlertDispatcher;
  readonly log: KeeperLog;
  #lk: Latchkey;
  readonly #ownsLk: boolean;
  readonly #openOptions: OpenLatchkeyOptions | undefined;
  readonly #probe: ProbeFn;
  readonly #random: () => number;
  readonly #writer: HealthReportWriter;
  readonly #jumps = new ClockJumpDetector();
  readonly #stop = new AbortController();
  #state: KeeperStateFile;
  #serial: Promise<unknown> = Promise.resolve();
  /** Manual probes queued but not started, by source (`*` = all): see {@link probeNow}. */
  readonly #waitingProbes = new Map<string, Promise<HealthReport>>();
  #timer: NodeJS.Timeout | undefined;
  #configStamp: string | undefined;
  #report: HealthReport;
  /** The report's bytes, built on the first request after each change (a keeper nobody asks keeps none). */
  #reportBytes: Buffer | undefined;
  /** Size of the last report serialized or written (the next one is about as long). */
  #reportSize = 0;
  #readiness: Readiness;
  #readinessBytes: Buffer;
  #cyclesThisRun = 0;
  #stopped = false;
  #started = false;
  /** Refresh due times of the OAuth grants (one timer for the earliest, see {@link DueTimes}). */
  readonly #due = new DueTimes();
  /** What each due time was computed from, so a cycle keeps a jittered due time instead of redrawing it. */
  readonly #dueBasis = new Map<string, string>();
  readonly #refreshSchedule = new Map<string, RefreshSchedule>();
  readonly #refreshing = new Set<string>();
  readonly #refreshQueue: Array<{ name: string; at: number; deadline: number }> = [];
  #refreshWorkers = 0;
  readonly #refreshesInFlight = new Set<Promise<void>>();
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshTimerAt: number | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  /** When the scheduled report rewrite runs (keeper clock). */
  #flushAt = 0;
  #configWatcher: FSWatcher | undefined;
  #configSettle: NodeJS.Timeout | undefined;
  #nextCycleDelayMs = 0;
  /** When the keyspaces were last swept (keeper clock), see {@link KEYSPACE_SWEEP_MS}. */
  #lastSweepAt: number | undefined;
  #historyCache: { bytes: Buffer; gzip: Buffer } | undefined;
  #reportGzip: { of: Buffer; gzip: Buffer } | undefined;
  readonly #onRefreshWake: ((wake: RefreshWake) => void) | undefined;
  readonly #publish: KeeperOptions['publish'];
  readonly #fleet: KeeperOptions['fleet'];
  readonly #dueWork: DueWorkPicker | undefined;
  #picking: Promise<void> | undefined;
  /** Picked by the store, refresh queued or running: the pick is ended when it finishes. */
  readonly #picked = new Set<string>();
  /** Picked sources whose refresh failed or was not due: not picked again before their planned retry. */
  readonly #holdUntil = new Map<string, number>();
  /** Picked sources this keeper's config does not refresh (another machine's): not picked again this cycle. */
  readonly #notMine = new Set<string>();
  readonly stages: KeeperStages;

  private constructor(lk: Latchkey, owns: boolean, state: KeeperStateFile, metrics: KeeperMetrics, options: KeeperOptions) {
    this.#lk = lk;
    this.#ownsLk = owns;
    this.#openOptions = options.open;
    this.#state = state;
    this.metrics = metrics;
    const cfg = lk.config.raw.keeper;
    const concurrency = options.concurrency ?? cfg?.concurrency ?? DEFAULT_CONCURRENCY;
    this.settings = {
      intervalSeconds: options.intervalSeconds ?? cfg?.intervalSeconds ?? DEFAULT_INTERVAL_SECONDS,
      concurrency,
      perHostConcurrency: Math.min(concurrency, options.perHostConcurrency ?? cfg?.perHostConcurrency ?? perHostDefault(concurrency)),
      probeTimeoutMs: options.probeTimeoutMs ?? cfg?.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS,
    };
    this.log = options.log ?? silentLog;
    this.#random = options.random ?? Math.random;
    this.#onRefreshWake = options.onRefreshWake;
    this.#publish = options.publish;
    this.#fleet = options.fleet;
    this.#dueWork = options.dueWork;
    this.#probe = options.probe ?? ((source, o) => this.#lk.probe(source, o));
    this.#writer = new HealthReportWriter(lk.paths.health);
    // Every probe in flight listens for shutdown on this one signal (concurrency can be 100s).
    setMaxListeners(0, this.#stop.signal);
    this.alerts = new AlertDispatcher({
      settings: options.alerts ?? {},
      fetch: options.fetch ?? options.open?.fetch ?? ((input, init) => fetch(input, init)),
      log: this.log,
      clock: lk.clock,
      metrics,
    });
    this.stages = {
      schedule: {
        state: 'starting',
        intervalSeconds: this.settings.intervalSeconds,
        cycles: state.cycles,
        lastCycleStartedAt: null,
        lastCycleFinishedAt: null,
        lastCycleMs: null,
        nextCycleAt: null,
      },
      refresh: { lastRunAt: null, counts: zeroRefreshCounts(), scheduled: 0, nextDueAt: null, wakeups: 0, lastLatenessMs: null },
      probe: { lastRunAt: null, checked: 0, skipped: 0, concurrency: this.settings.concurrency, perHostConcurrency: this.settings.perHostConcurrency, timeoutMs: this.settings.probeTimeoutMs },
      report: { state: 'pending', path: lk.paths.health, writes: 0, lastWriteAt: null, lastError: null },
      state: { state: 'ok', path: lk.paths.keeperState, lastSaveAt: null, lastError: null },
      notify: this.alerts.state,
      config: { state: 'ok', file: lk.config.file, loadedAt: new Date(lk.clock.now()).toISOString(), lastError: null },
    };
    this.#syncSources();
    // Until the first cycle: what the last run knew, dated when it was saved.
    this.#report = this.#buildReport(Date.parse(state.savedAt));
    this.#reportBytes = undefined;
    this.#readiness = this.#computeReadiness();
    this.#readinessBytes = Buffer.from(JSON.stringify(this.#readiness));
    for (const [name, s] of this.#sourceEntries()) {
      if (s.status) this.metrics.setSource(name, s.status, s.expiresAt, s.consecutiveFailures);
    }
  }

  /** Opens Latchkey (unless given), loads the persisted state, and returns a keeper ready to cycle. */
  static async open(options: KeeperOptions = {}): Promise<Keeper> {
    const clock = options.lk?.clock ?? options.open?.clock;
    const metrics = new KeeperMetrics(clock ? () => clock.now() : Date.now);
    const log = options.log ?? silentLog;
    let lk = options.lk;
    const owns = lk === undefined;
    if (!lk) lk = await openLatchkey(withRefreshHook(options.open, metrics));
    // Before the state of every source is loaded (heap-settings.ts).
    fitYoungGeneration(lk.config.sources.size);
    const loaded = await loadKeeperState(lk.paths.keeperState, lk.clock.now());
    if (loaded.kind === 'corrupt') {
      log('warn', 'state_reset', {
        message: `${lk.paths.keeperState} was unreadable (${loaded.reason}); moved it to ${loaded.movedTo} and started afresh (it holds no credential)`,
      });
    }
    const keeper = new Keeper(lk, owns, loaded.state, metrics, { ...options, log });
    keeper.#configStamp = await fileStamp(lk.config.file);
    return keeper;
  }

  get lk(): Latchkey {
    return this.#lk;
  }

  get clock(): Clock {
    return this.#lk.clock;
  }

  /** The current report (what `health.json` holds after the last cycle). */
  get report(): HealthReport {
    return this.#report;
  }

  /** {@link reportBytes} gzipped, built on the first request after each change. */
  get reportGzip(): Buffer {
    const bytes = this.reportBytes;
    if (this.#reportGzip?.of !== bytes) this.#reportGzip = { of: bytes, gzip: gzipSync(bytes) };
    return this.#reportGzip.gzip;
  }

  /**
   * Every source's 24 h timeline for `GET /api/history` (the dashboard asks after each change of
   * the report): serialized and gzipped on the first request after a change, then served as is.
   */
  get history(): { bytes: Buffer; gzip: Buffer } {
    if (!this.#historyCache) {
      const entries = this.#sourceEntries();
      const generatedAt = this.#report.generatedAt;
      // Source by source into one buffer, as health.json (never the whole document as one string).
      const bytes = bytesOfPieces(
        (function* () {
          yield `{"generatedAt":${JSON.stringify(generatedAt)},"sources":{`;
          for (let i = 0; i < entries.length; i++) {
            const [name, s] = entries[i] as [string, SourceKeeperState];
            yield `${i === 0 ? '' : ','}${JSON.stringify(name)}:${JSON.stringify(s.timeline)}`;
          }
          yield '}}\n';
        })(),
      );
      this.#historyCache = { bytes, gzip: gzipSync(bytes) };
    }
    return this.#historyCache;
  }

  /** The report serialized once per change: `/api/health` sends these bytes as they are. */
  get reportBytes(): Buffer {
    if (this.#reportBytes === undefined) {
      this.#reportBytes = serializeHealthReport(this.#report, this.#reportSize);
      this.#reportSize = this.#reportBytes.length;
    }
    return this.#reportBytes;
  }

  /**
   * What `/readyz` answers. Computed with each cycle, and checked at each request for one more
   * thing only the clock can tell: a keeper whose cycles stopped finishing (stuck on something)
   * is not ready, however good its last report looked.
   */
  get readiness(): Readiness {
    return this.#stalledReadiness()?.value ?? this.#readiness;
  }

  get readinessBytes(): Buffer {
    return this.#stalledReadiness()?.bytes ?? this.#readinessBytes;
  }

  #stalledReadiness(): { value: Readiness; bytes: Buffer } | undefined {
    const finished = this.stages.schedule.lastCycleFinishedAt;
    if (this.#cyclesThisRun === 0 || this.stopping || finished === null) return undefined;
    const age = this.clock.now() - Date.parse(finished);
    const allowed = Math.max(STALLED_INTERVALS * this.settings.intervalSeconds * 1000, STALLED_FLOOR_MS) + (this.stages.schedule.lastCycleMs ?? 0);
    if (!(age > allowed)) return undefined;
    const value: Readiness = {
      ...this.#readiness,
      ready: false,
      reason: `no cycle has finished for ${formatDuration(age)} (one is due every ${this.settings.intervalSeconds} s): the keeper is stuck; see its log`,
    };
    return { value, bytes: Buffer.from(JSON.stringify(value)) };
  }

  /** The persisted per-source state (a copy). */
  get sourceStates(): Record<string, SourceKeeperState> {
    const copy = structuredClone(this.#state.sources);
    // structuredClone keeps the typed arrays but not the Timeline class (its JSON form).
    for (const s of Object.values(copy)) s.timeline = new Timeline(s.timeline.t0, s.timeline.dt, s.timeline.s, s.timeline.l);
    return copy;
  }

  get stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  /** Runs `fn` after every cycle or probe queued before it (they never overlap). */
  #enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#serial.then(fn, fn);
    this.#serial = run.catch(() => undefined);
    return run;
  }

  /** One full cycle: every source that is due is refreshed-ahead and probed. */
  runCycle(): Promise<CycleSummary> {
    return this.#enqueue(() => this.#cycle());
  }

  /**
   * Probes now, ignoring backoff: one source, or all of them (`POST /api/probe`, the
   * dashboard's "Probe now"). Resolves with the fresh report.
   */
  probeNow(source?: string): Promise<HealthReport> {
    // Requests that arrive while the same probe is still waiting its turn share it: a dashboard
    // left open on several phones, or a "probe all" button pressed ten times, must not turn into
    // ten rounds of calls to every upstream API (their rate limits are the operator's).
    const key = source ?? '*';
    const waiting = this.#waitingProbes.get(key) ?? this.#waitingProbes.get('*');
    if (waiting) return waiting;
    const run = this.#enqueue(async () => {
      // From here on, a new request may want a fresher answer than this one: it queues its own.
      this.#waitingProbes.delete(key);
      if (this.stopping) return this.#report;
      // `latchkey add` a minute ago: "probe all" (or a probe of the new source) sees it now,
      // not at the next cycle. A stat when nothing changed.
      await this.#maybeReloadConfig(false);
      if (source !== undefined && !this.#lk.config.sources.has(source)) {
        throw new LatchkeyError('LK_UNKNOWN_SOURCE', `unknown source "${source}"`);
      }
      const names = source === undefined ? [...this.#lk.config.sources.keys()] : [source];
      const changes: StateChange[] = [];
      await runBounded(
        names,
        this.settings.concurrency,
        async (name) => {
          const c = await this.#check(name);
          if (c) changes.push(c);
        },
        0,
        this.#hostCap(names),
      );
      await this.#planRefreshes();
      const now = this.clock.now();
      noteActivity(this.#state.activity, {
        at: new Date(now).toISOString(),
        kind: 'probe',
        text: source === undefined ? `probe all (on request): ${names.length} probed, ${changes.length} changed` : `probe ${source} (on request)`,
        ok: true,
      });
      await this.#persistAndReport(changes, 'probe');
      this.log('info', 'probe_now', { sources: source === undefined ? ['*'] : [source], changes: changes.length });
      return this.#report;
    });
    this.#waitingProbes.set(key, run);
    // A rejected shared probe must not stay in the map (it is deleted when it starts; this covers a
    // queue that failed before it began).
    run.catch(() => {
      if (this.#waitingProbes.get(key) === run) this.#waitingProbes.delete(key);
    });
    return run;
  }

  /**
   * Reads the config again now (SIGHUP). A config that does not load leaves the keeper running on
   * the last good one; the reason is logged, in `/readyz` (`stages.config`) and on the dashboard.
   * Resolves true when the new config is in use.
   */
  reloadConfig(): Promise<boolean> {
    return this.#enqueue(async () => {
      if (this.stopping) return false;
      const ok = await this.#maybeReloadConfig(true);
      if (!ok) await this.#persistAndReport([], 'reload');
      return ok;
    });
  }

  /**
   * Starts the loop: a cycle now, then every interval ± 10 %; the refresh timer, which wakes for
   * each grant's own refresh due time whatever the interval; and the watch on the config file.
   */
  start(): void {
    if (this.#timer || this.#stopped || this.#started) return;
    this.#started = true;
    this.stages.schedule.state = 'running';
    this.#watchConfig();
    this.#schedule(0);
    // Due times from the store now, not after the first cycle: a cycle of 1,000 sources can take
    // longer than a short-lived token has left.
    void this.#planRefreshes().catch((err: unknown) => this.log('error', 'refresh_plan_failed', { message: (err as Error)?.message ?? String(err) }));
  }

  #schedule(delayMs: number): void {
    if (this.stopping) return;
    this.stages.schedule.nextCycleAt = new Date(this.clock.now() + delayMs).toISOString();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      const startedMono = performance.now();
      // The next cycle's start is known now (interval ± 10 % after this one starts), so the
      // report this cycle writes — and `/readyz` during it — name the next cycle, not this one.
      this.#nextCycleDelayMs = jitteredDelayMs(this.settings.intervalSeconds * 1000, this.#random());
      this.stages.schedule.nextCycleAt = new Date(this.clock.now() + this.#nextCycleDelayMs).toISOString();
      this.runCycle()
        .catch((err: unknown) => this.log('error', 'cycle_failed', { message: (err as Error)?.message ?? String(err) }))
        .finally(() => {
          this.stages.schedule.state = this.stopping ? 'stopped' : 'idle';
          // A cycle that overran its interval is followed at once (never a negative wait).
          this.#schedule(Math.max(0, this.#nextCycleDelayMs - (performance.now() - startedMono)));
        });
    }, delayMs);
  }

  /**
   * Stops: no new cycle starts, probes in flight are abandoned (not recorded as failures), the
   * refresh or write in progress finishes, state and report are saved, pending alerts get a
   * short grace period. Idempotent.
   */
  async stop(alertGraceMs = 3000): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    for (const t of [this.#timer, this.#refreshTimer, this.#flushTimer, this.#configSettle]) if (t) clearTimeout(t);
    this.#timer = this.#refreshTimer = this.#flushTimer = this.#configSettle = undefined;
    this.#configWatcher?.close();
    this.#configWatcher = undefined;
    this.#stop.abort(new Error('keeper stopping'));
    // Queued picks are handed back at once (a keeper taking over picks them without waiting out their lease).
    const unstarted = this.#refreshQueue.map((q) => q.name).filter((n) => this.#picked.delete(n));
    this.#refreshQueue.length = 0;
    await this.#picking;
    if (unstarted.length > 0) await this.#dueWork?.done(unstarted).catch(() => undefined);
    // A refresh under way holds the source's lock and persists a rotated token: let it finish.
    await Promise.allSettled([...this.#refreshesInFlight]);
    await this.#serial;
    this.stages.schedule.state = 'stopped';
    this.stages.schedule.nextCycleAt = null;
    await this.alerts.close(alertGraceMs);
    if (this.#ownsLk) await this.#lk.close();
  }

  // --- refresh timer ---------------------------------------------------------------------------

  /**
   * Recomputes the refresh due time of every OAuth grant from the store (one listing): a grant
   * whose basis did not change keeps its jittered due time, a new or rotated one gets a new one.
   */
  async #planRefreshes(): Promise<void> {
    const lk = this.#lk;
    const oauth = [...lk.config.sources].filter(([, src]) => src.methods.includes('oauth')).map(([n]) => n);
    const keep = new Set(oauth);
    this.#notMine.clear();
    this.#due.retain(keep);
    for (const n of [...this.#dueBasis.keys()]) if (!keep.has(n)) this.#dueBasis.delete(n);
    for (const n of [...this.#refreshSchedule.keys()]) if (!keep.has(n)) this.#refreshSchedule.delete(n);
    if (oauth.length > 0) {
      // Metadata only (issue 9): planning reads no secret.
      const records = await lk.store.listMeta().catch(() => undefined);
      if (records && lk === this.#lk) for (const name of oauth) if (!this.#refreshing.has(name)) this.#planOne(name, records.get(name));
    }
    this.#armRefreshTimer();
  }

  #planOne(name: string, meta: SourceMeta | undefined, retryAt?: number): void {
    const g = meta?.hasGrant ? meta : undefined;
    const basis = g ? `${g.obtainedAt}:${g.expiresAt ?? '-'}:${g.lastRefreshAt ?? '-'}:${g.revoked ? 'r' : 'l'}:${g.hasRefreshToken ? 'rt' : '-'}` : '';
    let at: number | undefined;
    if (retryAt !== undefined) at = retryAt;
    else if (basis !== '' && basis === this.#dueBasis.get(name) && this.#due.get(name) !== undefined) at = this.#due.get(name);
    else at = refreshDueAt(meta, this.#random());
    this.#due.set(name, at);
    this.#dueBasis.set(name, basis);
    this.#refreshSchedule.set(name, { issuedAt: g && !g.revoked ? g.obtainedAt : undefined, refreshAt: at, expiresAt: g?.expiresAt });
  }

  #armRefreshTimer(): void {
    this.stages.refresh.scheduled = this.#due.size;
    const earliest = this.#due.earliest();
    this.stages.refresh.nextDueAt = earliest === undefined ? null : new Date(earliest).toISOString();
    if (!this.#started || this.stopping) return;
    const now = this.clock.now();
    const sleep = this.#dueWork ? PICK_TICK_MS : MAX_REFRESH_SLEEP_MS;
    const wakeAt = earliest === undefined ? now + sleep : Math.min(earliest, now + sleep);
    if (this.#refreshTimer && this.#refreshTimerAt === wakeAt) return;
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    this.#refreshTimerAt = wakeAt;
    this.#refreshTimer = setTimeout(() => this.#onRefreshTimer(), Math.max(0, wakeAt - now));
  }

  /**
   * The refresh timer fired: every grant due now is refreshed through the engine (`refreshNow`:
   * the store's lock, the double-check, persisted before use), at most `concurrency` at once, and
   * outside the cycle queue — a 15 s cycle of slow probes must not make a 6 s token wait.
   */
  #onRefreshTimer(): void {
    this.#refreshTimer = undefined;
    this.#refreshTimerAt = undefined;
    if (this.stopping) return;
    if (this.#dueWork) return this.#pickDue(this.#dueWork);
    const batch = this.#due.takeDue(this.clock.now());
    for (const item of batch) {
      this.#refreshing.add(item.name);
      const exp = this.#refreshSchedule.get(item.name)?.expiresAt;
      this.#refreshQueue.push({ name: item.name, at: item.at, deadline: exp ?? item.at + DAILY_DEADLINE_SLACK_MS });
    }
    // Earliest deadline first: when refreshes queue up (a burst, a slow store), the token with
    // the least time left goes next, not the one that happened to be due first.
    if (batch.length) this.#refreshQueue.sort((a, b) => a.deadline - b.deadline);
    this.#armRefreshTimer();
    this.#pumpRefreshes();
  }

  /**
   * The refresh tick with a due-work picker (PostgreSQL): the store says which grants are due,
   * earliest first, skipping rows another transaction holds and those this keeper is refreshing,
   * holding back after a failure, or does not refresh. The keeper's own plan still gives the
   * report its refresh times and the retry times after a failure.
   */
  #pickDue(work: DueWorkPicker): void {
    if (this.#picking) return;
    const now = this.clock.now();
    if ((this.#due.earliest() ?? Infinity) <= now) this.#due.takeDue(now);
    const free = Math.min(REFRESH_SLOTS, this.settings.concurrency) * 2 - this.#refreshQueue.length - this.#refreshWorkers;
    if (free <= 0) return this.#armRefreshTimer();
    const exclude = [...this.#refreshing, ...this.#notMine];
    for (const [name, until] of this.#holdUntil) {
      if (until > now) exclude.push(name);
      else this.#holdUntil.delete(name);
    }
    this.#picking = work
      .pick(free, now, exclude)
      .then(async (names) => {
        const lk = this.#lk;
        const foreign = names.filter((n) => !lk.config.sources.get(n)?.methods.includes('oauth'));
        for (const n of foreign) this.#notMine.add(n);
        const skipped = this.stopping ? names.filter((n) => !this.#notMine.has(n)) : [];
        if (foreign.length > 0 || skipped.length > 0) await work.done([...foreign, ...skipped]);
        for (const name of names) {
          if (this.#notMine.has(name) || this.#refreshing.has(name) || this.stopping) continue;
          this.#refreshing.add(name);
          this.#picked.add(name);
          const exp = this.#refreshSchedule.get(name)?.expiresAt;
          this.#refreshQueue.push({ name, at: now, deadline: exp ?? now + DAILY_DEADLINE_SLACK_MS });
        }
        this.#refreshQueue.sort((a, b) => a.deadline - b.deadline);
        this.#pumpRefreshes();
      })
      .catch((err: unknown) => this.log('warn', 'due_pick_failed', { message: `cannot ask the store which grants are due: ${(err as Error)?.message ?? String(err)}; asked again in a second` }))
      .finally(() => {
        this.#picking = undefined;
        this.#armRefreshTimer();
      });
  }

  /**
   * Runs queued refreshes, at most {@link REFRESH_SLOTS} at once (one queue for every wake-up:
   * a burst never adds up to more). The store serializes its writes, so more in flight only
   * makes them wait on its lock.
   */
  #pumpRefreshes(): void {
    const slots = Math.min(REFRESH_SLOTS, this.settings.concurrency);
    while (this.#refreshWorkers < slots && this.#refreshQueue.length > 0 && !this.stopping) {
      const next = this.#refreshQueue.shift() as { name: string; at: number };
      this.#refreshWorkers += 1;
      const run: Promise<void> = this.#refreshDue(next.name, next.at).finally(() => {
        this.#refreshWorkers -= 1;
        this.#refreshesInFlight.delete(run);
        this.#pumpRefreshes();
      });
      this.#refreshesInFlight.add(run);
    }
  }

  async #refreshDue(name: string, dueAt: number): Promise<void> {
    const lk = this.#lk;
    const startedAt = this.clock.now();
    let result: RefreshOutcome;
    try {
      // Removed from the config while it waited in the queue: nothing to do.
      result = this.stopping || lk !== this.#lk || !lk.config.sources.has(name) ? { kind: 'none' } : await refreshAhead(lk, name, false, dueAt);
    } catch (err) {
      result = { kind: 'transient', reason: 'two_thirds_lifetime', message: (err as Error)?.message ?? String(err) };
    }
    const finishedAt = this.clock.now();
    this.#refreshing.delete(name);
    const picked = this.#picked.delete(name);
    if (picked) {
      await this.#dueWork?.done([name]).catch(() => undefined);
      // Until the plan's retry time (set below); a refresh that worked moved the stored due time.
      if (result.kind !== 'refreshed' && result.kind !== 'adopted') this.#holdUntil.set(name, finishedAt + 1000);
    }
    this.stages.refresh.wakeups += 1;
    this.stages.refresh.lastLatenessMs = Math.max(0, startedAt - dueAt);
    this.#onRefreshWake?.({ source: name, dueAt, startedAt, finishedAt, outcome: result.kind });
    // The source left the config (or the config was reloaded) meanwhile: nothing to record.
    if (lk !== this.#lk || !lk.config.sources.has(name) || this.stopping) return;
    this.stages.refresh.counts[result.kind] += 1;
    const prev = this.#state.sources[name] ?? emptySourceState();
    const next = refreshStateUpdate(prev, result, finishedAt);
    // What the refresh stage read back; read here only when it read nothing (its refresh threw).
    const rec = 'after' in result ? result.after : await lk.store.read(name).then((r) => r && metaOf(r)).catch(() => undefined);
    if (lk !== this.#lk || !this.#state.sources[name]) return;
    // The report's expiry follows the token the keeper just obtained: a 6 s token refreshed every
    // 4 s never shows as expired between two probes 300 s apart.
    const exp = rec?.expiresAt;
    if (exp !== undefined && (result.kind === 'refreshed' || result.kind === 'adopted')) next.expiresAt = new Date(exp).toISOString();
    this.#state.sources[name] = next;
    this.#countRefresh(result, finishedAt, name, Math.max(0, startedAt - dueAt));
    if (result.kind === 'transient') this.#planOne(name, rec, finishedAt + refreshRetryDelayMs(exp, finishedAt));
    // A person must act (invalid_client, a missing client secret): the grant is unchanged and
    // still "due"; asking again at once would hammer the IdP. Once per interval is plenty.
    else if (result.kind === 'action') this.#planOne(name, rec, finishedAt + Math.max(60_000, this.settings.intervalSeconds * 1000));
    else this.#planOne(name, rec);
    // Never the same grant twice within a second, whatever the store says.
    const planned = this.#due.get(name);
    if (planned !== undefined && planned < finishedAt + 1000) this.#planOne(name, rec, finishedAt + 1000);
    if (picked && this.#holdUntil.has(name)) this.#holdUntil.set(name, Math.max(finishedAt + 1000, this.#due.get(name) ?? 0));
    this.#armRefreshTimer();
    const replaced = prev.expiresAt === null ? Number.NaN : Date.parse(prev.expiresAt);
    this.#scheduleFlush(Number.isFinite(replaced) ? replaced : undefined);
    // The verdict and the alert should not wait for the next cycle (up to an interval away).
    if (result.kind === 'revoked' || result.kind === 'action') void this.probeNow(name).catch(() => undefined);
  }

  #countRefresh(r: RefreshStageResult, at: number, name: string, latenessMs?: number): void {
    if (r.kind === 'none' || r.kind === 'not_due') return;
    const ok = r.kind === 'refreshed' || r.kind === 'adopted';
    countActivity(this.#state.activity, at, { refreshes: 1, refreshFailures: ok ? 0 : 1 });
    const late = latenessMs === undefined ? '' : `, ${latenessMs} ms after due`;
    noteActivity(this.#state.activity, { at: new Date(at).toISOString(), kind: 'refresh', text: `${name}: ${r.kind}${late}`, ok });
  }

  /**
   * Rewrites the report (and `health.json`) soon, once for a burst of timer refreshes: within
   * {@link REPORT_FLUSH_MS}, and a flush interval before `replacedExpiry` (the expiry the report
   * still shows for a token a refresh just replaced), at once if that is already closer. A short
   * token refreshed late, or on a busy machine, never shows as expired in the report while its
   * successor is in the store (a 6 s token is refreshed ~1.7 s before its expiry). An expiry
   * already past changes nothing: the report says so already, and a burst of such refreshes (a
   * keeper waking from a sleep, every token expired) keeps to one rewrite per interval.
   */
  #scheduleFlush(replacedExpiry?: number): void {
    if (this.stopping) return;
    const now = this.clock.now();
    const urgentBy = replacedExpiry !== undefined && replacedExpiry > now ? replacedExpiry - REPORT_FLUSH_MS : Number.POSITIVE_INFINITY;
    const at = Math.max(now, Math.min(now + REPORT_FLUSH_MS, urgentBy));
    if (this.#flushTimer) {
      if (this.#flushAt <= at) return;
      clearTimeout(this.#flushTimer);
    }
    this.#flushAt = at;
    this.#flushTimer = setTimeout(() => {
      this.#flushTimer = undefined;
      void this.#enqueue(async () => {
        if (this.stopping) return;
        this.#report = this.#buildReport(this.clock.now());
        this.#reportBytes = undefined;
        await this.#writeReport('refresh');
        this.#readiness = this.#computeReadiness();
        this.#readinessBytes = Buffer.from(JSON.stringify(this.#readiness));
      });
    }, at - now);
  }

  // --- config ------------------------------------------------------------------------------------

  /**
   * Watches the config's directory (an editor or `latchkey add` replaces the file by rename, which
   * a watch on the file itself would lose). Where watching is not possible the stat check at each
   * cycle and each "probe all" still picks the change up.
   */
  #watchConfig(): void {
    if (!this.#ownsLk) return;
    const file = this.#lk.config.file;
    const name = basename(file);
    try {
      this.#configWatcher = watch(dirname(file), { persistent: false }, (_event, changed) => {
        if (changed !== null && changed !== name) return;
        if (this.#configSettle) clearTimeout(this.#configSettle);
        this.#configSettle = setTimeout(() => {
          this.#configSettle = undefined;
          void this.#enqueue(async () => {
            if (this.stopping) return;
            const before = this.stages.config.lastError;
            const ok = await this.#maybeReloadConfig(false);
            if (ok || this.stages.config.lastError !== before) await this.#persistAndReport([], 'reload');
          });
        }, CONFIG_SETTLE_MS);
      });
      this.#configWatcher.on('error', (err) => {
        this.log('warn', 'config_watch_failed', { file, message: `${err.message}; config changes are picked up at the next cycle or on SIGHUP` });
        this.#configWatcher?.close();
        this.#configWatcher = undefined;
      });
    } catch (err) {
      this.log('warn', 'config_watch_failed', { file, message: `${(err as Error).message}; config changes are picked up at the next cycle or on SIGHUP` });
    }
  }

  // -------------------------------------------------------------------------------------------

  async #cycle(): Promise<CycleSummary> {
    const startedWall = this.clock.now();
    const startedMono = performance.now();
    this.stages.schedule.state = 'running';
    this.stages.schedule.lastCycleStartedAt = new Date(startedWall).toISOString();
    const jump = this.#jumps.observe(startedWall, startedMono);
    if (jump !== undefined) {
      this.log('warn', 'clock_jump', {
        jumpMs: Math.round(jump),
        message: `the wall clock moved ${jump > 0 ? 'forward' : 'back'} by ${formatDuration(Math.abs(jump))} since the last cycle (NTP, suspend, VM restore); refresh-ahead follows the new time, backoff counts cycles and is unaffected`,
      });
    }
    await this.#maybeReloadConfig(false);
    const names = [...this.#lk.config.sources.keys()];
    // A keeper of thousands of sources gets a larger young generation (the `latchkey keeper`
    // process only; heap-settings.ts).
    fitYoungGeneration(names.length);
    // The store is listed once for the cycle (DESIGN.md), metadata only: refresh-ahead decides
    // from this listing, and a record (with its secrets) is read only for a grant it refreshes
    // and by the probe of its own source.
    const records = await this.#lk.store.listMeta().catch(() => undefined);
    const due = await this.#dueSources(names, records);
    this.stages.refresh.counts = zeroRefreshCounts();
    const changes: StateChange[] = [];
    await runBounded(
      due,
      this.settings.concurrency,
      async (name, release) => {
        const c = await this.#check(name, records, release);
        if (c) changes.push(c);
      },
      RELEASED_PER_SLOT * this.settings.concurrency,
      this.#hostCap(due),
    );
    const now = this.clock.now();
    this.stages.refresh.lastRunAt = this.stages.probe.lastRunAt = new Date(now).toISOString();
    this.stages.probe.checked = due.length;
    this.stages.probe.skipped = names.length - due.length;
    if (!this.stopping) {
      this.#state.cycles += 1;
      this.#cyclesThisRun += 1;
    }
    this.stages.schedule.cycles = this.#state.cycles;
    if (!this.stopping) await this.#sweepKeyspaces(now);
    this.stages.schedule.lastCycleFinishedAt = new Date(now).toISOString();
    this.stages.schedule.lastCycleMs = Math.round(performance.now() - startedMono);
    // Refreshes and logins of this cycle move due times; the report carries the new ones.
    await this.#planRefreshes();
    noteActivity(this.#state.activity, {
      at: new Date(now).toISOString(),
      kind: 'cycle',
      text: `cycle ${this.#state.cycles}: ${due.length} probed, ${names.length - due.length} backing off, ${changes.length} changed`,
      ok: true,
    });
    await this.#persistAndReport(changes, 'cycle');
    const durationMs = Math.round(performance.now() - startedMono);
    this.metrics.recordCycle(durationMs, this.clock.now());
    const counts: Record<HealthStatus, number> = { ok: 0, expiring: 0, degraded: 0, unreachable: 0, action_required: 0 };
    for (const s of Object.values(this.#report.sources)) counts[s.status] += 1;
    this.log('info', 'cycle', {
      cycle: this.#state.cycles,
      durationMs,
      checked: due.length,
      skipped: names.length - due.length,
      changes: changes.length,
      ...counts,
      ...(this.stopping ? { message: 'interrupted by shutdown: finished sources saved, the rest keep their last verdict' } : {}),
    });
    return {
      cycle: this.#state.cycles,
      durationMs,
      checked: due.length,
      skipped: names.length - due.length,
      changes,
      counts,
      exitCode: exitCodeFor(Object.values(this.#report.sources).map((s) => s.status)),
    };
  }

  /** The per-host share of the probe slots over `names` (grouped by their probe URL's host), unless it is all of them. */
  #hostCap(names: readonly string[]): GroupCap<string> | undefined {
    if (this.settings.perHostConcurrency >= this.settings.concurrency) return undefined;
    const hosts = new Map<string, string>();
    const byUrl = new Map<string, string>();
    for (const name of names) {
      const url = this.#lk.config.sources.get(name)?.probe?.url;
      let host = url === undefined ? '' : byUrl.get(url);
      if (host === undefined) {
        host = URL.canParse(url!) ? new URL(url!).host : '';
        byUrl.set(url!, host);
      }
      hosts.set(name, host);
    }
    return { groupOf: (name) => hosts.get(name) ?? '', perGroup: this.settings.perHostConcurrency };
  }

  /**
   * Removes the store's expired keyspace entries (the gateway's sessions, rotation successors and
   * tickets): at the end of a cycle, at most once per {@link KEYSPACE_SWEEP_MS} (a sweep lists
   * and reads every entry; expired ones are already invisible to readers, so this only reclaims
   * space). Never fails the cycle.
   */
  async #sweepKeyspaces(now: number): Promise<void> {
    if (this.#lastSweepAt !== undefined && now - this.#lastSweepAt < KEYSPACE_SWEEP_MS && now >= this.#lastSweepAt) return;
    this.#lastSweepAt = now;
    try {
      const removed = await this.#lk.store.sweep();
      if (removed > 0) this.log('info', 'keyspace_sweep', { removed, message: `removed ${removed} expired keyspace entr${removed === 1 ? 'y' : 'ies'}` });
    } catch (err) {
      this.log('warn', 'keyspace_sweep_failed', { message: `could not sweep expired keyspace entries: ${(err as Error)?.message ?? String(err)}; tried again at a later cycle` });
    }
  }

  /** Which sources take their turn this cycle (backoff), noticing new logins. */
  async #dueSources(names: string[], listed: Map<string, SourceMeta> | undefined): Promise<string[]> {
    const waiting = names.filter((n) => (this.#state.sources[n]?.skipCycles ?? 0) > 0);
    let records: Map<string, SourceMeta> | undefined;
    if (waiting.length > 0) records = listed ?? (await this.#lk.store.listMeta().catch(() => undefined));
    const due: string[] = [];
    for (const name of names) {
      const s = this.#state.sources[name] ?? emptySourceState();
      if (s.skipCycles > 0 && records && credentialStamp(records.get(name)) !== s.credentialStamp) {
        this.#state.sources[name] = { ...s, skipCycles: 0 };
        due.push(name);
        continue;
      }
      const turn = takeTurn(s);
      this.#state.sources[name] = turn.next;
      if (turn.due) due.push(name);
    }
    // Sources that were unreachable last time go first: if they stall again, their wait for the
    // timeout overlaps with everyone else's probes instead of trailing the cycle.
    const first = due.filter((n) => this.#state.sources[n]?.status === 'unreachable');
    return first.length ? [...first, ...due.filter((n) => this.#state.sources[n]?.status !== 'unreachable')] : due;
  }

  /** Refresh-ahead, probe, verdict, state for one source. Never throws. */
  async #check(name: string, records?: Map<string, SourceMeta>, onSlowProbe?: () => void): Promise<StateChange | undefined> {
    const lk = this.#lk;
    if (this.stopping) return undefined;
    let refresh: RefreshOutcome;
    try {
      refresh = await refreshAhead(lk, name, false, undefined, records ? { meta: records.get(name) } : undefined);
    } catch (err) {
      refresh = { kind: 'transient', reason: 'two_thirds_lifetime', message: (err as Error)?.message ?? String(err) };
    }
    this.stages.refresh.counts[refresh.kind] += 1;
    this.#countRefresh(refresh, lk.clock.now(), name);
    const result = await probeWithDeadline(this.#probe, name, this.settings.probeTimeoutMs, this.#stop.signal, lk.clock, onSlowProbe);
    holdYoungGeneration();
    const prev = this.#state.sources[name] ?? emptySourceState();
    const refreshed = refreshStateUpdate(prev, refresh, lk.clock.now());
    if (result === CANCELLED) {
      this.#state.sources[name] = refreshed;
      return undefined;
    }
    let warm = await keepWarm(lk, name, result, this.settings.probeTimeoutMs, this.#stop.signal).catch(
      (err: unknown): WarmResult => ({ kind: 'failed', message: (err as Error)?.message ?? String(err), operatorAction: null }),
    );
    if (this.stopping && warm.kind === 'failed') warm = { kind: 'none' }; // cut short by shutdown: not a failure
    const at = new Date(lk.clock.now()).toISOString();
    const verdict = combineVerdict(name, result, refresh, at, warm, lk.config.sources.get(name));
    const { next, change } = applyVerdict(name, refreshed, verdict, backoffCapCycles(this.settings.intervalSeconds * 1000));
    if (lk.config.sources.get(name)?.methods.some((m) => m === 'oauth' || m === 'session')) {
      // The listing still describes the credential unless this check refreshed it; a refresh read
      // the source back (`after`); only a refresh that threw leaves a read to make here.
      const unchanged = records && (refresh.kind === 'none' || refresh.kind === 'not_due' || refresh.kind === 'revoked') && !('after' in refresh);
      next.credentialStamp = credentialStamp(
        unchanged ? records.get(name) : 'after' in refresh ? refresh.after : await lk.store.read(name).catch(() => undefined),
      );
    }
    // Removed from the config while this check ran (a reload between two awaits): not recorded.
    if (lk !== this.#lk || !this.#lk.config.sources.has(name)) return undefined;
    // A timer refresh that landed while this probe ran set a later expiry: keep the later one.
    const timerExp = this.#state.sources[name]?.expiresAt;
    if (timerExp && next.expiresAt && Date.parse(timerExp) > Date.parse(next.expiresAt) && verdict.authPath === 'oauth') next.expiresAt = timerExp;
    countActivity(this.#state.activity, lk.clock.now(), { probes: 1 });
    this.#state.sources[name] = next;
    this.metrics.recordProbe(name, verdict.status, verdict.authPath, verdict.latencyMs);
    this.metrics.setSource(name, verdict.status, verdict.expiresAt, next.consecutiveFailures);
    return change;
  }

  /** Saves state, writes health.json (saying so if someone touched it), alerts. */
  async #persistAndReport(changes: StateChange[], why: 'cycle' | 'probe' | 'reload'): Promise<void> {
    const now = this.clock.now();
    this.#state.savedAt = new Date(now).toISOString();
    try {
      await saveKeeperState(this.#lk.paths.keeperState, this.#state);
      this.stages.state = { ...this.stages.state, state: 'ok', lastSaveAt: this.#state.savedAt, lastError: null };
    } catch (err) {
      const message = `cannot save ${this.#lk.paths.keeperState}: ${(err as Error).message}`;
      this.stages.state = { ...this.stages.state, state: 'failing', lastError: message };
      this.log('error', 'state_save_failed', { message });
    }
    this.#report = this.#buildReport(now);
    this.#reportBytes = undefined;
    await this.#writeReport(why);
    this.#readiness = this.#computeReadiness();
    this.#readinessBytes = Buffer.from(JSON.stringify(this.#readiness));
    this.alerts.notify(changes);
    const statuses = Object.values(this.#report.sources).map((s) => s.status);
    const broken = Object.entries(this.#report.sources).filter(([, s]) => s.status === 'action_required' || s.status === 'unreachable');
    const msg = changes.length
      ? changes.map((c) => `${c.source}: ${c.from ?? 'new'} -> ${c.to}`).join('; ')
      : broken.length
        ? broken.map(([n, s]) => `${n}: ${s.status}`).join('; ')
        : `${statuses.length} source(s) healthy`;
    this.alerts.pushUptimeKuma(kumaStatus(statuses), msg);
  }

  #buildReport(at: number): HealthReport {
    this.#historyCache = undefined;
    return buildHealthReport(this.#sourceEntries(), at, this.settings.intervalSeconds, {
      schedule: (name) => this.#refreshSchedule.get(name),
      keeper: this.#keeperInfo(),
    });
  }

  #keeperInfo(): KeeperReportInfo {
    const c = this.stages.config;
    const fleet = this.#fleet?.();
    return {
      nextCycleAt: this.stages.schedule.nextCycleAt,
      config: { file: c.file, loadedAt: c.loadedAt, error: c.lastError },
      activity: this.#state.activity,
      ...(fleet ? { fleet } : {}),
    };
  }

  async #writeReport(why: 'cycle' | 'probe' | 'reload' | 'refresh'): Promise<void> {
    const path = this.#writer.path;
    try {
      const found = await this.#writer.check().catch(() => 'unchanged' as const);
      if (found === 'deleted' || found === 'corrupted' || found === 'replaced') {
        const what = found === 'deleted' ? 'was deleted' : found === 'corrupted' ? 'was corrupted (not a valid report)' : 'was replaced by something else';
        this.log('warn', 'health_report_rewritten', { path, found, message: `${path} ${what} since the last ${why}; rewriting it` });
      }
      // Written source by source, in pieces: at 10,000 sources the report is ~20 MB, and a keeper
      // that serves nobody never holds it whole (its bytes are built on the first request).
      await this.#writer.write(this.#reportBytes ?? healthReportPieces(this.#report));
      this.#reportSize = this.#writer.lastSize;
      this.metrics.recordReportWrite();
      this.stages.report = { ...this.stages.report, state: 'ok', writes: this.#writer.writes, lastWriteAt: this.#report.generatedAt, lastError: null };
    } catch (err) {
      const message = `cannot write ${path}: ${(err as Error).message}`;
      this.stages.report = { ...this.stages.report, state: 'failing', lastError: message };
      this.log('error', 'health_report_failed', { message });
    }
    if (this.#publish) {
      try {
        await this.#publish(this.#report);
      } catch (err) {
        this.log('error', 'shared_state_failed', { message: `cannot publish the keeper state to the shared store: ${(err as Error)?.message ?? String(err)}` });
      }
    }
  }

  /**
   * The `/readyz` rules (README "Keeper"): ready (200) when the first cycle has finished,
   * health.json can be written, and every source is usable — `ok`, `expiring` or `degraded` (the
   * credential works; a refresh or an upstream is having trouble). A source `unreachable` or
   * `action_required` makes it 503 and is named in `reason`; so does a keeper whose cycles stopped
   * finishing (see {@link readiness}). A config reload that failed is reported (the keeper runs on
   * the last good config) but does not by itself make it unready.
   */
  #computeReadiness(): Readiness {
    const needsAction = Object.entries(this.#report.sources)
      .filter(([, s]) => s.status === 'action_required')
      .map(([source, s]) => ({ source, operatorAction: s.operatorAction, fix: s.fix, message: s.message }));
    const unreachable = Object.entries(this.#report.sources)
      .filter(([, s]) => s.status === 'unreachable')
      .map(([n]) => n);
    const problems: string[] = [];
    if (needsAction.length) problems.push(`${needsAction.length} source(s) need a person: ${needsAction.map((n) => n.source).join(', ')}`);
    if (unreachable.length) problems.push(`${unreachable.length} source(s) unreachable: ${unreachable.join(', ')}`);
    let reason: string;
    if (this.#cyclesThisRun === 0) reason = 'the first cycle has not finished yet';
    else if (this.stages.report.state === 'failing') reason = this.stages.report.lastError ?? 'health.json cannot be written';
    else if (problems.length) reason = problems.join('; ');
    else {
      const n = Object.keys(this.#report.sources).length;
      const shaky = Object.entries(this.#report.sources).filter(([, s]) => s.status === 'degraded' || s.status === 'expiring');
      reason = n === 0 ? 'no sources configured' : shaky.length ? `every source is usable (${shaky.map(([k, s]) => `${k}: ${s.status}`).join(', ')})` : 'every source is usable';
    }
    if (this.stages.config.state === 'failing') reason += `; config reload refused, running on the last good config: ${this.stages.config.lastError ?? ''}`;
    const ready = this.#cyclesThisRun > 0 && this.stages.report.state !== 'failing' && problems.length === 0;
    return { ready, reason, needsAction, unreachable, stages: this.stages };
  }

  /** Adds state for new sources, drops state and metrics of sources gone from the config. */
  #syncSources(): void {
    const names = new Set(this.#lk.config.sources.keys());
    for (const n of names) if (!this.#state.sources[n]) this.#state.sources[n] = emptySourceState();
    for (const n of Object.keys(this.#state.sources)) if (!names.has(n)) delete this.#state.sources[n];
    this.metrics.retainSources(names);
    this.#due.retain(names);
    for (const n of [...this.#refreshSchedule.keys()]) if (!names.has(n)) this.#refreshSchedule.delete(n);
  }

  #sourceEntries(): Array<[string, SourceKeeperState]> {
    return [...this.#lk.config.sources.keys()].map((n) => [n, this.#state.sources[n] ?? emptySourceState()]);
  }

  /**
   * Reads the config again when the file changed (`force`: whatever its stamp; SIGHUP). A config
   * that does not load keeps the keeper on the last good one and says why (log, `/readyz`,
   * dashboard); the next change of the file is tried again. Returns true when a new config is in use.
   */
  async #maybeReloadConfig(force: boolean): Promise<boolean> {
    if (!this.#ownsLk) {
      if (force) this.log('warn', 'config_reload_unsupported', { message: 'this keeper was given an open Latchkey; it cannot reload its config' });
      return false;
    }
    const file = this.#lk.config.file;
    const stamp = await fileStamp(file);
    if (stamp === this.#configStamp && !force) return false;
    this.#configStamp = stamp;
    const now = new Date(this.clock.now()).toISOString();
    try {
      // Without the `config` the first open may have been given: read the file afresh.
      const next = await openLatchkey(withRefreshHook({ ...this.#openOptions, config: undefined }, this.metrics));
      const old = this.#lk;
      const before = new Set(old.config.sources.keys());
      const after = new Set(next.config.sources.keys());
      this.#lk = next;
      await old.close().catch(() => undefined);
      for (const s of Object.values(this.#state.sources)) s.skipCycles = 0;
      // Due times were computed from the old config's sources: recompute them all.
      this.#dueBasis.clear();
      this.#syncSources();
      await this.#planRefreshes();
      this.stages.config = { state: 'ok', file: next.config.file, loadedAt: now, lastError: null };
      this.#readiness = this.#computeReadiness();
      this.#readinessBytes = Buffer.from(JSON.stringify(this.#readiness));
      const added = [...after].filter((n) => !before.has(n));
      const removed = [...before].filter((n) => !after.has(n));
      noteActivity(this.#state.activity, { at: now, kind: 'config', text: `config reloaded: ${after.size} source(s)${added.length ? `, added ${added.join(', ')}` : ''}${removed.length ? `, removed ${removed.join(', ')}` : ''}`, ok: true });
      this.log('info', 'config_reloaded', { file: next.config.file, sources: next.config.sources.size, added, removed, trigger: force ? 'signal' : 'change' });
      return true;
    } catch (err) {
      const message = (err as Error).message;
      const repeated = this.stages.config.lastError === message;
      this.stages.config = { ...this.stages.config, state: 'failing', lastError: message };
      // `/readyz` says so at once (the report follows with the write that comes next).
      this.#readiness = this.#computeReadiness();
      this.#readinessBytes = Buffer.from(JSON.stringify(this.#readiness));
      if (!repeated || force) {
        noteActivity(this.#state.activity, { at: now, kind: 'config', text: `config reload refused: ${message}`, ok: false });
        this.log('error', 'config_reload_failed', { file, message: `${message}; still running with the previous config` });
      }
      return false;
    }
  }
}

function withRefreshHook(open: OpenLatchkeyOptions | undefined, metrics: KeeperMetrics): OpenLatchkeyOptions {
  const user = open?.onRefresh;
  return {
    ...open,
    onRefresh: (event) => {
      metrics.recordRefresh(event);
      user?.(event);
    },
  };
}

/** Counters of the refresh stage kept in the per-source state. */
function refreshStateUpdate(prev: SourceKeeperState, r: RefreshStageResult, now: number): SourceKeeperState {
  if (r.kind === 'none' || r.kind === 'not_due') return prev;
  const ok = r.kind === 'refreshed' || r.kind === 'adopted';
  return {
    ...prev,
    refreshAttempts: prev.refreshAttempts + 1,
    refreshFailures: ok ? 0 : prev.refreshFailures + 1,
    lastRefreshAt: ok ? new Date(now).toISOString() : prev.lastRefreshAt,
    lastRefreshOutcome: r.kind,
  };
}

async function fileStamp(path: string): Promise<string | undefined> {
  try {
    const st = await stat(path);
    return `${st.ino}:${st.size}:${st.mtimeMs}`;
  } catch {
    return undefined;
  }
}

export function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172_800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86_400)} days`;
}
