import type { MethodName } from '../config/constants.js';
import { ExitCode, type OperatorAction } from '../core/errors.js';
import { exitCodeForStatuses, isHealthStatus, isHealthy, isReportFresh, readReportEnvelope, reportEntryProblem, type HealthExitCode } from '../core/health.js';
import type { PreflightReport, ProbeResult } from './probe-types.js';

export { DEFAULT_KEEPER_INTERVAL_S, isHealthy } from '../core/health.js';

/**
 * The keeper's report as pre-flight reads it (`health.json`), and the cached answer built from
 * it: pure functions (no I/O), shared by `lk.preflight`, `latchkey preflight` and the CLI's
 * synchronous fast path (src/cli/fast-path.ts), so all three answer alike.
 */

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
 * at `now`. Undefined when it is unparsable or stale (src/core/health.ts `isReportFresh`: older than
 * 2 × `intervalSeconds`, default 300 s, or more than a minute in the future).
 */
export function parseKeeperReport(text: string, now: number): KeeperReport | undefined {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  return keeperReportOf(json, now);
}

/** {@link parseKeeperReport} of a report already parsed (the state a fleet's leader published). */
export function keeperReportOf(json: unknown, now: number): KeeperReport | undefined {
  const envelope = readReportEnvelope(json);
  if ('problem' in envelope) return undefined;
  const { generatedAt, intervalSeconds } = envelope;
  if (!isReportFresh(generatedAt, intervalSeconds, now)) return undefined;
  const generatedIso = new Date(generatedAt).toISOString();
  const sources = new Map<string, ProbeResult>();
  for (const [name, entry] of Object.entries(envelope.sources)) {
    const result = keeperEntry(name, entry, generatedIso);
    if (result) sources.set(name, result);
  }
  return { generatedAt, intervalSeconds, sources };
}

function keeperEntry(name: string, e: unknown, generatedIso: string): ProbeResult | undefined {
  if (reportEntryProblem(name, e) !== undefined || !isRecord(e) || !isHealthStatus(e.status)) return undefined;
  const authPath = typeof e.authPath === 'string' && METHOD_NAMES.has(e.authPath) ? (e.authPath as MethodName) : null;
  const operatorAction = typeof e.operatorAction === 'string' && OPERATOR_ACTIONS.has(e.operatorAction) ? (e.operatorAction as OperatorAction) : null;
  return {
    source: name,
    status: e.status,
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

/** 4 when any source needs a person, else 3 when any is unreachable or degraded, else 0 (src/core/health.ts). */
export function exitCodeFor(results: readonly ProbeResult[]): HealthExitCode {
  return exitCodeForStatuses(results.map((r) => r.status));
}

export function reportOf(results: ProbeResult[]): PreflightReport {
  const exitCode = exitCodeFor(results);
  return { ok: exitCode === ExitCode.ok, exitCode, results, from: results.length > 0 && results.every((r) => r.from === 'keeper') ? 'keeper' : 'live' };
}

