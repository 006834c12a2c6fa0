import type { ResolvedSource } from '../config/load.js';
import type { MethodName } from '../config/constants.js';
import { LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { CoreContext } from '../context.js';

/**
 * One way to authenticate to a source (DESIGN.md "Methods and the 401 path"). A source lists
 * its methods in order of preference; the first available one is the auth path in use.
 * One method per file in this folder: token.ts, oauth.ts, session.ts; index.ts registers them.
 *
 * Errors: any call may throw a `LatchkeyError` whose `operatorAction` says what a person must
 * do (`relogin`, `reauthorize`, `renew_session`, `replace_token`). The client treats such an
 * error from `authorize()` as "this method is unavailable right now" and moves on to the next
 * method; from `recover()` it means "recovery failed for good" and its action is the one
 * reported. Errors without an operator action (a corrupt store, a bug) propagate as they are.
 */
export interface AuthMethod {
  readonly name: MethodName;
  /** Can this method be used right now (credential present, not revoked)? No network I/O. */
  available(): Promise<Availability>;
  /**
   * The credentials to add to one request. `request` names the destination, so a method can
   * refuse to attach credentials to a URL they do not belong to (session cookies are scoped
   * to the session's origin). May do network I/O (an OAuth refresh that is due).
   */
  authorize(request?: AuthRequest): Promise<PreparedAuth>;
  /**
   * The API answered 401 to a request made with `used`. Try once to obtain a different
   * credential (oauth: forced refresh under the lock; session: renewal; token: re-read the
   * secret reference, in case the operator replaced it). Resolves true when the next
   * `authorize()` returns a credential different from `used`. `request` is the request that
   * was rejected (its signal bounds the wait, as for `authorize`).
   */
  recover(used: PreparedAuth, request?: AuthRequest): Promise<boolean>;
  /** What a person must do when this method's credential is rejected even after recovery. */
  readonly rejectedAction: OperatorAction;
  /**
   * When the credential in use expires and whether that is soon enough to warn about it
   * (health `expiring`). No network I/O. Optional: a method without it never reports `expiring`.
   */
  expiry?(): Promise<CredentialExpiry>;
  /**
   * The exact command or URL that resolves `action` for this method, when the method knows
   * better than the generic `fixFor()` (the token's reference, the session's login URL).
   */
  fixFor?(action: OperatorAction): string | undefined;
}

/**
 * Thrown by `authorize(request)` when the method's credential does not belong to the request's
 * URL (session cookies asked to go to another site). Not a failure of the method: the client
 * passes over it for this request and uses the next method, so a source whose methods live on
 * different hosts (HubSpot: a bearer token for api.hubapi.com, the browser session for
 * app.hubspot.com) gets the verdict of the method that does apply. When no method applies the
 * caller sees this error (a usage error: wrong URL for this source).
 */
export class WrongDestinationError extends LatchkeyError {
  readonly method: MethodName;

  constructor(method: MethodName, message: string, source: string) {
    super('LK_USAGE', message, { source });
    this.name = 'WrongDestinationError';
    this.method = method;
  }
}

export type Availability = { ok: true } | { ok: false; reason: string; operatorAction: OperatorAction };

/** The request a credential is about to be attached to. */
export interface AuthRequest {
  url: URL;
  method: string;
  /**
   * The caller's signal (a pre-flight's budget, a fetch's timeout). A method that does slow
   * work to obtain a credential (the session's DevTools visit) stops waiting when it aborts,
   * and stops the work itself once every caller sharing it has given up, so nothing it
   * started outlives the caller (a CLI process exits as soon as it has answered).
   */
  signal?: AbortSignal;
}

export interface PreparedAuth {
  /** Headers to set on the request (Authorization, Cookie, a CSRF header…). */
  headers: Record<string, string>;
  /** Opaque identity of the credential used (compared by recover(); never printed). */
  credential: string;
}

export interface CredentialExpiry {
  /** Epoch ms; null when unknown or the credential does not expire. */
  expiresAt: number | null;
  /** True when the credential will stop working soon and cannot renew itself. */
  expiringSoon: boolean;
  /** Why it is expiring ("the token expires within 7 days"). */
  note?: string;
  /** What a person should do before it expires (`replace_token`, `relogin`). */
  operatorAction?: OperatorAction;
}

/** What a method is built from: the library's core (a `Latchkey` is one) and its source's config. */
export interface MethodContext {
  lk: CoreContext;
  source: ResolvedSource;
}

export type MethodFactory = (ctx: MethodContext) => AuthMethod;
