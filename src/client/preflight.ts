import { readFile } from 'node:fs/promises';
import { fixFor, LatchkeyError, type OperatorAction } from '../core/errors.js';
import { sourceAwareFix } from '../config/source-fix.js';
import type { Clock } from '../core/clock.js';
import type { Config, ResolvedSource } from '../config/load.js';
import type { Store } from '../store/store.js';
import { isHealthy, keeperReportOf, parseKeeperReport, reportOf, type KeeperReport } from './keeper-report.js';
import type { PreflightOptions, PreflightReport, ProbeOptions, ProbeResult } from './probe-types.js';

export { cachedVerdicts, DEFAULT_KEEPER_INTERVAL_S, exitCodeFor, isHealthy, parseKeeperReport, reportOf, type KeeperReport } from './keeper-report.js';

/**
 * Pre-flight: "can I call these sources?", answered within a budget (DESIGN.md "Health, exit
 * codes"). This module is what `latchkey preflight` loads first, so it imports nothing heavy:
 * answering from the keeper's `health.json` touches no config validator, no OAuth library and
 * no browser driver. The live path is reached through the {@link PreflightContext} (the Latchkey instance).
 */

export const DEFAULT_BUDGET_MS = 3000;

/**
 * What pre-flight needs of the library (a `Latchkey` is one): the configured sources, where the
 * keeper's report lives, the clock, and one live probe per source.
 */
export interface PreflightContext {
  readonly config: Pick<Config, 'sources' | 'file'>;
  readonly paths: { readonly health: string };
  readonly clock: Clock;
  source(name: string): ResolvedSource;
  probe(name: string, options: ProbeOptions): Promise<ProbeResult>;
  /** The store, for the report a fleet's leading keeper publishes to it (a shared store only). */
  readonly store?: Pick<Store, 'sharedKeeperState'>;
}
/** Grace after the budget for the bookkeeping of a probe that was cut off. */
const GUARD_GRACE_MS = 20;

/**
 * Reads `<LATCHKEY_HOME>/health.json` (written atomically by the keeper). Undefined when it is
 * missing, unparsable, or stale (see parseKeeperReport).
 */
export async function readKeeperReport(file: string, now: number): Promise<KeeperReport | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  return parseKeeperReport(text, now);
}

/**
 * The keeper's report as this machine can know it: its own `health.json`, or, on a shared store
 * (fleet mode) where this machine's keeper stands by or none runs, the report the leading keeper
 * published to the store. Either is used only when fresh (parseKeeperReport's rules); an
 * unreadable shared state is no report (the sources are probed live).
 */
export async function readFleetKeeperReport(lk: Pick<PreflightContext, 'paths' | 'clock' | 'store'>): Promise<KeeperReport | undefined> {
  const local = await readKeeperReport(lk.paths.health, lk.clock.now());
  const board = local === undefined ? lk.store?.sharedKeeperState?.() : undefined;
  if (board === undefined) return local;
  const snap = await board.read().catch(() => undefined);
  return snap === undefined ? undefined : keeperReportOf({ ...snap.report, sources: snap.sources }, lk.clock.now());
}

/**
 * `lk.preflight(sources, { budgetMs })`: every source's verdict within the budget. Fresh,
 * healthy verdicts of the keeper are used as they are (unless `useKeeperReport: false`); every
 * other source is probed live, all in parallel, each bounded by what is left of the budget. A
 * probe still running when the budget is spent is `unreachable` ("no answer within N ms").
 * With no sources named, every configured source is checked.
 */
export async function preflight(lk: PreflightContext, sources: readonly string[], options: PreflightOptions = {}): Promise<PreflightReport> {
  const budgetMs = options.budgetMs ?? DEFAULT_BUDGET_MS;
  if (typeof budgetMs !== 'number' || !Number.isFinite(budgetMs) || budgetMs <= 0) {
    throw new LatchkeyError('LK_USAGE', `preflight budget must be a positive number of milliseconds (got ${String(budgetMs)})`);
  }
  const startedAt = options.budgetStartedAt;
  if (startedAt !== undefined && (typeof startedAt !== 'number' || !Number.isFinite(startedAt))) {
    throw new LatchkeyError('LK_USAGE', `preflight budgetStartedAt must be a performance.now() time (got ${String(startedAt)})`);
  }
  // A start in the future would lengthen the budget: never later than now.
  const started = Math.min(startedAt ?? performance.now(), performance.now());
  const names = sources.length > 0 ? [...new Set(sources)] : [...lk.config.sources.keys()];
  for (const name of names) lk.source(name); // unknown names are a usage error, before any probe
  const cached = new Map<string, ProbeResult>();
  if (options.useKeeperReport !== false) {
    const report = await readFleetKeeperReport(lk);
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

async function probeAll(lk: PreflightContext, names: string[], remainingMs: number, budgetMs: number, signal: AbortSignal | undefined): Promise<Map<string, ProbeResult>> {
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

function outOfBudget(lk: PreflightContext, name: string, budgetMs: number): ProbeResult {
  return {
    source: name,
    status: 'unreachable',
    authPath: lk.source(name).methods[0] ?? null,
    operatorAction: 'check_network',
    fix: fixFor(name, 'check_network'),
    message: `${name}: no answer within ${budgetMs} ms`,
    latencyMs: budgetMs,
    expiresAt: null,
    checkedAt: new Date(lk.clock.now()).toISOString(),
    from: 'live',
  };
}

/** A probe that threw instead of answering (a config or store error): the source needs a person. */
function failedProbe(lk: PreflightContext, name: string, err: unknown): ProbeResult {
  const e = err as { message?: string; operatorAction?: OperatorAction; fix?: string };
  return {
    source: name,
    status: 'action_required',
    authPath: lk.source(name).methods[0] ?? null,
    operatorAction: e.operatorAction ?? 'fix_config',
    fix: sourceAwareFix(name, lk.source(name), e.operatorAction ?? 'fix_config', e.fix, lk.config.file),
    message: e.message ?? String(err),
    latencyMs: null,
    expiresAt: null,
    checkedAt: new Date(lk.clock.now()).toISOString(),
    from: 'live',
  };
}
