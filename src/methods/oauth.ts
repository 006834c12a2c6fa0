import type { Clock } from '../core/clock.js';
import type { TokenEngine } from '../engine/fresh-token.js';
import { usableGrant } from '../engine/fresh-token.js';
import { ExitCode, LatchkeyError, type OperatorAction } from '../core/errors.js';
import type { Store } from '../store/store.js';
import type { Availability, AuthMethod, CredentialExpiry, MethodContext, PreparedAuth } from './method.js';
import type { SourceConfig } from '../config/schema.js';
import { fixForSource } from '../config/source-fix.js';

/** A grant that cannot refresh itself and expires within this window is reported `expiring`. */
export const OAUTH_EXPIRING_WITHIN_MS = 3_600_000;

/**
 * The `oauth` method: the stored grant's access token, kept fresh by the {@link TokenEngine}
 * (memo → store → single flight → refresh under the lock), sent as `Authorization: Bearer`
 * (RFC 6750 §2.1).
 *
 * Recovery after a 401 is `engine.forceRefresh(source, rejected)`: under the lock it adopts a
 * token a sibling already rotated, or refreshes once. When that cannot produce a different
 * token the error says why: `reauthorize` (grant revoked: invalid_grant), `relogin` (no grant
 * or no refresh token), `check_network` (the token endpoint did not answer) or `fix_config`
 * (the token endpoint refused the client).
 */
export class OAuthMethod implements AuthMethod {
  readonly name = 'oauth' as const;
  /** A fresh token from a live grant still rejected: the grant lacks access, authorize again. */
  readonly rejectedAction: OperatorAction = 'reauthorize';
  readonly #source: string;
  readonly #engine: TokenEngine;
  readonly #store: Store;
  readonly #clock: Clock;
  #last: PreparedAuth | undefined;
  readonly #config: SourceConfig | undefined;

  constructor(source: string, engine: TokenEngine, store: Store, clock: Clock, config?: SourceConfig) {
    this.#source = source;
    this.#engine = engine;
    this.#store = store;
    this.#clock = clock;
    this.#config = config;
  }

  /** A new grant comes from `latchkey login` only when login can run for this source; otherwise from `latchkey import`. */
  fixFor(action: OperatorAction): string | undefined {
    if (action !== 'relogin' && action !== 'reauthorize') return undefined;
    return fixForSource(this.#source, this.#config, action);
  }

  async available(): Promise<Availability> {
    try {
      const grant = usableGrant(this.#source, await this.#store.read(this.#source));
      if (!grant.refreshToken && grant.expiresAt !== undefined && this.#clock.now() >= grant.expiresAt) {
        return { ok: false, reason: `the access token of "${this.#source}" expired and the grant has no refresh token`, operatorAction: 'relogin' };
      }
      return { ok: true };
    } catch (err) {
      if (err instanceof LatchkeyError && err.operatorAction) return { ok: false, reason: err.message, operatorAction: err.operatorAction };
      throw err;
    }
  }

  async authorize(): Promise<PreparedAuth> {
    const token = await this.#engine.token(this.#source);
    const last = this.#last;
    if (last !== undefined && last.credential === token) return last;
    const prepared: PreparedAuth = { headers: { Authorization: `Bearer ${token}` }, credential: token };
    this.#last = prepared;
    return prepared;
  }

  async recover(used: PreparedAuth): Promise<boolean> {
    const next = await this.#engine.forceRefresh(this.#source, used.credential);
    if (next !== used.credential) return true;
    // The engine failed open (token endpoint down, cooling down, or the client was refused):
    // it handed back the very token the API just rejected. Say why, so the action is right.
    const failure = (await this.#store.read(this.#source))?.lastFailure;
    if (failure?.kind === 'rejected') {
      throw new LatchkeyError('LK_REFRESH_FAILED', `${this.#source}: the API rejected the access token and the token endpoint refused the refresh (${failure.message})`, {
        source: this.#source,
        operatorAction: 'fix_config',
        exitCode: ExitCode.actionRequired,
      });
    }
    throw new LatchkeyError('LK_REFRESH_FAILED', `${this.#source}: the API rejected the access token and it could not be refreshed (${failure?.message ?? 'the token endpoint did not answer'})`, {
      source: this.#source,
      operatorAction: 'check_network',
      exitCode: ExitCode.unreachable,
    });
  }

  async expiry(): Promise<CredentialExpiry> {
    const grant = (await this.#store.read(this.#source))?.grant;
    const expiresAt = grant?.expiresAt ?? null;
    if (!grant || expiresAt === null || grant.refreshToken) return { expiresAt, expiringSoon: false };
    const left = expiresAt - this.#clock.now();
    return left < OAUTH_EXPIRING_WITHIN_MS
      ? { expiresAt, expiringSoon: true, operatorAction: 'relogin', note: `the access token expires in ${Math.max(0, Math.round(left / 60_000))} min and the grant has no refresh token` }
      : { expiresAt, expiringSoon: false };
  }
}

export function createOAuthMethod({ lk, source }: MethodContext): AuthMethod {
  if (!source.oauth) throw new LatchkeyError('LK_CONFIG_INVALID', `sources.${source.name}.oauth is not configured`, { source: source.name, operatorAction: 'fix_config' });
  return new OAuthMethod(source.name, lk.engine, lk.store, lk.clock, source);
}
