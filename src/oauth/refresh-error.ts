import { LatchkeyError } from '../errors.js';

/** How a refresh failed, which decides what the engine does next. */
export type RefreshFailureKind = 'invalid_grant' | 'transient' | 'rejected';

export class RefreshError extends LatchkeyError {
  readonly kind: RefreshFailureKind;
  constructor(kind: RefreshFailureKind, message: string, cause?: unknown) {
    super(kind === 'transient' ? 'LK_TOKEN_ENDPOINT' : 'LK_REFRESH_FAILED', message, { cause });
    this.kind = kind;
  }
}

export const DEFAULT_TOKEN_TIMEOUT_MS = 15_000;
