import { LatchkeyError } from '../core/errors.js';
import type { Consumption, RefreshFailureKind, TokenAnswerClass } from './token-answer.js';

export type { RefreshFailureKind } from './token-answer.js';

/** What the token endpoint's answer said beyond the kind (see src/oauth/token-answer.ts). */
export interface RefreshErrorDetails {
  answer?: TokenAnswerClass;
  /** Whether the refresh token sent may have been consumed by the IdP. */
  consumed?: Consumption;
  /** Retry-After, in ms (already bounded). */
  retryAfterMs?: number;
}

export class RefreshError extends LatchkeyError {
  readonly kind: RefreshFailureKind;
  readonly answer: TokenAnswerClass | undefined;
  readonly consumed: Consumption;
  readonly retryAfterMs: number | undefined;
  constructor(kind: RefreshFailureKind, message: string, cause?: unknown, details: RefreshErrorDetails = {}) {
    super(kind === 'transient' ? 'LK_TOKEN_ENDPOINT' : 'LK_REFRESH_FAILED', message, { cause });
    this.kind = kind;
    this.answer = details.answer;
    // Unknown = may have been: the rule that protects the grant errs on this side.
    this.consumed = details.consumed ?? (kind === 'transient' ? 'maybe' : 'no');
    this.retryAfterMs = details.retryAfterMs;
  }
}

export const DEFAULT_TOKEN_TIMEOUT_MS = 15_000;
