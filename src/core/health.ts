import { ExitCode } from './errors.js';

/**
 * The health vocabulary every reader and writer of a verdict shares (the keeper's report,
 * pre-flight, `latchkey health`, metrics, alerts): the statuses, which of them are healthy, the
 * exit code of a set of them, and when a keeper report is still fresh. Written once here so the
 * keeper and its readers can never disagree (docs/DESIGN.md "Layout and rules").
 */

/** Every health status, best first (DESIGN.md "Words"). */
export const HEALTH_STATUSES = ['ok', 'expiring', 'degraded', 'unreachable', 'action_required'] as const;

/** Health of a source. */
export type HealthStatus = (typeof HEALTH_STATUSES)[number];

const STATUS_SET: ReadonlySet<string> = new Set(HEALTH_STATUSES);

/** Whether a value read from a file or a wire is a health status. */
export function isHealthStatus(v: unknown): v is HealthStatus {
  return typeof v === 'string' && STATUS_SET.has(v);
}

/**
 * `ok` and `expiring` are healthy: the credential works. Everything else counts as a failure,
 * and a cached failure is re-checked live (the operator may just have fixed it).
 */
export function isHealthy(status: HealthStatus | null): boolean {
  return status === 'ok' || status === 'expiring';
}

/** The exit codes a health verdict maps to (never 1: a usage error is not a verdict). */
export type HealthExitCode = typeof ExitCode.ok | typeof ExitCode.unreachable | typeof ExitCode.actionRequired;

/** The CLI exit code for a set of statuses: 4 when any needs a person, else 3 when any is unreachable or degraded, else 0. */
export function exitCodeForStatuses(statuses: Iterable<HealthStatus>): HealthExitCode {
  let code: HealthExitCode = ExitCode.ok;
  for (const s of statuses) {
    if (s === 'action_required') return ExitCode.actionRequired;
    if (s === 'unreachable' || s === 'degraded') code = ExitCode.unreachable;
  }
  return code;
}

/** The keeper's probe interval when its report does not say (seconds). */
export const DEFAULT_KEEPER_INTERVAL_S = 300;
/**
 * A keeper report is fresh while it is at most this many intervals old: the keeper rewrites it
 * every cycle, so one late or slow cycle is tolerated and a second one is not. The one rule for
 * pre-flight (whether to trust a cached verdict) and `latchkey health` (whether to warn that
 * the table is stale); they used to say 2 and 2.5, so a report could be shown as current while
 * pre-flight ignored it.
 */
export const REPORT_FRESH_INTERVALS = 2;
/** A report "from the future" by more than this is not trusted (clock skew, garbage). */
export const REPORT_FUTURE_TOLERANCE_MS = 60_000;

/** Whether a keeper report generated at `generatedAt` (epoch ms) with `intervalSeconds` is still fresh at `now`. */
export function isReportFresh(generatedAt: number, intervalSeconds: number, now: number): boolean {
  const age = now - generatedAt;
  return age <= REPORT_FRESH_INTERVALS * intervalSeconds * 1000 && age >= -REPORT_FUTURE_TOLERANCE_MS;
}

/**
 * The envelope of `health.json` / `GET /api/health` (`generatedAt`, `intervalSeconds`,
 * `sources`), read the same way by every reader: the strict one of `latchkey health` (a problem
 * is an error naming the field) and the lenient one of pre-flight (a problem means "no cached
 * answer", and the sources are probed live). `generatedAt` is written as an ISO 8601 date;
 * epoch milliseconds are read too.
 */
export interface ReportEnvelope {
  /** Epoch ms. */
  generatedAt: number;
  /** The keeper's interval (default {@link DEFAULT_KEEPER_INTERVAL_S} when absent or not positive). */
  intervalSeconds: number;
  /** The per-source entries, not yet checked (see {@link reportEntryProblem}). */
  sources: Record<string, unknown>;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The envelope of a parsed report, or what is wrong with it (naming the field, never quoting values). */
export function readReportEnvelope(v: unknown): ReportEnvelope | { problem: string } {
  if (!isObject(v)) return { problem: 'not a JSON object' };
  const generatedAt = typeof v.generatedAt === 'number' ? v.generatedAt : typeof v.generatedAt === 'string' ? Date.parse(v.generatedAt) : Number.NaN;
  if (!Number.isFinite(generatedAt)) return { problem: '"generatedAt" is not a timestamp' };
  if (!isObject(v.sources)) return { problem: '"sources" is not an object' };
  const intervalSeconds = typeof v.intervalSeconds === 'number' && v.intervalSeconds > 0 ? v.intervalSeconds : DEFAULT_KEEPER_INTERVAL_S;
  return { generatedAt, intervalSeconds, sources: v.sources };
}

/** What is wrong with one source's entry (its name in the message), or undefined when it is usable. */
export function reportEntryProblem(name: string, e: unknown): string | undefined {
  if (!isObject(e)) return `sources.${name} is not an object`;
  if (!isHealthStatus(e.status)) return `sources.${name}.status is not a health status`;
  if (e.history !== undefined && !Array.isArray(e.history)) return `sources.${name}.history is not an array`;
  return undefined;
}
