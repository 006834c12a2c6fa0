import type { MethodName } from '../config/constants.js';
import type { OperatorAction } from '../core/errors.js';

import type { HealthExitCode, HealthStatus } from '../core/health.js';

export type { HealthStatus } from '../core/health.js';

/** The verdict on one source from a probe (live or from the keeper's report). */
export interface ProbeResult {
  source: string;
  status: HealthStatus;
  /** The method that worked (or was tried first when none did). */
  authPath: MethodName | null;
  operatorAction: OperatorAction | null;
  /** The exact command or URL that fixes it. */
  fix: string | null;
  message: string;
  latencyMs: number | null;
  /** When the credential in use expires (ISO), if known. */
  expiresAt: string | null;
  /** When this verdict was reached (ISO). */
  checkedAt: string;
  /** HTTP status of the probe's last answer (null: no request was made, or none was answered). */
  httpStatus?: number | null;
  /**
   * Methods that did not work, in order of preference: the preferred ones passed over before
   * the auth path that worked, or every method when none did.
   */
  methodFailures?: MethodFailureSummary[];
  /** Where this verdict came from (a report mixing both says `live`). */
  from?: 'live' | 'keeper';
}

/** Why one method of a source could not be used. */
export interface MethodFailureSummary {
  method: MethodName;
  operatorAction: OperatorAction;
  reason: string;
}

/** Options of `lk.preflight`: the budget, whether to use the keeper's report, a cancel signal. */
export interface PreflightOptions {
  /** Whole pre-flight budget; a probe still running then is `unreachable` (default 3000). */
  budgetMs?: number;
  /** Use the keeper's report when it is fresh (default true). */
  useKeeperReport?: boolean;
  /** Cancels every probe still running (each becomes `unreachable`). */
  signal?: AbortSignal;
  /**
   * When the budget started, as a `performance.now()` time (default: the call). The CLI passes 0,
   * the process's start, so that `latchkey preflight --budget N` itself ends within N ms.
   */
  budgetStartedAt?: number;
}

/** Options of one live probe (`lk.probe`). */
export interface ProbeOptions {
  /** Give up after this long (default: the source's `probe.timeoutMs`, else 10 s). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The answer of `lk.preflight`: every verdict, `ok`, and the exit code (0 / 3 / 4). */
export interface PreflightReport {
  ok: boolean;
  /** 0 healthy, 3 unreachable/transient, 4 operator action required. */
  exitCode: HealthExitCode;
  results: ProbeResult[];
  /** Where the verdicts came from. */
  from: 'live' | 'keeper';
}
