import { createHash } from 'node:crypto';
import pg from 'pg';
import { clientConfig, HOLDER, type BoundsVia, type PgTimeouts } from './connection.js';
import type { PgTarget } from './url.js';

/**
 * Wakes the processes waiting for a claim as soon as it is released, instead of at their next
 * poll: a release `NOTIFY`s the key's digest (never the key: a session's lock key holds its id)
 * on the store's channel, and each waiting process `LISTEN`s on one dedicated connection, opened
 * on its first wait. Polling stays the rule underneath (a lost notification, a broken listener,
 * a pooler in transaction mode where LISTEN cannot work): a wake-up only makes it sooner.
 */
export class ClaimWakeups {
  readonly channel: string;
  readonly #target: PgTarget;
  readonly #timeouts: PgTimeouts;
  #client: pg.Client | undefined;
  #starting: Promise<boolean> | undefined;
  #closed = false;
  readonly #waiters = new Map<string, Set<() => void>>();
  /** Notifications seen per digest (a waiter compares before and after its claim attempt). */
  readonly #seen = new Map<string, number>();

  constructor(target: PgTarget, timeouts: PgTimeouts) {
    this.#target = target;
    this.#timeouts = timeouts;
    this.channel = `latchkey_claims_${target.schema}`.slice(0, 63);
  }

  /** The digest a release announces for `key`. */
  static digest(key: string): string {
    return createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 32);
  }

  /** How many releases of `digest` this process has heard of. */
  heard(digest: string): number {
    return this.#seen.get(digest) ?? 0;
  }

  /** True while the listening connection is up (a broken one falls back to plain polling). */
  get listening(): boolean {
    return this.#client !== undefined;
  }

  /** Listens (once); false when it cannot (`via` a transaction pooler, or the connection failed): callers just poll. */
  start(via: BoundsVia): Promise<boolean> {
    if (this.#closed || via === 'transaction') return Promise.resolve(false);
    this.#starting ??= this.#listen().catch(() => {
      // Try again on a later wait, not on every poll.
      setTimeout(() => (this.#starting = undefined), 5_000).unref();
      return false;
    });
    return this.#starting;
  }

  async #listen(): Promise<boolean> {
    const client = new pg.Client(clientConfig(this.#target, this.#timeouts, `latchkey-listen ${HOLDER}`.slice(0, 63)));
    const broken = (): void => {
      if (this.#client === client) this.#client = undefined;
      this.#starting = undefined;
      this.#wakeAll();
    };
    client.on('error', broken);
    client.on('end', broken);
    client.on('notification', (msg) => {
      const digest = msg.payload ?? '';
      this.#seen.set(digest, this.heard(digest) + 1);
      const waiting = this.#waiters.get(digest);
      if (waiting === undefined) return;
      this.#waiters.delete(digest);
      for (const wake of waiting) wake();
    });
    await client.connect();
    await client.query(`LISTEN "${this.channel}"`);
    // A listener must not keep a process alive that has nothing else to do.
    refOf(client).unref?.();
    if (this.#closed) {
      await client.end().catch(() => undefined);
      return false;
    }
    this.#client = client;
    return true;
  }

  /** Resolves when `digest` is released (a notification after `heardBefore`), or after `ms`. */
  wait(digest: string, ms: number, heardBefore: number): Promise<void> {
    if (this.heard(digest) !== heardBefore) return Promise.resolve();
    return new Promise((resolve) => {
      const set = this.#waiters.get(digest) ?? new Set<() => void>();
      this.#waiters.set(digest, set);
      const done = (): void => {
        clearTimeout(timer);
        set.delete(done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      set.add(done);
    });
  }

  #wakeAll(): void {
    const all = [...this.#waiters.values()];
    this.#waiters.clear();
    for (const set of all) for (const wake of set) wake();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeAll();
    const client = this.#client;
    this.#client = undefined;
    if (client === undefined) return;
    // Ref'd again while it closes: an unref'd socket would let the process exit mid-close.
    refOf(client).ref?.();
    await client.end().catch(() => undefined);
  }
}

/** pg.Client's ref/unref of its socket (not in its type declarations). */
function refOf(client: pg.Client): { ref?: () => void; unref?: () => void } {
  return client as unknown as { ref?: () => void; unref?: () => void };
}
