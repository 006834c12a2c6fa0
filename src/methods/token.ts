import type { Clock } from '../core/clock.js';
import type { TokenConfig } from '../config/schema.js';
import { fixForSecretRef, resolveSecretRef } from '../config/secret-ref.js';
import { ExitCode, LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import type { Availability, AuthMethod, CredentialExpiry, MethodContext, PreparedAuth } from './method.js';

/** A static token whose declared expiry (`token.expiresAt`) is this close is reported `expiring`. */
export const PAT_EXPIRING_WITHIN_MS = 7 * 86_400_000;

/** How long a resolved `file:` or `keyring:` secret is reused before the reference is read again. */
const SECRET_MEMO_MS = 60_000;

/**
 * Longest token we will put in a header. Servers commonly refuse request headers above 8 KiB;
 * anything longer is not a token but a mistake (a whole file behind a `file:` reference).
 */
export const MAX_TOKEN_LENGTH = 8192;

/** RFC 9110 §5.6.2 token characters: what an auth scheme may consist of. */
const SCHEME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]*$/;

/**
 * A token may hold only visible ASCII (RFC 6750 §2.1 b64token is narrower still): a CR or LF
 * would let a secret inject headers, and anything else is a copy-paste accident.
 */
const TOKEN_CHARS = /^[\x21-\x7e]+$/;

interface Resolved {
  /** When the memo must be re-read. */
  until: number;
  /** For an `env:` reference: the raw value it was built from (re-checked on every call: free). */
  raw?: string;
  prepared: PreparedAuth;
}

/**
 * The `token` method: a static personal access token or API key read from its secret
 * reference and sent in a configurable header (`Authorization: Bearer <token>` by default;
 * `scheme: ""` sends the bare token, e.g. `X-API-Key: <token>`).
 *
 * Recovery cannot mint a new token; it re-reads the secret reference, so a token the operator
 * has just replaced is picked up by the retry. When the value is unchanged the operator must
 * replace it (`replace_token`).
 */
export class TokenMethod implements AuthMethod {
  readonly name = 'token' as const;
  readonly rejectedAction: OperatorAction = 'replace_token';
  readonly #source: string;
  readonly #config: TokenConfig;
  readonly #env: NodeJS.ProcessEnv;
  readonly #clock: Clock;
  readonly #header: string;
  readonly #scheme: string;
  /** The variable behind an `env:` reference (read on every call: a replaced token is seen at once). */
  readonly #envName: string | undefined;
  #memo: Resolved | undefined;

  constructor(source: string, config: TokenConfig, env: NodeJS.ProcessEnv, clock: Clock) {
    this.#source = source;
    this.#config = config;
    this.#env = env;
    this.#clock = clock;
    this.#header = config.header ?? 'Authorization';
    this.#scheme = config.scheme ?? 'Bearer';
    this.#envName = config.secret.startsWith('env:') ? config.secret.slice(4) : undefined;
    if (!SCHEME.test(this.#scheme)) {
      throw new LatchkeyError('LK_CONFIG_INVALID', `sources.${source}.token.scheme must be a single word such as "Bearer" or "token" (or "" for the bare token)`, {
        source,
        operatorAction: 'fix_config',
      });
    }
  }

  async available(): Promise<Availability> {
    // The token authorize() resolved and still holds (the same value, read again) is available.
    if (this.#held() !== undefined) return { ok: true };
    try {
      await this.#resolve(false);
      return { ok: true };
    } catch (err) {
      if (err instanceof LatchkeyError && err.operatorAction) return { ok: false, reason: err.message, operatorAction: err.operatorAction };
      throw err;
    }
  }

  authorize(): Promise<PreparedAuth> {
    const m = this.#held();
    if (m !== undefined) return Promise.resolve(m.prepared);
    return this.#resolve(true).then((r) => r.prepared);
  }

  /** The token resolved last, while it is still the one the reference gives. */
  #held(): Resolved | undefined {
    const m = this.#memo;
    if (m === undefined) return undefined;
    return (this.#envName !== undefined ? m.raw === this.#env[this.#envName] : this.#clock.now() < m.until) ? m : undefined;
  }

  async recover(used: PreparedAuth): Promise<boolean> {
    this.#memo = undefined;
    const again = await this.#resolve(true);
    return again.prepared.credential !== used.credential;
  }

  async expiry(): Promise<CredentialExpiry> {
    const declared = this.#config.expiresAt;
    if (declared === undefined) return { expiresAt: null, expiringSoon: false };
    const expiresAt = Date.parse(declared);
    const left = expiresAt - this.#clock.now();
    if (left <= 0) return { expiresAt, expiringSoon: true, operatorAction: 'replace_token', note: `the token expired at ${declared} (sources.${this.#source}.token.expiresAt)` };
    if (left < PAT_EXPIRING_WITHIN_MS) {
      return { expiresAt, expiringSoon: true, operatorAction: 'replace_token', note: `the token expires within ${Math.ceil(left / 86_400_000)} day(s) (${declared})` };
    }
    return { expiresAt, expiringSoon: false };
  }

  /** The exact fix for a rejected or missing token: where the operator puts the new one. */
  fixFor(action: OperatorAction): string | undefined {
    if (action !== 'replace_token') return undefined;
    // A command, not prose: `secrets set` reads the new token from stdin or a hidden prompt.
    return fixForSecretRef(this.#config.secret);
  }

  async #resolve(remember: boolean): Promise<Resolved> {
    let value: Secret;
    try {
      value = await resolveSecretRef(this.#config.secret, this.#env);
    } catch (err) {
      if (err instanceof LatchkeyError) {
        throw new LatchkeyError(err.code, err.message, { source: this.#source, operatorAction: err.operatorAction ?? 'replace_token', exitCode: ExitCode.actionRequired, cause: err });
      }
      throw err;
    }
    const token = value.reveal().trim();
    checkTokenValue(this.#source, this.#config.secret, token);
    const headerValue = this.#scheme === '' ? token : `${this.#scheme} ${token}`;
    const resolved: Resolved = {
      until: this.#clock.now() + SECRET_MEMO_MS,
      raw: this.#envName !== undefined ? value.reveal() : undefined,
      prepared: { headers: { [this.#header]: headerValue }, credential: token },
    };
    if (remember) this.#memo = resolved;
    return resolved;
  }
}

/** Refuses a value that cannot travel in a header; the message names the reference, never the value. */
export function checkTokenValue(source: string, ref: string, token: string): void {
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new LatchkeyError('LK_SECRET_UNRESOLVED', `the value of ${ref} is ${token.length} characters long, more than the ${MAX_TOKEN_LENGTH} a token may have; is it the right secret?`, {
      source,
      operatorAction: 'replace_token',
      exitCode: ExitCode.actionRequired,
    });
  }
  if (!TOKEN_CHARS.test(token)) {
    throw new LatchkeyError('LK_SECRET_UNRESOLVED', `the value of ${ref} is not a valid token (it contains a space, a control character such as a newline, or a non-ASCII character)`, {
      source,
      operatorAction: 'replace_token',
      exitCode: ExitCode.actionRequired,
    });
  }
}

export function createTokenMethod({ lk, source }: MethodContext): AuthMethod {
  if (!source.token) throw new LatchkeyError('LK_CONFIG_INVALID', `sources.${source.name}.token is not configured`, { source: source.name, operatorAction: 'fix_config' });
  return new TokenMethod(source.name, source.token, lk.env, lk.clock);
}
