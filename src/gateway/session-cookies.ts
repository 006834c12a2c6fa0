import type { Clock } from '../core/clock.js';
import { BoundedMap } from '../engine/bounded-map.js';
import { refreshDueAt } from '../engine/expiry.js';
import { cookieRule, deletionHeaders, setCookieHeader, type RequestCookies } from './cookie-rules.js';
import type { RequestShape } from './request-shape.js';
import type { SealKey } from './seal.js';
import { SESSION_ID, type SessionData } from './session-store.js';

/**
 * The session cookies' values: a sealed `{ s: session id, g: generation, e: until }`, sealed
 * for its purpose (`at` or `rt`, so one never opens as the other), never a token.
 */

/** What a session cookie says once opened. */
export interface SessionPointer {
  sid: string;
  gen: number;
  kind: 'at' | 'rt';
}

/** When the access cookie should stop being sent: when the stored access token is due for refresh. */
export function accessDueAt(session: SessionData, skewMs: number, now: number): number {
  // Unknown expiry: the access cookie lives 5 minutes, then the session is looked at again.
  if (session.expiresAt === undefined) return now + 300_000;
  return refreshDueAt({ expiresAt: session.expiresAt, obtainedAt: session.obtainedAt }, skewMs);
}

/** A cookie value that opened: what it points to, and (an access cookie) until when. */
interface Opened {
  sid: string;
  gen: number;
  until: number | undefined;
}

/**
 * How many opened cookie values are remembered. Only values that opened (sealed by this
 * gateway's key: a client cannot make new ones) are kept, so forged cookies cannot churn it.
 */
const OPENED_BOUND = 10_000;

export class SessionCookies {
  readonly #key: SealKey;
  readonly #clock: Clock;
  readonly #skewMs: number;
  /**
   * Cookie values already opened (keyed by purpose and value): a signed-in browser sends the same
   * two cookies with every request, and each would cost an AES-GCM open. The checks that depend
   * on time (an access cookie's own expiry) are made on every request all the same.
   */
  readonly #opened = new BoundedMap<string, Opened>(OPENED_BOUND);

  constructor(key: SealKey, clock: Clock, skewMs: number) {
    this.#key = key;
    this.#clock = clock;
    this.#skewMs = skewMs;
  }

  /** The `Set-Cookie` headers that hand the browser this session's current generation. */
  issue(shape: RequestShape, sid: string, session: SessionData): string[] {
    const now = this.#clock.now();
    const due = accessDueAt(session, this.#skewMs, now);
    const out: string[] = [];
    const atAge = Math.floor((due - now) / 1000);
    if (atAge > 0) out.push(setCookieHeader(cookieRule('at', shape), this.#key.seal(JSON.stringify({ s: sid, g: session.gen, e: due }), 'at'), atAge));
    else out.push(...deletionHeaders('at', shape));
    if (session.refreshToken) {
      const rtAge = Math.floor((session.endsAt - now) / 1000);
      if (rtAge > 0) out.push(setCookieHeader(cookieRule('rt', shape), this.#key.seal(JSON.stringify({ s: sid, g: session.gen }), 'rt'), rtAge));
    }
    return out;
  }

  /** Every variant of both session cookies, deleted. */
  clear(shape: RequestShape): string[] {
    return [...deletionHeaders('at', shape), ...deletionHeaders('rt', shape)];
  }

  /**
   * The session pointers a request carries, access cookies first (only those whose own expiry
   * has not passed), then refresh cookies. Values that do not open are skipped (forged, tampered,
   * another key, another purpose).
   */
  pointers(cookies: RequestCookies): SessionPointer[] {
    const now = this.#clock.now();
    const out: SessionPointer[] = [];
    for (const kind of ['at', 'rt'] as const) {
      for (const value of cookies.values.get(kind === 'at' ? 'latchkey_at' : 'latchkey_rt') ?? []) {
        const opened = this.#open(kind, value);
        if (opened === undefined) continue;
        if (kind === 'at' && (opened.until === undefined || opened.until <= now)) continue;
        out.push({ sid: opened.sid, gen: opened.gen, kind });
      }
    }
    return out;
  }

  /** What a cookie value of `kind` points to, or undefined when it does not open as one (forged, tampered, another key, another purpose, malformed). */
  #open(kind: 'at' | 'rt', value: string): Opened | undefined {
    const cacheKey = `${kind}:${value}`;
    const known = this.#opened.get(cacheKey);
    if (known !== undefined) return known;
    const raw = this.#key.openJson(value, kind);
    if (!raw || typeof raw.s !== 'string' || !SESSION_ID.test(raw.s) || typeof raw.g !== 'number' || !Number.isInteger(raw.g)) return undefined;
    const opened: Opened = { sid: raw.s, gen: raw.g, until: typeof raw.e === 'number' ? raw.e : undefined };
    this.#opened.set(cacheKey, opened);
    return opened;
  }
}
