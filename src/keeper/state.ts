import { open, readFile, rename } from 'node:fs/promises';
import type { HealthStatus } from '../core/health.js';
import type { MethodName } from '../config/constants.js';
import type { OperatorAction } from '../core/errors.js';
import { writeFileAtomic } from '../store/atomic-file.js';
import { sanitizeMessage } from '../core/sanitize.js';
import { backoffCycles } from './scheduler.js';

/**
 * The keeper's "state" stage: what it knows about each source, kept across restarts in
 * `keeper-state.json` (written atomically; a reader never sees half a file). The transition
 * rules are pure functions, so "a source that keeps failing backs off" and "one alert per
 * state change" are tested without a clock, a network or a disk.
 */

/** Recent probes carried in `health.json` per source (the last ones of the {@link Timeline}). */
export const HISTORY_LIMIT = 30;
/** The timeline keeps this much probe history per source (the dashboard's 24 h strip)… */
export const TIMELINE_WINDOW_MS = 24 * 60 * 60 * 1000;
/**
 * …and at most this many probes: 24 h at the default 300 s interval (288) with room for manual
 * probes. A keeper probing more often keeps the most recent 300 (a 20 s interval shows ~1.7 h):
 * 1,000 sources then hold ~5 MB of timeline in memory and ~2 MB in keeper-state.json, whatever
 * the interval.
 */
export const TIMELINE_MAX_SAMPLES = 300;

/** One letter per status in {@link Timeline.s} (a 24 h timeline is ~300 letters, not ~300 objects). */
export const STATUS_LETTER: Readonly<Record<HealthStatus, string>> = { ok: 'o', expiring: 'e', degraded: 'd', unreachable: 'u', action_required: 'a' };
const LETTER_STATUS: Readonly<Record<string, HealthStatus>> = { o: 'ok', e: 'expiring', d: 'degraded', u: 'unreachable', a: 'action_required' };

/** A {@link Timeline} as saved in `keeper-state.json` and sent by `GET /api/history`. */
export interface TimelineJson {
  /** Epoch seconds of the first probe (0 when empty). */
  t0: number;
  /** Seconds from the previous probe (the first entry is 0). */
  dt: number[];
  s: string;
  l: number[];
}

/**
 * Every probe of the last 24 h, compact: the time of the first probe in epoch seconds, the gaps
 * to each next one in seconds, one status letter per probe ({@link STATUS_LETTER}) and the
 * latency in ms (-1 = none). Saved and sent as {@link TimelineJson} (parallel arrays of small
 * integers: 288 probes take ~2 KB of JSON instead of ~18 KB of objects).
 *
 * In memory the gaps and latencies are typed arrays (4 bytes a probe each), not arrays of
 * numbers (8 bytes each plus growth slack): at 10,000 sources × 300 probes that is ~24 MB
 * instead of ~100 MB (bench/keeper-scale, issue 9). `s.length` is the number of probes; the
 * arrays may have room beyond it.
 */
export class Timeline {
  constructor(
    public t0: number,
    public dt: Uint32Array,
    public s: string,
    public l: Int32Array,
  ) {}

  toJSON(): TimelineJson {
    const n = this.s.length;
    return { t0: this.t0, dt: Array.from(this.dt.subarray(0, n)), s: this.s, l: Array.from(this.l.subarray(0, n)) };
  }
}

/** One probe as remembered. */
export interface ProbeSample {
  at: string;
  status: HealthStatus;
  latencyMs: number | null;
}

/** Everything the keeper remembers about one source. */
export interface SourceKeeperState {
  /** null until the first verdict. */
  status: HealthStatus | null;
  authPath: MethodName | null;
  operatorAction: OperatorAction | null;
  fix: string | null;
  message: string;
  expiresAt: string | null;
  lastOkAt: string | null;
  lastCheckedAt: string | null;
  latencyMs: number | null;
  consecutiveFailures: number;
  /** When the current run of failures began (null when healthy). */
  failingSince: string | null;
  /** Refresh-ahead attempts made by the keeper for this source (all time). */
  refreshAttempts: number;
  /** Refresh-ahead attempts in a row that did not succeed. */
  refreshFailures: number;
  lastRefreshAt: string | null;
  lastRefreshOutcome: string | null;
  /** Cycles this source still sits out (backoff). */
  skipCycles: number;
  /**
   * Identifies the stored credential checked last (e.g. the grant's `obtainedAt`): when it
   * changes — a new login — a backed-off source is checked at once.
   */
  credentialStamp: string | null;
  /** Every probe of the last 24 h. */
  timeline: Timeline;
}

/** The verdict of one check (refresh + probe combined), ready to be applied to the state. */
export interface Verdict {
  status: HealthStatus;
  authPath: MethodName | null;
  operatorAction: OperatorAction | null;
  /** The exact command or URL that fixes it. */
  fix: string | null;
  message: string;
  expiresAt: string | null;
  latencyMs: number | null;
  /** ISO time of the check. */
  at: string;
}

/** A change of status worth telling someone about. */
export interface StateChange {
  source: string;
  from: HealthStatus | null;
  to: HealthStatus;
  operatorAction: OperatorAction | null;
  fix: string | null;
  message: string;
  authPath: MethodName | null;
  at: string;
}

export interface KeeperStateFile {
  version: 1;
  savedAt: string;
  /** Completed cycles, all time. */
  cycles: number;
  sources: Record<string, SourceKeeperState>;
  /** What the keeper itself did over the last 24 h (the dashboard's activity strip). */
  activity: KeeperActivity;
}

/** Probes and refreshes the keeper made in one clock hour. */
export interface ActivityHour {
  /** Epoch seconds of the start of the hour. */
  hour: number;
  probes: number;
  refreshes: number;
  refreshFailures: number;
}

/** One thing the keeper did, as the dashboard lists it. */
export interface ActivityEvent {
  at: string;
  kind: 'cycle' | 'probe' | 'refresh' | 'config';
  /** One line: what was done and how it went (`idp: refreshed`, `12 probed, 0 changed`). */
  text: string;
  ok: boolean;
}

export interface KeeperActivity {
  /** At most {@link ACTIVITY_HOURS}, oldest first. */
  hours: ActivityHour[];
  /** The last {@link ACTIVITY_EVENTS} events, oldest first. */
  recent: ActivityEvent[];
}

export const ACTIVITY_HOURS = 24;
export const ACTIVITY_EVENTS = 20;

export function emptyActivity(): KeeperActivity {
  return { hours: [], recent: [] };
}

/** Counts probes/refreshes into the hour of `atMs` and drops hours older than a day. Mutates `a`. */
export function countActivity(a: KeeperActivity, atMs: number, add: { probes?: number; refreshes?: number; refreshFailures?: number }): void {
  const hour = Math.floor(atMs / 3_600_000) * 3600;
  let h = a.hours[a.hours.length - 1];
  if (!h || h.hour !== hour) {
    if (h && h.hour > hour) return; // a clock stepped back into an hour already closed: not worth a bucket
    h = { hour, probes: 0, refreshes: 0, refreshFailures: 0 };
    a.hours.push(h);
  }
  h.probes += add.probes ?? 0;
  h.refreshes += add.refreshes ?? 0;
  h.refreshFailures += add.refreshFailures ?? 0;
  while (a.hours.length > 0 && (a.hours[0] as ActivityHour).hour <= hour - ACTIVITY_HOURS * 3600) a.hours.shift();
}

/** Remembers one event (the last {@link ACTIVITY_EVENTS}). Mutates `a`. */
export function noteActivity(a: KeeperActivity, e: ActivityEvent): void {
  a.recent.push(e);
  if (a.recent.length > ACTIVITY_EVENTS) a.recent.splice(0, a.recent.length - ACTIVITY_EVENTS);
}

export function emptySourceState(): SourceKeeperState {
  return {
    status: null,
    authPath: null,
    operatorAction: null,
    fix: null,
    message: 'not checked yet',
    expiresAt: null,
    lastOkAt: null,
    lastCheckedAt: null,
    latencyMs: null,
    consecutiveFailures: 0,
    failingSince: null,
    refreshAttempts: 0,
    refreshFailures: 0,
    lastRefreshAt: null,
    lastRefreshOutcome: null,
    skipCycles: 0,
    credentialStamp: null,
    timeline: emptyTimeline(),
  };
}

/**
 * A timeline's gaps and latencies for `capacity` probes, in one buffer: one allocation per
 * source instead of two (each buffer carries its own object and native bookkeeping, ~0.2 KB at
 * 10,000 sources × 2). Capacity 0 shares one empty pair: nothing is ever written to it
 * ({@link reserve} replaces it first).
 */
function timelineArrays(capacity: number): { dt: Uint32Array; l: Int32Array } {
  if (capacity === 0) return NO_ARRAYS;
  const buffer = new ArrayBuffer(capacity * 8);
  return { dt: new Uint32Array(buffer, 0, capacity), l: new Int32Array(buffer, capacity * 4, capacity) };
}
const NO_ARRAYS = { dt: new Uint32Array(0), l: new Int32Array(0) };

export function emptyTimeline(): Timeline {
  return new Timeline(0, NO_ARRAYS.dt, '', NO_ARRAYS.l);
}

/** Room for one more probe (a full timeline holds {@link TIMELINE_MAX_SAMPLES} + 1 until it drops one). */
function reserve(tl: Timeline, n: number): void {
  if (tl.dt.length > n) return;
  const capacity = Math.max(n + 1, Math.min(TIMELINE_MAX_SAMPLES + 1, Math.max(16, tl.dt.length * 2)));
  const { dt, l } = timelineArrays(capacity);
  dt.set(tl.dt.subarray(0, n));
  l.set(tl.l.subarray(0, n));
  tl.dt = dt;
  tl.l = l;
}

/**
 * Appends a probe and drops what fell out of the window (older than 24 h before it, or beyond
 * {@link TIMELINE_MAX_SAMPLES}). Mutates and returns `tl`. A sample older than the last one
 * (a clock stepped back) is recorded at the last one's time: the timeline stays ordered.
 */
export function appendTimeline(tl: Timeline, atMs: number, status: HealthStatus, latencyMs: number | null): Timeline {
  const at = Math.floor(atMs / 1000);
  const last = timelineEnd(tl);
  let n = tl.s.length;
  reserve(tl, n);
  if (n === 0) {
    tl.t0 = at;
    tl.dt[0] = 0;
  } else {
    tl.dt[n] = Math.max(0, at - last);
  }
  tl.s += STATUS_LETTER[status];
  tl.l[n] = latencyMs === null || !Number.isFinite(latencyMs) ? -1 : Math.min(MAX_LATENCY_MS, Math.max(0, Math.round(latencyMs)));
  n += 1;
  const end = Math.max(at, last);
  let drop = Math.max(0, n - TIMELINE_MAX_SAMPLES);
  let t = tl.t0;
  for (let i = 0; i < drop; i++) t += tl.dt[i + 1] ?? 0;
  while (drop < n - 1 && end - t > TIMELINE_WINDOW_MS / 1000) {
    drop += 1;
    t += tl.dt[drop] ?? 0;
  }
  if (drop > 0) {
    tl.t0 = t;
    tl.dt.copyWithin(0, drop, n);
    tl.dt[0] = 0;
    tl.l.copyWithin(0, drop, n);
    tl.s = tl.s.slice(drop);
  }
  return tl;
}

/** Latencies are kept in 32 bits (a probe is cut off long before 24 days). */
const MAX_LATENCY_MS = 0x7fffffff;

/** Epoch seconds of the last probe (0 when empty). */
export function timelineEnd(tl: Timeline): number {
  let t = tl.t0;
  const n = tl.s.length;
  for (let i = 1; i < n; i++) t += tl.dt[i] as number;
  return t;
}

/**
 * The last `limit` probes recorded at or before `until` (epoch seconds): the `history` of a
 * health report, as of the report (a timeline keeps growing after it was made).
 */
export function samplesUntil(tl: Timeline, until: number, limit: number = HISTORY_LIMIT): ProbeSample[] {
  const count = tl.s.length;
  if (limit <= 0) return [];
  // One pass: the times of the last `limit` probes at or before `until`, in a ring.
  const times = new Float64Array(limit);
  let t = tl.t0;
  let last = -1;
  for (let i = 0; i < count; i++) {
    if (i > 0) t += tl.dt[i] as number;
    if (t > until) break;
    last = i;
    times[i % limit] = t;
  }
  const out: ProbeSample[] = [];
  for (let i = Math.max(0, last - limit + 1); i <= last; i++) {
    const l = tl.l[i] as number;
    out.push({ at: isoOfSecond(times[i % limit] as number), status: LETTER_STATUS[tl.s[i] as string] ?? 'unreachable', latencyMs: l < 0 ? null : l });
  }
  return out;
}

/**
 * ISO times of recent whole seconds, remembered: a report of 10,000 sources names ~300,000
 * probe times, most of them shared (a cycle probes many sources in the same second).
 */
const isoSeconds = new Map<number, string>();
const ISO_SECONDS_KEPT = 4096;

function isoOfSecond(t: number): string {
  let text = isoSeconds.get(t);
  if (text === undefined) {
    if (isoSeconds.size >= ISO_SECONDS_KEPT) isoSeconds.clear();
    text = new Date(t * 1000).toISOString();
    isoSeconds.set(t, text);
  }
  return text;
}

/** The last `n` probes as samples. */
export function recentSamples(tl: Timeline, n: number = HISTORY_LIMIT): ProbeSample[] {
  return samplesUntil(tl, Infinity, n);
}

/** Most cycles a source in `action_required` sits out (a new login is also noticed at once). */
export const ACTION_BACKOFF_CAP = 3;

const HEALTHY: ReadonlySet<HealthStatus> = new Set(['ok', 'expiring']);

/** `ok` and `expiring` are healthy (the credential works); the rest count as failures. */
export function isHealthy(status: HealthStatus | null): boolean {
  return status !== null && HEALTHY.has(status);
}

/**
 * Applies a verdict: updates counters, history and backoff, and reports the status change if
 * there is one. A first verdict that is healthy is not a change (nothing to tell anyone); a
 * first verdict that is broken is.
 */
export function applyVerdict(
  source: string,
  prev: SourceKeeperState,
  v: Verdict,
  capCycles: number,
): { next: SourceKeeperState; change: StateChange | undefined } {
  const healthy = isHealthy(v.status);
  // What the keeper keeps goes to health.json, keeper-state.json, /api/health and alerts: a
  // message quoting upstream text loses every piece of a held secret and every escape here.
  const message = sanitizeMessage(v.message);
  const fix = v.fix === null || v.fix === undefined ? v.fix : sanitizeMessage(v.fix);
  const consecutiveFailures = healthy ? 0 : prev.consecutiveFailures + 1;
  const atMs = Date.parse(v.at);
  const timeline = Number.isNaN(atMs) ? prev.timeline : appendTimeline(prev.timeline, atMs, v.status, v.latencyMs);
  const next: SourceKeeperState = {
    ...prev,
    status: v.status,
    authPath: v.authPath,
    operatorAction: v.operatorAction,
    fix,
    message,
    expiresAt: v.expiresAt,
    latencyMs: v.latencyMs,
    lastCheckedAt: v.at,
    lastOkAt: healthy ? v.at : prev.lastOkAt,
    consecutiveFailures,
    failingSince: healthy ? null : (prev.failingSince ?? v.at),
    // A source waiting for a person backs off less far: the fix may come at any moment.
    skipCycles: healthy ? 0 : backoffCycles(consecutiveFailures, v.status === 'action_required' ? Math.min(capCycles, ACTION_BACKOFF_CAP) : capCycles),
    timeline,
  };
  const changed = prev.status !== v.status && !(prev.status === null && healthy);
  const change = changed
    ? { source, from: prev.status, to: v.status, operatorAction: v.operatorAction, fix, message, authPath: v.authPath, at: v.at }
    : undefined;
  return { next, change };
}

/** Whether a source is checked this cycle; when not, its backoff counter moves one step. */
export function takeTurn(s: SourceKeeperState): { due: boolean; next: SourceKeeperState } {
  if (s.skipCycles > 0) return { due: false, next: { ...s, skipCycles: s.skipCycles - 1 } };
  return { due: true, next: s };
}

// ---------------------------------------------------------------------------------------------
// Persistence

export type StateLoad =
  | { kind: 'loaded'; state: KeeperStateFile }
  | { kind: 'missing'; state: KeeperStateFile }
  /** The file was unreadable; it was moved aside to `movedTo` and the keeper starts afresh. */
  | { kind: 'corrupt'; state: KeeperStateFile; movedTo: string; reason: string };

export function emptyStateFile(): KeeperStateFile {
  return { version: 1, savedAt: new Date(0).toISOString(), cycles: 0, sources: {}, activity: emptyActivity() };
}

/**
 * Reads `keeper-state.json`. A missing file is a first start. A corrupt one (hand-edited,
 * truncated by a dying disk) is moved aside, never overwritten in place, so nothing a person
 * might want to inspect is lost; it holds no credential, so starting afresh is safe.
 *
 * The file as {@link saveKeeperState} writes it (one source per line) is read line by line: a
 * keeper of 10,000 sources never holds the whole file as one string nor its parse as one tree
 * (bench/keeper-scale, issue 9). Anything else (an older keeper's file, a hand edit) is parsed
 * whole, as before.
 */
export async function loadKeeperState(path: string, now: number = Date.now()): Promise<StateLoad> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing', state: emptyStateFile() };
    throw err;
  }
  let byLine: KeeperStateFile | undefined;
  try {
    byLine = await readLineLayout(fh.readLines({ encoding: 'utf8', autoClose: false }));
  } finally {
    await fh.close().catch(() => undefined);
  }
  if (byLine) return { kind: 'loaded', state: byLine };
  const text = await readFile(path, 'utf8');
  const reason = (() => {
    try {
      const parsed = JSON.parse(text) as unknown;
      return parseStateFile(parsed);
    } catch (err) {
      return `not JSON (${(err as Error).message})`;
    }
  })();
  if (typeof reason !== 'string') return { kind: 'loaded', state: reason };
  const movedTo = `${path}.corrupt-${new Date(now).toISOString().replace(/[:.]/g, '-')}`;
  await rename(path, movedTo);
  return { kind: 'corrupt', state: emptyStateFile(), movedTo, reason };
}

/** The first line of the layout {@link saveKeeperState} writes (everything but the sources), and its last. */
const LAYOUT_HEAD = '{"version":1,';
const LAYOUT_SOURCES = ',"sources":{';
const LAYOUT_END = '}}';

/**
 * The state from a file in the one-source-per-line layout, or undefined at the first line that
 * does not fit it (the caller then parses the file whole, which also says what is wrong).
 */
async function readLineLayout(lines: AsyncIterable<string>): Promise<KeeperStateFile | undefined> {
  let head: Record<string, unknown> | undefined;
  const sources: Record<string, SourceKeeperState> = {};
  let ended = false;
  for await (const line of lines) {
    if (head === undefined) {
      if (!line.startsWith(LAYOUT_HEAD) || !line.endsWith(LAYOUT_SOURCES)) return undefined;
      const parsed = parseJson(`${line}${LAYOUT_END}`);
      if (!isObject(parsed)) return undefined;
      head = parsed;
      continue;
    }
    if (ended) {
      if (line.trim() !== '') return undefined;
      continue;
    }
    if (line === LAYOUT_END) {
      ended = true;
      continue;
    }
    const entry = parseJson(`{${line.endsWith(',') ? line.slice(0, -1) : line}}`);
    if (!isObject(entry)) return undefined;
    const keys = Object.keys(entry);
    const raw = entry[keys[0] as string];
    if (keys.length !== 1 || !isObject(raw)) return undefined;
    sources[keys[0] as string] = sanitizeSource(raw);
  }
  if (!head || !ended) return undefined;
  const state = parseStateFile({ ...head, sources: {} });
  return typeof state === 'string' ? undefined : { ...state, sources };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

/** Validates a parsed state file; returns an explanation when it is not one. */
function parseStateFile(v: unknown): KeeperStateFile | string {
  if (!isObject(v)) return 'not a JSON object';
  if (v.version !== 1) return `unknown version ${JSON.stringify(v.version)}`;
  if (!isObject(v.sources)) return '"sources" is not an object';
  const sources: Record<string, SourceKeeperState> = {};
  for (const [name, raw] of Object.entries(v.sources)) {
    if (!isObject(raw)) return `sources.${name} is not an object`;
    sources[name] = sanitizeSource(raw);
  }
  return {
    version: 1,
    savedAt: typeof v.savedAt === 'string' ? v.savedAt : new Date(0).toISOString(),
    cycles: typeof v.cycles === 'number' && v.cycles >= 0 ? v.cycles : 0,
    sources,
    activity: isObject(v.activity) ? sanitizeActivity(v.activity) : emptyActivity(),
  };
}

const STATUSES: ReadonlySet<string> = new Set(['ok', 'expiring', 'degraded', 'unreachable', 'action_required']);

/** Field by field with defaults: a file written by an older keeper still loads. */
function sanitizeSource(raw: Record<string, unknown>): SourceKeeperState {
  const d = emptySourceState();
  const str = (k: string): string | null => (typeof raw[k] === 'string' ? (raw[k] as string) : null);
  const num = (k: string, dflt: number): number => (typeof raw[k] === 'number' && Number.isFinite(raw[k]) ? (raw[k] as number) : dflt);
  const status = str('status');
  const timeline = isObject(raw.timeline) ? sanitizeTimeline(raw.timeline) : Array.isArray(raw.history) ? timelineFromHistory(raw.history as unknown[]) : emptyTimeline();
  return {
    status: status && STATUSES.has(status) ? (status as HealthStatus) : null,
    authPath: (str('authPath') as MethodName | null) ?? null,
    operatorAction: (str('operatorAction') as OperatorAction | null) ?? null,
    // Written by an older keeper, or edited by hand: read as text from elsewhere.
    fix: str('fix') === null ? null : sanitizeMessage(str('fix')!),
    message: str('message') === null ? d.message : sanitizeMessage(str('message')!),
    expiresAt: str('expiresAt'),
    lastOkAt: str('lastOkAt'),
    lastCheckedAt: str('lastCheckedAt'),
    latencyMs: typeof raw.latencyMs === 'number' ? raw.latencyMs : null,
    consecutiveFailures: num('consecutiveFailures', 0),
    failingSince: str('failingSince'),
    refreshAttempts: num('refreshAttempts', 0),
    refreshFailures: num('refreshFailures', 0),
    lastRefreshAt: str('lastRefreshAt'),
    lastRefreshOutcome: str('lastRefreshOutcome'),
    skipCycles: Math.max(0, Math.floor(num('skipCycles', 0))),
    credentialStamp: str('credentialStamp'),
    timeline,
  };
}

const isCount = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0;

/**
 * A timeline as saved, checked: gaps and latencies of the same length as the letters, either as
 * written now ({@link TimelineFileJson}: varints) or by an older keeper (arrays of numbers);
 * whole non-negative numbers (that fit the typed arrays), known letters. One that fails is
 * dropped (history only; nothing a credential depends on).
 */
function sanitizeTimeline(raw: Record<string, unknown>): Timeline {
  const { t0, dt, s, l } = raw;
  if (!isCount(t0) || typeof s !== 'string' || !/^[oedua]*$/.test(s)) return emptyTimeline();
  const n = s.length;
  let tl: Timeline;
  if (typeof dt === 'string' && typeof l === 'string') {
    // Room for the next probe from the start: a full timeline stays at TIMELINE_MAX_SAMPLES + 1
    // slots, so the first cycle after a load does not reallocate every source's arrays (10,000
    // sources: 24 MB of new arrays beside the old ones until a collection, bench/keeper-scale).
    const { dt: gaps, l: latencies } = timelineArrays(n + 1);
    if (!readVarints(dt, gaps, n, 0, 0xffffffff) || !readVarints(l, latencies, n, 1, MAX_LATENCY_MS)) return emptyTimeline();
    tl = new Timeline(t0, gaps, s, latencies);
  } else {
    if (!Array.isArray(dt) || !Array.isArray(l) || dt.length !== n || l.length !== n) return emptyTimeline();
    if (!dt.every((x) => isCount(x) && x <= 0xffffffff) || !l.every((x) => x === -1 || (isCount(x) && x <= MAX_LATENCY_MS))) return emptyTimeline();
    const { dt: gaps, l: latencies } = timelineArrays(n + 1);
    gaps.set(dt as number[]);
    latencies.set(l as number[]);
    tl = new Timeline(t0, gaps, s, latencies);
  }
  if (n > TIMELINE_MAX_SAMPLES) {
    // Cut by re-appending the tail (keeps the window rules in one place).
    const cut = emptyTimeline();
    const all = recentSamples(tl, TIMELINE_MAX_SAMPLES);
    for (const p of all) appendTimeline(cut, Date.parse(p.at), p.status, p.latencyMs);
    return cut;
  }
  return tl;
}

/**
 * A {@link Timeline} as `keeper-state.json` keeps it: the gaps and the latencies (+ 1, so "none"
 * is 0) as unsigned LEB128 varints in base64. A probe every 20 to 300 s with a latency under
 * 16 s takes 2 to 4 bytes where the arrays of numbers took ~7 characters: 10,000 sources of full
 * timelines are ~12 MB on disk instead of ~26 MB, and load as one short string each.
 */
export interface TimelineFileJson {
  t0: number;
  dt: string;
  s: string;
  l: string;
}

export function timelineForFile(tl: Timeline): TimelineFileJson {
  const n = tl.s.length;
  return { t0: tl.t0, dt: writeVarints(tl.dt, n, 0), s: tl.s, l: writeVarints(tl.l, n, 1) };
}

/** The first `n` values (each + `bias`, whole and 0 ≤ v < 2^35) as base64 LEB128 varints. */
function writeVarints(values: ArrayLike<number>, n: number, bias: number): string {
  const out = Buffer.allocUnsafe(n * 5);
  let o = 0;
  for (let i = 0; i < n; i++) {
    let v = (values[i] as number) + bias;
    while (v >= 0x80) {
      out[o++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    out[o++] = v;
  }
  return out.toString('base64', 0, o);
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/** Reads exactly `n` varints (each - `bias`, at most `max`) into `into`; false when the text is not that. */
function readVarints(text: string, into: Uint32Array | Int32Array, n: number, bias: number, max: number): boolean {
  if (!BASE64.test(text)) return false;
  const bytes = Buffer.from(text, 'base64');
  let o = 0;
  for (let i = 0; i < n; i++) {
    let v = 0;
    let scale = 1;
    let b: number;
    do {
      if (o >= bytes.length || scale > 2 ** 28) return false;
      b = bytes[o++] as number;
      v += (b & 0x7f) * scale;
      scale *= 0x80;
    } while (b & 0x80);
    if (v - bias > max) return false;
    into[i] = v - bias;
  }
  return o === bytes.length;
}

/** A state file written before the timeline (an array of `{ at, status, latencyMs }`) carries over. */
function timelineFromHistory(raw: unknown[]): Timeline {
  const tl = emptyTimeline();
  for (const h of raw) {
    if (!isObject(h) || typeof h.at !== 'string' || typeof h.status !== 'string' || !STATUSES.has(h.status)) continue;
    const at = Date.parse(h.at);
    if (Number.isNaN(at)) continue;
    appendTimeline(tl, at, h.status as HealthStatus, typeof h.latencyMs === 'number' ? h.latencyMs : null);
  }
  return tl;
}

function sanitizeActivity(raw: Record<string, unknown>): KeeperActivity {
  const hours = (Array.isArray(raw.hours) ? raw.hours : [])
    .filter((h): h is Record<string, unknown> => isObject(h) && isCount(h.hour) && isCount(h.probes) && isCount(h.refreshes) && isCount(h.refreshFailures))
    .map((h) => ({ hour: h.hour as number, probes: h.probes as number, refreshes: h.refreshes as number, refreshFailures: h.refreshFailures as number }))
    .slice(-ACTIVITY_HOURS);
  const kinds = new Set(['cycle', 'probe', 'refresh', 'config']);
  const recent = (Array.isArray(raw.recent) ? raw.recent : [])
    .filter((e): e is Record<string, unknown> => isObject(e) && typeof e.at === 'string' && typeof e.kind === 'string' && kinds.has(e.kind) && typeof e.text === 'string' && typeof e.ok === 'boolean')
    .map((e) => ({ at: e.at as string, kind: e.kind as ActivityEvent['kind'], text: e.text as string, ok: e.ok as boolean }))
    .slice(-ACTIVITY_EVENTS);
  return { hours, recent };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Pieces of about this many characters are handed to the file write. */
const WRITE_PIECE_CHARS = 64 * 1024;

/**
 * Writes the state atomically (temp file, fsync, rename, fsync dir), one source per line
 * ({@link keeperStateText}), in pieces: never the whole file as one string or buffer.
 */
export async function saveKeeperState(path: string, state: KeeperStateFile): Promise<void> {
  await writeFileAtomic(path, keeperStateText(state));
}

/**
 * `keeper-state.json` as pieces of text: one JSON document, laid out as a first line with
 * everything but the sources, then one line per source (its timeline as {@link TimelineFileJson}),
 * then `}}`. Any JSON reader reads it; {@link loadKeeperState} reads it line by line.
 */
export function* keeperStateText(state: KeeperStateFile): Generator<string> {
  const head = JSON.stringify({ version: state.version, savedAt: state.savedAt, cycles: state.cycles, activity: state.activity });
  let piece = `${head.slice(0, -1)}${LAYOUT_SOURCES}\n`;
  const names = Object.keys(state.sources);
  for (let i = 0; i < names.length; i++) {
    const name = names[i] as string;
    const s = state.sources[name] as SourceKeeperState;
    piece += `${JSON.stringify(name)}:${JSON.stringify({ ...s, timeline: timelineForFile(s.timeline) })}${i < names.length - 1 ? ',' : ''}\n`;
    if (piece.length >= WRITE_PIECE_CHARS) {
      yield piece;
      piece = '';
    }
  }
  yield `${piece}${LAYOUT_END}\n`;
}
