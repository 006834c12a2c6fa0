import { readFile, rename } from 'node:fs/promises';
import type { HealthStatus } from '../client/probe-types.js';
import type { MethodName } from '../config/constants.js';
import type { OperatorAction } from '../errors.js';
import { writeFileAtomic } from '../store/atomic-file.js';
import { sanitizeMessage } from '../sanitize.js';
import { jsonLineBytes } from './json-bytes.js';
import { backoffCycles } from './scheduler.js';

/**
 * The keeper's "state" stage: what it knows about each source, kept across restarts in
 * `keeper-state.json` (written atomically; a reader never sees half a file). The transition
 * rules are pure functions, so "a source that keeps failing backs off" and "one alert per
 * state change" are tested without a clock, a network or a disk.
 */

/** Probes kept per source (the dashboard's history strip; ~2.5 h at the default interval). */
export const HISTORY_LIMIT = 30;

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
  history: ProbeSample[];
}

/** The verdict of one check (refresh + probe combined), ready to be applied to the state. */
export interface Verdict {
  status: HealthStatus;
  authPath: MethodName | null;
  operatorAction: OperatorAction | null;
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
    history: [],
  };
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
  const history = [...prev.history, { at: v.at, status: v.status, latencyMs: v.latencyMs }];
  if (history.length > HISTORY_LIMIT) history.splice(0, history.length - HISTORY_LIMIT);
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
    history,
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
  return { version: 1, savedAt: new Date(0).toISOString(), cycles: 0, sources: {} };
}

/**
 * Reads `keeper-state.json`. A missing file is a first start. A corrupt one (hand-edited,
 * truncated by a dying disk) is moved aside, never overwritten in place, so nothing a person
 * might want to inspect is lost; it holds no credential, so starting afresh is safe.
 */
export async function loadKeeperState(path: string, now: number = Date.now()): Promise<StateLoad> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing', state: emptyStateFile() };
    throw err;
  }
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
  };
}

const STATUSES: ReadonlySet<string> = new Set(['ok', 'expiring', 'degraded', 'unreachable', 'action_required']);

/** Field by field with defaults: a file written by an older keeper still loads. */
function sanitizeSource(raw: Record<string, unknown>): SourceKeeperState {
  const d = emptySourceState();
  const str = (k: string): string | null => (typeof raw[k] === 'string' ? (raw[k] as string) : null);
  const num = (k: string, dflt: number): number => (typeof raw[k] === 'number' && Number.isFinite(raw[k]) ? (raw[k] as number) : dflt);
  const status = str('status');
  const history = Array.isArray(raw.history) ? sanitizeHistory(raw.history as unknown[]) : [];
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
    history,
  };
}

/**
 * The last {@link HISTORY_LIMIT} valid samples. A sample that already has exactly the right
 * shape (every one the keeper wrote) is kept as parsed rather than copied: at 1,000 sources that
 * is 30,000 objects a start-up would otherwise allocate twice.
 */
function sanitizeHistory(raw: unknown[]): ProbeSample[] {
  const out: ProbeSample[] = [];
  for (let i = raw.length - 1; i >= 0 && out.length < HISTORY_LIMIT; i--) {
    const h = raw[i];
    if (!isObject(h) || typeof h.at !== 'string' || typeof h.status !== 'string' || !STATUSES.has(h.status)) continue;
    const latencyOk = typeof h.latencyMs === 'number' || h.latencyMs === null;
    let keys = 0;
    for (const k in h) if (Object.hasOwn(h, k)) keys++;
    out.push(latencyOk && keys === 3 ? (h as unknown as ProbeSample) : { at: h.at, status: h.status as HealthStatus, latencyMs: typeof h.latencyMs === 'number' ? h.latencyMs : null });
  }
  return out.reverse();
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Writes the state atomically (temp file, fsync, rename, fsync dir). */
export async function saveKeeperState(path: string, state: KeeperStateFile): Promise<void> {
  await writeFileAtomic(path, jsonLineBytes(state));
}
