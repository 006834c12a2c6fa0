import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { createPool, DEFAULT_TIMEOUTS, HOLDER, storeError } from './connection.js';
import { quoteIdent, type PgTarget } from './url.js';

/**
 * Due work for keepers sharing one PostgreSQL store: which grants are due for refresh-ahead,
 * earliest first, handed out so that two keepers never pick the same one at once.
 *
 * A pick is one short transaction: the due rows of `sources` (⅔ of the access token's lifetime
 * passed, or a day since the last exchange; not revoked; with a refresh token), ordered by due
 * time, `FOR UPDATE SKIP LOCKED` (a row another keeper is picking right now is skipped, not
 * waited for), excluding those another keeper picked and has not finished (its pick lease, a
 * row of `claims` on the key `pick:<source>`, is live); the picked ones get a pick lease in the
 * same transaction. A tick costs the due rows, not every row's secrets: nothing sealed is read.
 *
 * The pick is not the refresh's lock: the refresh itself still claims the source (claim before
 * use), so a pick that outlives its lease (a keeper stopped) can at worst let a second keeper
 * find the grant already refreshed and adopt it.
 */
export interface DueWorkOptions {
  /** How long a pick keeps other keepers off the source (default 60 s; released when done). */
  pickLeaseMs?: number;
  /** ⅔ of the lifetime, as the keeper's scheduler (src/keeper/scheduler.ts). */
  refreshAheadFraction?: number;
  /** The daily exchange of an idle rotating refresh token. */
  dailyMs?: number;
  /**
   * Read the indexed `due_at` column (default, when the schedule is the default one). `false`
   * computes the due time of every refreshable row instead: the benchmark's peer
   * (bench/fleet-due-pick.bench.ts).
   */
  useDueIndex?: boolean;
}

const DAY_MS = 24 * 60 * 60 * 1000;

export class PgDueWork {
  readonly #pool: pg.Pool;
  readonly #target: PgTarget;
  readonly #S: string;
  readonly #leaseMs: number;
  readonly #fraction: number;
  readonly #dailyMs: number;
  readonly #id = randomUUID();
  /** The default schedule: the one the `due_at` column and its index are built for. */
  readonly #indexed: boolean;

  constructor(target: PgTarget, options: DueWorkOptions = {}) {
    this.#target = target;
    this.#S = quoteIdent(target.schema);
    this.#pool = createPool(target, DEFAULT_TIMEOUTS, 1);
    this.#leaseMs = options.pickLeaseMs ?? 60_000;
    this.#fraction = options.refreshAheadFraction ?? 2 / 3;
    this.#dailyMs = options.dailyMs ?? DAY_MS;
    this.#indexed = options.useDueIndex !== false && this.#fraction === 2 / 3 && this.#dailyMs === DAY_MS;
  }

  /**
   * Picks up to `limit` due sources (as of `now`, ms epoch), earliest due first, never one of
   * `exclude` (the caller's own: in flight, backing off, not its to refresh); none when nothing
   * is due and unpicked.
   */
  async pick(limit: number, now: number = Date.now(), exclude: readonly string[] = []): Promise<string[]> {
    for (;;) {
      const { seen, picked } = await this.#pickOnce(limit, now, exclude);
      // Every one seen was picked by another keeper in between: look again.
      if (picked.length > 0 || seen === 0) return picked;
    }
  }

  async #pickOnce(limit: number, now: number, exclude: readonly string[]): Promise<{ seen: number; picked: string[] }> {
    const S = this.#S;
    const client = await this.#pool.connect().catch((err: unknown) => {
      throw storeError(this.#target, 'pick due work', err);
    });
    try {
      await client.query('BEGIN');
      // With the default schedule the due time is the `due_at` column (migration 3), read in
      // order from its partial index: a pick costs the due rows it returns, not every source.
      const { rows } = this.#indexed
        ? await client.query<{ name: string }>(
            `SELECT s.name FROM ${S}.sources s
              WHERE s.has_grant AND s.refresh_token IS NOT NULL AND s.revoked IS NULL AND s.due_at <= $1
                AND NOT (s.name = ANY($3::text[]))
                AND NOT EXISTS (SELECT 1 FROM ${S}.claims p WHERE p.key = 'pick:' || s.name AND p.claim_id IS NOT NULL AND p.lease_until > now())
              ORDER BY s.due_at
              LIMIT $2
              FOR UPDATE OF s SKIP LOCKED`,
            [now, limit, exclude],
          )
        : await client.query<{ name: string }>(
            `WITH due AS (
               SELECT s.name,
                      LEAST(CASE WHEN s.expires_at IS NULL THEN NULL ELSE s.obtained_at + (s.expires_at - s.obtained_at) * $2 END,
                            GREATEST(COALESCE(s.last_refresh_at, 0), s.obtained_at) + $3) AS due_at
                 FROM ${S}.sources s
                WHERE s.has_grant AND s.refresh_token IS NOT NULL AND s.revoked IS NULL
                  AND NOT (s.name = ANY($5::text[]))
                  AND NOT EXISTS (SELECT 1 FROM ${S}.claims p WHERE p.key = 'pick:' || s.name AND p.claim_id IS NOT NULL AND p.lease_until > now())
             )
             SELECT s.name FROM ${S}.sources s JOIN due ON due.name = s.name
              WHERE due.due_at <= $1
              ORDER BY due.due_at
              LIMIT $4
              FOR UPDATE OF s SKIP LOCKED`,
            [now, this.#fraction, this.#dailyMs, limit, exclude],
          );
      let names = rows.map((r) => r.name);
      if (names.length > 0) {
        // The pick leases, each taken only if no live one is there: the NOT EXISTS above read a
        // snapshot, and a keeper whose pick committed meanwhile is seen only here (ON CONFLICT
        // judges the row's latest version, holding it), so two keepers never both get a source.
        const picked = await client.query<{ name: string }>(
          `INSERT INTO ${S}.claims AS c (key, claim_id, holder, lease_until, claimed_at)
           SELECT 'pick:' || n, $2::uuid, $3, now() + $4 * interval '1 millisecond', now() FROM unnest($1::text[]) AS n
           ON CONFLICT (key) DO UPDATE SET claim_id = EXCLUDED.claim_id, holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until, claimed_at = EXCLUDED.claimed_at
             WHERE c.claim_id IS NULL OR c.lease_until <= now()
           RETURNING substr(c.key, 6) AS name`,
          [names, this.#id, HOLDER, this.#leaseMs],
        );
        const got = new Set(picked.rows.map((r) => r.name));
        names = names.filter((n) => got.has(n));
      }
      await client.query('COMMIT');
      return { seen: rows.length, picked: names };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw storeError(this.#target, 'pick due work', err);
    } finally {
      client.release();
    }
  }

  /** Ends the picks of `names` (theirs is done: refreshed, adopted or failed). */
  async done(names: string[]): Promise<void> {
    if (names.length === 0) return;
    try {
      await this.#pool.query(`UPDATE ${this.#S}.claims SET claim_id = NULL, lease_until = now() WHERE key = ANY($1::text[]) AND claim_id = $2::uuid`, [names.map((n) => `pick:${n}`), this.#id]);
    } catch (err) {
      throw storeError(this.#target, 'release picked work', err);
    }
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
