import { setTimeout as sleep } from 'node:timers/promises';
import { LatchkeyError } from '../../core/errors.js';
import { createPool, DEFAULT_TIMEOUTS, storeError } from './connection.js';
import type { PgStore } from './pg-store.js';
import { quoteIdent } from './url.js';

/**
 * `latchkey rotate-key`, over the store's key primitives (src/store/pg/pg-store.ts, "master
 * keys"): register the ring's current key as one that may seal; re-wrap, batch after batch,
 * every value still under another key (only the wrapped data key changes: the ciphertext, its tag
 * and the record's version stay, so a refresh that read the row before still passes its
 * compare-and-set); with `retire`, retire every other key once no value uses it.
 *
 * Online: each batch is one short transaction that skips rows being written (`SKIP LOCKED`);
 * those are taken by a later batch. Processes keep opening every value meanwhile because each
 * value names its key id and their ring holds both keys (LATCHKEY_MASTER_KEY plus
 * LATCHKEY_MASTER_KEY_OTHER; "Key rotation" in docs/DESIGN.md). While some process still seals
 * with the old key as its current one, rows come back under it: the report says how many, and
 * retiring is refused until they are gone.
 */
export interface RotateKeyReport {
  /** The key every value is now sealed with (its id: safe to print). */
  keyId: string;
  /** Rows re-wrapped by this run. */
  rewrapped: number;
  /** Rows (sources and entries) still under another key at the end. */
  remaining: number;
  /** Keys retired by this run (with `retire`). */
  retired: string[];
  /** Other keys still active (they may still seal). */
  activeOthers: string[];
}

export interface RotateKeyOptions {
  /** Retire every other key once no stored value uses it. */
  retire?: boolean;
  /** Rows per batch (default 100). */
  batch?: number;
  /** How long to keep re-wrapping rows that come back under another key, or that were being written (default 10 s). */
  settleMs?: number;
}

export async function rotateMasterKey(store: PgStore, keyId: string, options: RotateKeyOptions = {}): Promise<RotateKeyReport> {
  await store.registerCurrentKey();
  const pool = createPool(store.target, DEFAULT_TIMEOUTS, 1);
  const S = quoteIdent(store.target.schema);
  const count = async (): Promise<number> => {
    try {
      const { rows } = await pool.query<{ n: string }>(
        `SELECT (SELECT count(*) FROM ${S}.sources WHERE key_id IS DISTINCT FROM $1 AND (access_token IS NOT NULL OR refresh_token IS NOT NULL OR session_cookies IS NOT NULL))
              + (SELECT count(*) FROM ${S}.entries WHERE key_id <> $1) AS n`,
        [keyId],
      );
      return Number(rows[0]?.n ?? 0);
    } catch (err) {
      throw storeError(store.target, 'count the values under another key', err);
    }
  };
  try {
    let rewrapped = 0;
    const settleBy = Date.now() + (options.settleMs ?? 10_000);
    for (;;) {
      const n = await store.rewrapBatch(options.batch ?? 100);
      rewrapped += n;
      if (n > 0) continue;
      // Nothing left that is not being written right now: done, or wait for those rows' writers.
      if ((await count()) === 0 || Date.now() >= settleBy) break;
      await sleep(100);
    }
    const remaining = await count();
    const others = async (): Promise<string[]> => {
      try {
        const { rows } = await pool.query<{ id: string }>(`SELECT id FROM ${S}.master_keys WHERE active AND id <> $1 ORDER BY id`, [keyId]);
        return rows.map((r) => r.id);
      } catch (err) {
        throw storeError(store.target, 'list the master keys', err);
      }
    };
    const retired: string[] = [];
    if (options.retire) {
      for (const id of await others()) {
        await store.retireKey(id);
        retired.push(id);
      }
    }
    return { keyId, rewrapped, remaining, retired, activeOthers: await others() };
  } catch (err) {
    if (err instanceof LatchkeyError) throw err;
    throw storeError(store.target, 're-wrap the stored values', err);
  } finally {
    await pool.end().catch(() => undefined);
  }
}
