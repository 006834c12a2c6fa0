import { isIP } from 'node:net';
import { BoundedMap } from '../engine/bounded-map.js';

/**
 * How many sign-ins may start (`GET /auth/login`): every start stores a login marker for 10
 * minutes (the callback's replay guard), so an unauthenticated flood would otherwise fill the
 * store. Two token buckets, per gateway process (each replica allows as much): one per client
 * address (an IPv6 client by its /64, which one host usually has whole) and one for all clients
 * together (a flood from many addresses). A refused start stores nothing and gets 429 with
 * `Retry-After`.
 */
export interface LoginRateLimit {
  /** Sign-ins one client may start per minute, on average (default 10). */
  perClientPerMinute?: number;
  /** How many one client may start at once before the average applies (default 10). */
  perClientBurst?: number;
  /** Sign-ins all clients together may start per minute (default 600; the burst is a minute's worth). */
  allPerMinute?: number;
}

export const DEFAULT_LOGIN_RATE_LIMIT: Required<LoginRateLimit> = { perClientPerMinute: 10, perClientBurst: 10, allPerMinute: 600 };

/** Clients remembered at once (the oldest are forgotten: a forgotten client starts with a full bucket). */
const MAX_CLIENTS = 10_000;

class Bucket {
  tokens: number;
  at: number;
  /** Whether its refusal was logged since it last let a start through (one log line per episode). */
  logged = false;

  constructor(
    readonly capacity: number,
    readonly perMs: number,
    now: number,
  ) {
    this.tokens = capacity;
    this.at = now;
  }

  /** Tokens now (refilled since the last look). */
  level(now: number): number {
    this.tokens = Math.min(this.capacity, this.tokens + Math.max(0, now - this.at) * this.perMs);
    this.at = now;
    return this.tokens;
  }

  /** Whole seconds until one token is there. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((1 - this.tokens) / this.perMs / 1000));
  }
}

export type LoginVerdict = { ok: true } | { ok: false; scope: 'client' | 'all'; retryAfterSeconds: number; firstRefusal: boolean };

export class LoginLimiter {
  readonly #limit: Required<LoginRateLimit>;
  readonly #clients = new BoundedMap<string, Bucket>(MAX_CLIENTS);
  #all: Bucket | undefined;

  constructor(limit: LoginRateLimit = {}) {
    this.#limit = { ...DEFAULT_LOGIN_RATE_LIMIT, ...definedOnly(limit) };
    for (const [k, n] of Object.entries(this.#limit)) {
      if (!Number.isFinite(n) || n <= 0) throw new RangeError(`loginRateLimit.${k} must be a positive number (got ${String(n)})`);
    }
  }

  /** Takes one start for `clientAddress` at `now`, or says why not and for how long. */
  take(clientAddress: string, now: number): LoginVerdict {
    const key = clientKey(clientAddress);
    let client = this.#clients.get(key);
    if (client === undefined) {
      client = new Bucket(this.#limit.perClientBurst, this.#limit.perClientPerMinute / 60_000, now);
      this.#clients.set(key, client);
    }
    this.#all ??= new Bucket(this.#limit.allPerMinute, this.#limit.allPerMinute / 60_000, now);
    const all = this.#all;
    const refused = client.level(now) < 1 ? client : all.level(now) < 1 ? all : undefined;
    if (refused !== undefined) {
      const firstRefusal = !refused.logged;
      refused.logged = true;
      return { ok: false, scope: refused === client ? 'client' : 'all', retryAfterSeconds: refused.retryAfterSeconds(), firstRefusal };
    }
    client.tokens -= 1;
    all.tokens -= 1;
    client.logged = false;
    all.logged = false;
    return { ok: true };
  }
}

function definedOnly(limit: LoginRateLimit): LoginRateLimit {
  return Object.fromEntries(Object.entries(limit).filter(([, v]) => v !== undefined)) as LoginRateLimit;
}

/** The bucket key of a client address: an IPv4 address (mapped ones unwrapped), an IPv6 /64, or the text as given. */
export function clientKey(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return mapped[1];
  if (isIP(address) !== 6) return address;
  const [head = '', tail = ''] = address.toLowerCase().split('::');
  const left = head === '' ? [] : head.split(':');
  const right = address.includes('::') ? (tail === '' ? [] : tail.split(':')) : [];
  const groups = address.includes('::') ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':')}::/64`;
}
