import { readFile } from 'node:fs/promises';
import type { MethodName } from '../config/constants.js';
import { LatchkeyError, type OperatorAction } from '../errors.js';
import type { Latchkey } from '../latchkey.js';
import type { HealthStatus, PreflightOptions, PreflightReport, ProbeResult } from './probe-types.js';

/**
 * Pre-flight: "can I call these sources?", answered within a budget (DESIGN.md "Health, exit
 * codes"). This module is what `latchkey preflight` loads first, so it imports nothing heavy:
 * answering from the keeper's `health.json` touches no config validator, no OAuth library and
 * no browser driver. The live path is reached through the Latchkey instance.
 */

export const DEFAULT_BUDGET_MS = 3000;
/** The keeper's probe interval when its report does not say (seconds). */
export const DEFAULT_KEEPER_INTERVAL_S = 300;
/** A report is fresh while it is younger than this many intervals. */
const FRESH_INTERVALS = 2;
/** A report "from the future" by more than this is not trusted (clock skew, garbage). */
const FUTURE_TOLERANCE_MS = 60_000;
/** Grace after the budget for the bookkeeping of a probe that was cut off. */
const GUARD_GRACE_MS = 20;

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
 * Reads `<LATCHKEY_HOME>/health.json` (written atomically by the keeper). Undefined when it is
 * missing, unparsable, or stale: `generatedAt` older than 2 × `intervalSeconds` (default 300 s).
 */
export async function readKeeperReport(file: string, now: number): Promise<KeeperReport | undefined> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
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

/**
 * `lk.preflight(sources, { budgetMs })`: every source's verdict within the budget. Fresh,
 * healthy verdicts of the keeper are used as they are (unless `useKeeperReport: false`); every
 * other source is probed live, all in parallel, each bounded by what is left of the budget. A
 * probe still running when the budget is spent is `unreachable` ("no answer within N ms").
 * With no sources named, every configured source is checked.
 */
export async function preflight(lk: Latchkey, sources: readonly string[], options: PreflightOptions = {}): Promise<PreflightReport> {
  const started = performance.now();
  const budgetMs = options.budgetMs ?? DEFAULT_BUDGET_MS;
  if (typeof budgetMs !== 'number' || !Number.isFinite(budgetMs) || budgetMs <= 0) {
    throw new LatchkeyError('LK_USAGE', `preflight budget must be a positive number of milliseconds (got ${String(budgetMs)})`);
  }
  const names = sources.length > 0 ? [...new Set(sources)] : [...lk.config.sources.keys()];
  for (const name of names) lk.source(name); // unknown names are a usage error, before any probe
  const cached = new Map<string, ProbeResult>();
  if (options.useKeeperReport !== false) {
    const report = await readKeeperReport(lk.paths.health, lk.clock.now());
    for (const name of names) {
      const r = report?.sources.get(name);
      if (r && isHealthy(r.status)) cached.set(name, r);
    }
  }
  const live = names.filter((n) => !cached.has(n));
  const remaining = budgetMs - (performance.now() - started);
  const probed = live.length > 0 ? await probeAll(lk, live, Math.max(1, remaining), budgetMs, options.signal) : new Map<string, ProbeResult>();
  return reportOf(names.map((n) => cached.get(n) ?? probed.get(n)!));
}

async function probeAll(lk: Latchkey, names: string[], remainingMs: number, budgetMs: number, signal: AbortSignal | undefined): Promise<Map<string, ProbeResult>> {
  const controller = new AbortController();
  const budgetSpent = (): DOMException => new DOMException(`no answer within ${budgetMs} ms`, 'TimeoutError');
  const onCallerAbort = (): void => controller.abort(signal?.reason);
  if (signal?.aborted) controller.abort(signal.reason);
  signal?.addEventListener('abort', onCallerAbort, { once: true });
  const timer = setTimeout(() => controller.abort(budgetSpent()), remainingMs);
  let guardTimer: NodeJS.Timeout | undefined;
  // Belt and braces: whatever a probe is stuck in, its verdict is in by the deadline.
  const guard = new Promise<'budget'>((resolve) => {
    guardTimer = setTimeout(() => resolve('budget'), remainingMs + GUARD_GRACE_MS);
  });
  try {
    const results = await Promise.all(
      names.map(async (name): Promise<[string, ProbeResult]> => {
        const timeoutMs = Math.min(budgetMs, lk.source(name).probe?.timeoutMs ?? Number.POSITIVE_INFINITY);
        const probe = lk.probe(name, { timeoutMs, signal: controller.signal }).catch((err: unknown) => failedProbe(lk, name, err));
        const r = await Promise.race([probe, guard]);
        return [name, r === 'budget' ? outOfBudget(lk, name, budgetMs) : r];
      }),
    );
    return new Map(results);
  } finally {
    clearTimeout(timer);
    clearTimeout(guardTimer);
    signal?.removeEventListener('abort', onCallerAbort);
    // Close whatever is still open (a stalled upstream's socket).
    controller.abort(budgetSpent());
  }
}

function outOfBudget(lk: Latchkey, name: string, budgetMs: number): ProbeResult {
  return {
    source: name,
    status: 'unreachable',
    authPath: lk.source(name).methods[0] ?? null,
    operatorAction: 'check_network',
    fix: `check the network path to ${name}, then run \`latchkey preflight ${name}\``,
    message: `${name}: no answer within ${budgetMs} ms`,
    latencyMs: budgetMs,
    expiresAt: null,
    checkedAt: new Date(lk.clock.now()).toISOString(),
    from: 'live',
  };
}

/** A probe that threw instead of answering (a config or store error): the source needs a person. */
function failedProbe(lk: Latchkey, name: string, err: unknown): ProbeResult {
  const e = err as { message?: string; operatorAction?: OperatorAction; fix?: string };
  return {
    source: name,
    status: 'action_required',
    authPath: lk.source(name).methods[0] ?? null,
    operatorAction: e.operatorAction ?? 'fix_config',
    fix: e.fix ?? null,
    message: e.message ?? String(err),
    latencyMs: null,
    expiresAt: null,
    checkedAt: new Date(lk.clock.now()).toISOString(),
    from: 'live',
  };
}
