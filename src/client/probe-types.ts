import type { MethodName } from '../config/constants.js';
import type { OperatorAction } from '../errors.js';

/** Health of a source (DESIGN.md "Words"). */
export type HealthStatus = 'ok' | 'expiring' | 'degraded' | 'unreachable' | 'action_required';

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
}

export interface PreflightOptions {
  /** Whole pre-flight budget; a probe still running then is `unreachable` (default 3000). */
  budgetMs?: number;
  /** Use the keeper's report when it is fresh (default true). */
  useKeeperReport?: boolean;
}

export interface PreflightReport {
  ok: boolean;
  /** 0 healthy, 3 unreachable/transient, 4 operator action required. */
  exitCode: 0 | 3 | 4;
  results: ProbeResult[];
  /** Where the verdicts came from. */
  from: 'live' | 'keeper';
}
