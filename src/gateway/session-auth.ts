import type { Clock } from '../core/clock.js';
import { BoundedMap } from '../engine/bounded-map.js';
import { readGatewayCookies } from './cookie-rules.js';
import type { GatewayMetrics } from './metrics.js';
import type { SessionRefresher } from './refresh.js';
import type { RequestShape } from './request-shape.js';
import { accessDueAt, type SessionCookies, type SessionPointer } from './session-cookies.js';
import type { SessionData, SessionStore } from './session-store.js';

/**
 * Who a request is: the session its cookies point to, refreshed when its access token is due.
 *
 * - An access cookie of a live session whose access token is not due: passes, no store write.
 * - Due (or only the refresh cookie left): the refresher (single-flight, rotation core).
 * - A cookie of an older generation: the session has been rotated by a sibling request (another
 *   tab, another replica); the request gets the current generation's cookies, never a second
 *   refresh. Within the successor window (60 s) that is the race every burst produces; later it
 *   is a browser that missed a `Set-Cookie` (forward-auth never forwards one): still the same
 *   session, still no refresh.
 * - The IdP refused the refresh token of the generation this request carried: the session is
 *   over and the cookies are cleared. A request whose cookies were already behind never clears
 *   anything (it would delete the cookies a winner just set in the same browser).
 */

export type AuthOutcome =
  | { kind: 'ok'; sid: string; session: SessionData; setCookies: string[]; refreshed: boolean }
  /** No usable cookie, or one of no live session: sign in (nothing is cleared). */
  | { kind: 'anonymous' }
  /** The session ended now (the IdP refused its refresh token): sign in; `clear` the cookies when they were the current ones. */
  | { kind: 'ended'; setCookies: string[] }
  /** The IdP cannot be asked right now: 503 with Retry-After, cookies kept. */
  | { kind: 'unavailable'; retryAfterSeconds: number };

export interface SessionAuthOptions {
  sessions: SessionStore;
  cookies: SessionCookies;
  refresher: SessionRefresher;
  clock: Clock;
  skewMs: number;
  metrics: GatewayMetrics;
  /** How long a session read stays in this process's memory (default 1000 ms; 0 = always read the store). */
  sessionCacheMs: number;
  /**
   * Checks a session's access token once per generation (JWT against the JWKS, or
   * introspection), remembered until the token expires; absent = the stored expiry decides.
   */
  checkAccessToken?: (accessToken: string) => Promise<'active' | 'inactive' | 'unknown' | 'uncheckable'>;
}

interface Cached {
  data: SessionData;
  until: number;
}

export class SessionAuth {
  readonly #o: SessionAuthOptions;
  readonly #cache = new BoundedMap<string, Cached>(10_000);
  /** `<sid>.<generation>` → until when its access token is known good (checked at the IdP). */
  readonly #checked = new BoundedMap<string, number>(10_000);

  constructor(options: SessionAuthOptions) {
    this.#o = options;
  }

  /** Forgets what this process remembers of a session (after logout or a refresh here). */
  forget(sid: string): void {
    this.#cache.delete(sid);
  }

  async #load(sid: string, atLeastGen: number): Promise<SessionData | undefined> {
    const now = this.#o.clock.now();
    const hit = this.#cache.get(sid);
    if (hit && hit.until > now && hit.data.gen >= atLeastGen) return hit.data;
    const data = await this.#o.sessions.load(sid);
    if (data && this.#o.sessionCacheMs > 0) this.#cache.set(sid, { data, until: now + this.#o.sessionCacheMs });
    else this.#cache.delete(sid);
    return data;
  }

  /** The session of this request, refreshed if `refresh` and due; see the class comment. */
  async authenticate(req: { headers: Record<string, string | string[] | undefined> }, shape: RequestShape, options: { refresh: boolean }): Promise<AuthOutcome> {
    const cookies = readGatewayCookies(req);
    if (cookies.rejected > 0) this.#o.metrics.badCookies.inc(cookies.rejected);
    const pointers = this.#o.cookies.pointers(cookies);
    if (pointers.length === 0) {
      if (cookies.values.has('latchkey_at') || cookies.values.has('latchkey_rt')) this.#o.metrics.badCookies.inc();
      return { kind: 'anonymous' };
    }
    let found: { pointer: SessionPointer; session: SessionData } | undefined;
    for (const pointer of pointers) {
      const session = await this.#load(pointer.sid, pointer.gen);
      if (session && pointer.gen <= session.gen) {
        found = { pointer, session };
        break;
      }
    }
    if (!found) return { kind: 'anonymous' };
    const { pointer } = found;
    let session = found.session;
    const sid = pointer.sid;
    const now = this.#o.clock.now();
    let behind = pointer.gen < session.gen;
    if (behind) {
      const successor = await this.#o.sessions.successorOf(sid, pointer.gen);
      this.#o.metrics.olderGeneration.inc({ window: successor !== undefined ? 'successor' : 'stale' });
    }
    let due = now >= accessDueAt(session, this.#o.skewMs, now);
    let rejected: string | undefined;
    if (!due && options.refresh && this.#o.checkAccessToken && !((this.#checked.get(`${sid}.${session.gen}`) ?? 0) > now)) {
      const verdict = await this.#o.checkAccessToken(session.accessToken);
      if (verdict === 'active' || verdict === 'uncheckable') this.#checked.set(`${sid}.${session.gen}`, session.expiresAt ?? now + 300_000);
      // Cannot be told right now (the IdP unreachable): the stored expiry decides; asked again in a minute.
      if (verdict === 'unknown') this.#checked.set(`${sid}.${session.gen}`, Math.min(session.expiresAt ?? now + 60_000, now + 60_000));
      if (verdict === 'inactive') {
        // Revoked or otherwise dead before its time: refresh (the refresh token decides whether the session lives on).
        due = true;
        rejected = session.accessToken;
      }
    }
    const hasAccessPointer = pointers.some((p) => p.kind === 'at' && p.sid === sid);
    if (!due) {
      // Live access token. A request that came with only the refresh cookie (the access cookie
      // ran out in the browser first) or behind gets the current cookies.
      const setCookies = behind || !hasAccessPointer ? this.#o.cookies.issue(shape, sid, session) : [];
      return { kind: 'ok', sid, session, setCookies, refreshed: false };
    }
    if (!options.refresh) return { kind: 'ok', sid, session, setCookies: [], refreshed: false };
    if (!session.refreshToken) {
      // Nothing to refresh with: an access-token-only session ends with its token.
      if (rejected !== undefined || (session.expiresAt !== undefined && now >= session.expiresAt)) return { kind: 'ended', setCookies: behind ? [] : this.#o.cookies.clear(shape) };
      return { kind: 'ok', sid, session, setCookies: [], refreshed: false };
    }
    const r = await this.#o.refresher.refresh(sid, rejected);
    this.forget(sid);
    if (r.kind === 'unavailable') return r;
    if (r.kind === 'ended') {
      behind = pointer.gen < r.gen;
      return { kind: 'ended', setCookies: behind ? [] : this.#o.cookies.clear(shape) };
    }
    session = r.session;
    if (this.#o.sessionCacheMs > 0) this.#cache.set(sid, { data: session, until: this.#o.clock.now() + this.#o.sessionCacheMs });
    return { kind: 'ok', sid, session, setCookies: this.#o.cookies.issue(shape, sid, session), refreshed: true };
  }
}
