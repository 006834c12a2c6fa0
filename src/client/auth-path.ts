import type { Clock } from '../core/clock.js';
import type { MethodName } from '../config/constants.js';
import { ExitCode, LatchkeyError, fixFor, type OperatorAction } from '../core/errors.js';
import { WrongDestinationError, type AuthMethod, type AuthRequest, type PreparedAuth } from '../methods/method.js';

/**
 * After the API rejected a method's credential (401 even after recovery), later requests use
 * the next usable method instead for this long, as long as the rejected method still offers
 * the same credential (with nothing else usable, it is still used: held back, not disabled).
 * The preferred method is tried again when the hold ends or as soon as its credential changes
 * (a new token, a new login): no sticky fallback.
 */
export const REJECTION_HOLD_MS = 60_000;

/** A method that could not be used, and why. */
export interface MethodFailure {
  method: MethodName;
  reason: string;
  operatorAction: OperatorAction;
  /** The error that said so, when there was one. */
  error?: LatchkeyError;
}

/** A method ready to go: its position in the preference order and its credentials. */
export interface Prepared {
  index: number;
  method: AuthMethod;
  auth: PreparedAuth;
  /** Methods before it that were passed over. */
  skipped: MethodFailure[];
}

interface Rejection {
  credential: string;
  until: number;
  reason: string;
}

/**
 * The methods of one source in order of preference, and the choice among them: the auth path
 * in use is the first method that is available and whose credential was not just rejected.
 * One instance per source per Latchkey; it remembers rejections in memory only.
 */
export class SourceAuth {
  readonly source: string;
  readonly methods: readonly AuthMethod[];
  readonly #clock: Clock;
  readonly #rejected: (Rejection | undefined)[];

  constructor(source: string, methods: readonly AuthMethod[], clock: Clock) {
    this.source = source;
    this.methods = methods;
    this.#clock = clock;
    this.#rejected = methods.map(() => undefined);
  }

  /**
   * The first method (from `from` on) that yields credentials for `request`; methods whose
   * credential is missing or revoked are skipped, and one whose credential was just rejected
   * is used only when nothing else is (held back, not disabled). A method whose credential
   * does not belong to the request's URL (session cookies and another host) is passed over
   * without counting as a problem. Throws a typed error naming every method's problem when
   * none is usable, or the {@link WrongDestinationError} when no method applies to the URL.
   */
  async prepare(request: AuthRequest, from = 0, options: { honourRejections?: boolean; only?: number } = {}): Promise<Prepared> {
    const skipped: MethodFailure[] = [];
    const notHere: WrongDestinationError[] = [];
    let heldBack: Prepared | undefined;
    const last = options.only ?? this.methods.length - 1;
    for (let i = options.only ?? from; i <= last; i++) {
      const method = this.methods[i]!;
      let auth: PreparedAuth;
      try {
        auth = await method.authorize(request);
      } catch (err) {
        if (err instanceof WrongDestinationError) {
          notHere.push(err);
          continue;
        }
        const failure = asMethodFailure(method, err);
        if (!failure) throw err;
        skipped.push(failure);
        continue;
      }
      const held = this.#rejected[i];
      if (held !== undefined) {
        if (held.credential === auth.credential && this.#clock.now() < held.until) {
          if (options.honourRejections !== false) {
            heldBack ??= { index: i, method, auth, skipped: [...skipped] };
            skipped.push({ method: method.name, reason: held.reason, operatorAction: method.rejectedAction });
            continue;
          }
        } else {
          this.#rejected[i] = undefined;
        }
      }
      return { index: i, method, auth, skipped };
    }
    if (heldBack) return heldBack;
    if (skipped.length === 0 && notHere[0]) throw notHere[0];
    throw noUsableMethod(this.source, skipped, this.methods, notHere);
  }

  /** Remembers that the API rejected `credential` of the method at `index`. */
  markRejected(index: number, credential: string, reason: string): void {
    this.#rejected[index] = { credential, until: this.#clock.now() + REJECTION_HOLD_MS, reason };
  }

  /** Forgets a rejection (the method's credential was just accepted). */
  clearRejected(index: number): void {
    this.#rejected[index] = undefined;
  }

  /** True while the method at `index` is held back after a rejection (whatever its credential now). */
  isHeld(index: number): boolean {
    const held = this.#rejected[index];
    return held !== undefined && this.#clock.now() < held.until;
  }

  /**
   * The auth path in use, without network I/O: the first available method that is not held
   * back after a rejection, else the first available one; null when none is available.
   */
  async current(): Promise<MethodName | null> {
    let heldBack: MethodName | null = null;
    for (let i = 0; i < this.methods.length; i++) {
      if (!(await this.methods[i]!.available()).ok) continue;
      if (!this.isHeld(i)) return this.methods[i]!.name;
      heldBack ??= this.methods[i]!.name;
    }
    return heldBack;
  }
}

/** A method's "I cannot be used now" (a typed error with an operator action), or undefined for any other error. */
export function asMethodFailure(method: AuthMethod, err: unknown): MethodFailure | undefined {
  if (!(err instanceof LatchkeyError) || !err.operatorAction) return undefined;
  if (err.operatorAction === 'fix_config' || err.operatorAction === 'check_network') return undefined;
  return { method: method.name, reason: err.message, operatorAction: err.operatorAction, error: err };
}

/** The exact fix for `action` on `method` of `source` (the method's own, else the generic one). */
export function fixForMethod(source: string, method: AuthMethod | undefined, action: OperatorAction): string {
  return method?.fixFor?.(action) ?? fixFor(source, action);
}

function noUsableMethod(source: string, failures: MethodFailure[], methods: readonly AuthMethod[], notHere: readonly WrongDestinationError[] = []): LatchkeyError {
  const first = failures[0];
  if (!first) {
    return new LatchkeyError('LK_CONFIG_INVALID', `source "${source}" has no auth method configured (sources.${source}.methods is empty)`, { source, operatorAction: 'fix_config' });
  }
  const detail = [...failures.map((f) => `${f.method}: ${f.reason}`), ...notHere.map((e) => `${e.method}: not for this URL`)].join('; ');
  return new LatchkeyError(first.error?.code ?? 'LK_UNAUTHORIZED', `no usable auth method for "${source}" (${detail})`, {
    source,
    operatorAction: first.operatorAction,
    fix: fixForMethod(source, methods.find((m) => m.name === first.method), first.operatorAction),
    exitCode: ExitCode.actionRequired,
  });
}
