import type { MethodName } from '../config/constants.js';
import type { OperatorAction } from '../errors.js';
import type { HealthStatus, PreflightReport, ProbeResult } from './probe-types.js';

/**
 * The keeper's report as pre-flight reads it (`health.json`), and the cached answer built from
 * it: pure functions (no I/O), shared by `lk.preflight`, `latchkey preflight` and the CLI's
 * synchronous fast path (src/cli/fast-path.ts), so all three answer alike.
 */

/** The keeper's probe interval when its report does not say (seconds). */
export const DEFAULT_KEEPER_INTERVAL_S = 300;
/** A report is fresh while it is younger than this many intervals. */
const FRESH_INTERVALS = 2;
/** A report "from the future" by more than this is not trusted (clock skew, garbage). */
const FUTURE_TOLERANCE_MS = 60_000;

const HEALTH_STATUSES: ReadonlySet<string> = new Set<HealthStatus>(['ok', 'expiring', 'degraded', 'unreachable', 'action_required']);
const METHOD_NAMES: ReadonlySet<string> = new Set<MethodName>(['token', 'oauth', 'session']);
const OPERATOR_ACTIONS: ReadonlySet<string> = new Set<OperatorAction>(['relogin', 'reauthorize', 'renew_session', 'replace_token', 'check_network', 'fix_config']);

/** The keeper's verdicts, when its report is fresh. */
export interface KeeperReport {
  generatedAt: number;
  intervalSeconds: number;
  /** Entries that parsed; a malformed entry is left out (and that source is probed live). */
  sources: Map<string, ProbeResult>;
}

/**
 * Parses the text of `<LATCHKEY_HOME>/health.json` (written atomically by the keeper) as seen
 * at `now`. Undefined when it is unparsable or stale: `generatedAt` older than 2 ×
 * `intervalSeconds` (default 300 s), or more than a minute in the future.
 */
export function parseKeeperReport(text: string, now: number): KeeperReport | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (!isRecord(json) || !isRecord(json.sources)) return undefined;
  const generatedAt = typeof json.generatedAt === 'number' ? json.generatedAt : typeof json.generatedAt === 'string' ? Date.parse(json.generatedAt) : Number.NaN;
  if (!Number.isFinite(generatedAt)) return undefined;
  const intervalSeconds = typeof json.intervalSeconds === 'number' && json.intervalSeconds > 0 ? json.intervalSeconds : DEFAULT_KEEPER_INTERVAL_S;
  const age = now - generatedAt;
  if (age > FRESH_INTERVALS * intervalSeconds * 1000 || age < -FUTURE_TOLERANCE_MS) return undefined;
  const generatedIso = new Date(generatedAt).toISOString();
  const sources = new Map<string, ProbeResult>();
  for (const [name, entry] of Object.entries(json.sources)) {
    const result = keeperEntry(name, entry, generatedIso);
    if (result) sources.set(name, result);
  }
  return { generatedAt, intervalSeconds, sources };
}

function keeperEntry(name: string, e: unknown, generatedIso: string): ProbeResult | undefined {
  if (!isRecord(e) || typeof e.status !== 'string' || !HEALTH_STATUSES.has(e.status)) return undefined;
  const authPath = typeof e.authPath === 'string' && METHOD_NAMES.has(e.authPath) ? (e.authPath as MethodName) : null;
  const operatorAction = typeof e.operatorAction === 'string' && OPERATOR_ACTIONS.has(e.operatorAction) ? (e.operatorAction as OperatorAction) : null;
  return {
    source: name,
    status: e.status as HealthStatus,
    authPath,
    operatorAction,
    fix: typeof e.fix === 'string' ? e.fix : null,
    message: typeof e.message === 'string' ? e.message : '',
    latencyMs: typeof e.latencyMs === 'number' && Number.isFinite(e.latencyMs) ? e.latencyMs : null,
    expiresAt: typeof e.expiresAt === 'string' ? e.expiresAt : null,
    checkedAt: typeof e.checkedAt === 'string' ? e.checkedAt : generatedIso,
    from: 'keeper',
  };
}

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** Healthy enough to trust a cached verdict: a cached failure is re-checked live (the operator may just have fixed it). */
export function isHealthy(status: HealthStatus): boolean {
  return status === 'ok' || status === 'expiring';
}

/**
 * The keeper's verdicts for every requested source, or undefined when the report lacks one or
 * holds a failure (which pre-flight re-checks live).
 */
export function cachedVerdicts(report: KeeperReport | undefined, sources: readonly string[]): ProbeResult[] | undefined {
  if (!report || sources.length === 0) return undefined;
  const out: ProbeResult[] = [];
  for (const s of sources) {
    const r = report.sources.get(s);
    if (!r || !isHealthy(r.status)) return undefined;
    out.push(r);
  }
  return out;
}

/** 4 when any source needs a person, else 3 when any is unreachable or degraded, else 0. */
export function exitCodeFor(results: readonly ProbeResult[]): 0 | 3 | 4 {
  let code: 0 | 3 | 4 = 0;
  for (const r of results) {
    if (r.status === 'action_required') return 4;
    if (r.status === 'unreachable' || r.status === 'degraded') code = 3;
  }
  return code;
}

export function reportOf(results: ProbeResult[]): PreflightReport {
  const exitCode = exitCodeFor(results);
  return { ok: exitCode === 0, exitCode, results, from: results.length > 0 && results.every((r) => r.from === 'keeper') ? 'keeper' : 'live' };
}

