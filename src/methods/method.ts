import type { ResolvedSource } from '../config/load.js';
import type { MethodName } from '../config/constants.js';
import type { OperatorAction } from '../errors.js';
import type { Latchkey } from '../latchkey.js';

/**
 * One way to authenticate to a source (DESIGN.md "Methods and the 401 path"). A source lists
 * its methods in order of preference; the first available one is the auth path in use.
 * One method per file in this folder: token.ts, oauth.ts, session.ts.
 */
export interface AuthMethod {
  readonly name: MethodName;
  /** Can this method be used right now (credential present, not revoked)? No network I/O. */
  available(): Promise<Availability>;
  /** The credentials to add to one request. */
  authorize(): Promise<PreparedAuth>;
  /**
   * The API answered 401 to a request made with `used`. Try once to obtain a different
   * credential (oauth: forced refresh under the lock; session: renewal; token: nothing).
   * Resolves true when a retry is worth making.
   */
  recover(used: PreparedAuth): Promise<boolean>;
  /** What a person must do when this method's credential is rejected even after recovery. */
  readonly rejectedAction: OperatorAction;
}

export type Availability = { ok: true } | { ok: false; reason: string; operatorAction: OperatorAction };

export interface PreparedAuth {
  /** Headers to set on the request (Authorization, Cookie, a CSRF header…). */
  headers: Record<string, string>;
  /** Opaque identity of the credential used (compared by recover(); never printed). */
  credential: string;
}

export interface MethodContext {
  lk: Latchkey;
  source: ResolvedSource;
}

export type MethodFactory = (ctx: MethodContext) => AuthMethod;
