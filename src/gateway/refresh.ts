import type { Clock } from '../core/clock.js';
import { LatchkeyError } from '../core/errors.js';
import { BoundedMap } from '../engine/bounded-map.js';
import { rotateGrant, SESSION_POLICY, type EngineEvent, type OAuthClientSettings, type RotationDeps, type SlotMemory, type Unsaved } from '../engine/rotation-core.js';
import type { FetchLike } from '../oauth/endpoint.js';
import { RefreshError } from '../oauth/refresh-error.js';
import type { Store, StoreTx, WithLockOptions } from '../store/store.js';
import { SessionStore, type SessionData } from './session-store.js';

/**
 * Transparent refresh of a session: single-flight per session in this process (one promise per
 * session id), and across every process on the store through the rotation core's locked unit
 * on `session:<id>` (re-read under the lock, adopt what a sibling rotated, otherwise call the
 * token endpoint once, persist before anyone sees it). A request that queued behind a sibling's
 * refresh gets the sibling's tokens: the IdP sees one refresh per generation.
 */

/** What a refresh came to, for the request that needed it. */
export type RefreshResult =
  | { kind: 'ok'; session: SessionData }
  /** The IdP refused the refresh token (invalid_grant / invalid_client) for the generation `gen`: the session is over. */
  | { kind: 'ended'; gen: number }
  /** IdP unreachable, 5xx, a cool-down, the lock held too long: try again later (cookies kept). */
  | { kind: 'unavailable'; retryAfterSeconds: number };

export interface RefresherOptions {
  sessions: SessionStore;
  store: Store;
  clock: Clock;
  fetch: FetchLike;
  settings: OAuthClientSettings;
  /** Bound on waiting for a sibling's lock before answering 503 (default 20 s; then the current token is served while valid). */
  lockTimeoutMs?: number;
  tokenTimeoutMs?: number;
  cooldownMs?: number;
  confirmRefusalDelayMs?: number;
  onEvent?: (e: EngineEvent) => void;
}

export class SessionRefresher {
  readonly #o: RefresherOptions;
  readonly #flights = new Map<string, Promise<RefreshResult>>();
  readonly #deps: RotationDeps;

  constructor(options: RefresherOptions) {
    this.#o = options;
    const memory: SlotMemory = { held: new Map<string, Unsaved>(), cooldownUntil: new BoundedMap<string, number>(10_000) };
    this.#deps = {
      store: boundedLocks(options.store, options.lockTimeoutMs ?? 20_000),
      clock: options.clock,
      fetch: options.fetch,
      tokenTimeoutMs: options.tokenTimeoutMs ?? 10_000,
      cooldownMs: options.cooldownMs ?? 5_000,
      persistRetryDelaysMs: [50, 250, 1000],
      confirmRefusalDelayMs: options.confirmRefusalDelayMs ?? 1_000,
      memory,
      policy: SESSION_POLICY,
      emit: (e) => options.onEvent?.(e),
    };
  }

  /** How many refreshes are in flight in this process. */
  get inFlight(): number {
    return this.#flights.size;
  }

  /**
   * Refreshes `sid` (or joins the refresh under way for it). `rejected`: the access token the
   * IdP said is no longer active (refreshed even though it has not expired, unless a sibling
   * already replaced it).
   */
  refresh(sid: string, rejected?: string): Promise<RefreshResult> {
    let flight = this.#flights.get(sid);
    if (!flight) {
      flight = this.#run(sid, rejected).finally(() => this.#flights.delete(sid));
      this.#flights.set(sid, flight);
    }
    return flight;
  }

  async #run(sid: string, rejected?: string): Promise<RefreshResult> {
    const before = await this.#o.sessions.load(sid);
    if (!before) return { kind: 'ended', gen: -1 };
    try {
      await rotateGrant(this.#deps, this.#o.sessions.slot(sid, this.#o.settings), rejected !== undefined ? { rejected } : {});
    } catch (err) {
      return this.#failed(sid, before, err);
    }
    // Durable now: read what the unit wrote (or what the sibling we adopted wrote).
    const after = await this.#o.sessions.load(sid);
    if (!after) return { kind: 'ended', gen: before.gen };
    return { kind: 'ok', session: after };
  }

  async #failed(sid: string, before: SessionData, err: unknown): Promise<RefreshResult> {
    // Logged out (or swept) meanwhile: over, whatever the error says.
    if ((await this.#o.sessions.load(sid).catch(() => before)) === undefined) return { kind: 'ended', gen: before.gen };
    if (err instanceof LatchkeyError) {
      const refusedClient = err.cause instanceof RefreshError && err.cause.answer === 'invalid_client';
      if (err.code === 'LK_GRANT_REVOKED' || err.code === 'LK_GRANT_INVALID' || refusedClient) {
        // Over for good for the generation the IdP refused; a session a sibling replaced meanwhile is not ours to end.
        const now = await this.#o.sessions.load(sid).catch(() => undefined);
        const gen = now?.gen ?? before.gen;
        await this.#o.store.withLock(SessionStore.lockKey(sid), async (tx: StoreTx) => {
          const raw = await tx.getEntry('sessions', sid);
          if (raw !== undefined) await tx.deleteEntry('sessions', sid);
        }, { timeoutMs: this.#o.lockTimeoutMs ?? 20_000 }).catch(() => undefined);
        return { kind: 'ended', gen };
      }
    }
    const cooling = this.#deps.memory.cooldownUntil.get(SessionStore.lockKey(sid));
    const now = this.#o.clock.now();
    const retryAfterSeconds = Math.max(1, Math.min(60, Math.ceil(((cooling ?? now + 5_000) - now) / 1000)));
    return { kind: 'unavailable', retryAfterSeconds };
  }
}

/** The store with a bound on every lock wait (a sibling holding a session's lock longer answers 503, not a hang). */
function boundedLocks(store: Store, timeoutMs: number): Store {
  return new Proxy(store, {
    get(target, prop, receiver) {
      if (prop === 'withLock') {
        return <T>(key: string, fn: (tx: StoreTx) => Promise<T>, options: WithLockOptions = {}) => target.withLock(key, fn, { timeoutMs, ...options });
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}
