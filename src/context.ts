import type { Clock } from './core/clock.js';
import type { ResolvedSource } from './config/load.js';
import type { TokenEngine } from './engine/fresh-token.js';
import type { FetchLike } from './oauth/endpoint.js';
import type { Secret } from './core/secret.js';
import type { Store, StoredGrant } from './store/store.js';

/**
 * What the layers below `latchkey.ts` (methods, client, login) may use of the library, so none
 * of them imports the `Latchkey` class (docs/DESIGN.md "Layout and rules"): the store, the token
 * engine, the injected clock and fetch, and the environment secret references resolve against.
 * `Latchkey` implements it; a test or the gateway can hand over anything with the same shape.
 */
export interface CoreContext {
  readonly store: Store;
  readonly engine: TokenEngine;
  readonly clock: Clock;
  /** The injected fetch: every network call of a lower layer goes through it. */
  readonly fetchImpl: FetchLike;
  /** Where `env:` secret references resolve (never printed: it may hold secrets). */
  readonly env: NodeJS.ProcessEnv;
  /**
   * Resolves a secret reference (`env:NAME`, `file:/path`, `keyring:service/account`) against
   * this context's environment; errors name the reference, never the value.
   */
  resolveSecret(ref: string): Promise<Secret>;
}

/** A grant obtained elsewhere (a token endpoint response). */
export interface GrantInput {
  access_token: string;
  refresh_token?: string;
  expires_in?: number;
  /** When the access token expires: seconds since the epoch, or an ISO 8601 date. */
  expires_at?: number | string;
  /** When the grant was issued (seconds since the epoch): expires_in counts from then. */
  iat?: number;
  scope?: string;
  token_type?: string;
}

/** Where a grant installed by a login came from (stored with it, so a refresh and a logout use the same server and client). */
export interface GrantOrigin {
  tokenEndpoint?: string;
  issuer?: string;
  clientId?: string;
  /** Collects what was bounded while validating the grant (an `expires_in` beyond a year). */
  warnings?: string[];
}

/** What the interactive login and logout flows (src/login/) need: the core plus the configured sources and grant installation under the lock. */
export interface LoginContext extends CoreContext {
  /** The resolved config of one source (throws LK_UNKNOWN_SOURCE). */
  source(name: string): ResolvedSource;
  /** Installs a grant under the source's lock and drops the engine's memo of it. */
  installGrant(source: string, input: GrantInput, origin?: GrantOrigin): Promise<StoredGrant>;
  /** Removes the stored grant under the source's lock; true when there was one. */
  removeGrant(source: string): Promise<boolean>;
}
