import type pg from 'pg';
import { LatchkeyError } from '../../core/errors.js';
import type { Keyspace } from '../store.js';
import { createPool, DEFAULT_TIMEOUTS, storeError } from './connection.js';
import { rewrap, sealedKeyId, type MasterKeyring, type SealedAt } from './envelope.js';
import { checkSchema } from './migrations.js';
import { sourceSealedAt } from './source-rows.js';
import { quoteIdent, type PgTarget } from './url.js';

/**
 * `latchkey rotate-key`: re-wraps every sealed value of a PostgreSQL store under the current
 * master key, online. Only the wrapped data key of each value changes (envelope encryption: the
 * ciphertext and its tag stay as they are), after both layers authenticated with the old key.
 *
 * Each row is its own short transaction (`SELECT … FOR UPDATE`, re-wrap, `UPDATE`), so the store
 * keeps serving meanwhile: the version is not bumped (the content is the same), so a refresh that
 * read the row before and writes after still passes its compare-and-set; what it writes is sealed
 * with its own current key. Processes keep opening both old and new values while this runs,
 * because every value names its key id and their keyring holds both (LATCHKEY_MASTER_KEY = the
 * new key, LATCHKEY_MASTER_KEY_PREVIOUS = the old one; see "Key rotation" in docs/DESIGN.md).
 *
 * A pass re-wraps what it finds under another key; passes repeat (up to `maxPasses`) while rows
 * under an old key keep appearing (a process still sealing with the old key as current). A value
 * that does not open (a key not in the ring, a tag that fails) is never rewritten: it is reported
 * by row and column, and the others go on.
 */
export interface RotateKeyReport {
  /** The key every value is now sealed with (its id: safe to print). */
  keyId: string;
  passes: number;
  sources: { rewrapped: number; current: number };
  entries: { rewrapped: number; current: number };
  /** Rows still under another key after the last pass (0 when the rotation is complete). */
  remaining: number;
  /** Values that could not be re-wrapped (never rewritten). */
  failures: { row: string; code: string; message: string }[];
}

export interface RotateKeyOptions {
  maxPasses?: number;
  /** Called after each row re-wrapped (progress). */
  onRow?: (kind: 'source' | 'entry', rewrapped: boolean) => void;
}

const SOURCE_COLUMNS = ['access_token', 'refresh_token', 'session_cookies'] as const;

export async function rotateMasterKey(target: PgTarget, ring: MasterKeyring, options: RotateKeyOptions = {}): Promise<RotateKeyReport> {
  const pool = createPool(target, DEFAULT_TIMEOUTS, 2);
  const S = quoteIdent(target.schema);
  const current = ring.current.id;
  const report: RotateKeyReport = { keyId: current, passes: 0, sources: { rewrapped: 0, current: 0 }, entries: { rewrapped: 0, current: 0 }, remaining: 0, failures: [] };
  const failed = new Set<string>();
  const q = async <R extends pg.QueryResultRow>(doing: string, text: string, values: unknown[] = []): Promise<pg.QueryResult<R>> => {
    try {
      return await pool.query<R>(text, values);
    } catch (err) {
      throw storeError(target, doing, err);
    }
  };
  try {
    const client = await pool.connect().catch((err: unknown) => {
      throw storeError(target, 'open the store', err);
    });
    try {
      await checkSchema(client, target.schema, target.location);
    } catch (err) {
      throw storeError(target, 'check the store schema', err);
    } finally {
      client.release();
    }
    const totalSources = Number((await q<{ n: string }>('count the sources', `SELECT count(*) AS n FROM ${S}.sources`)).rows[0]?.n ?? 0);
    const totalEntries = Number((await q<{ n: string }>('count the entries', `SELECT count(*) AS n FROM ${S}.entries`)).rows[0]?.n ?? 0);
    const maxPasses = options.maxPasses ?? 3;
    for (let pass = 0; pass < maxPasses; pass++) {
      report.passes = pass + 1;
      let found = 0;
      const sources = await q<{ name: string }>(
        'list the sources under another key',
        `SELECT name FROM ${S}.sources WHERE key_id IS DISTINCT FROM $1 AND (access_token IS NOT NULL OR refresh_token IS NOT NULL OR session_cookies IS NOT NULL) ORDER BY name`,
        [current],
      );
      for (const { name } of sources.rows) {
        if (failed.has(`source ${name}`)) continue;
        found++;
        await rewrapRow(pool, target, `source ${name}`, failed, report, async (c) => {
          const { rows } = await c.query<Record<(typeof SOURCE_COLUMNS)[number], Buffer | null>>(`SELECT ${SOURCE_COLUMNS.join(', ')} FROM ${S}.sources WHERE name = $1 FOR UPDATE`, [name]);
          const row = rows[0];
          if (row === undefined) return false; // removed meanwhile
          const next = SOURCE_COLUMNS.map((col) => (row[col] === null ? null : rewrapped(ring, sourceSealedAt(name, col), row[col])));
          if (next.every((v, i) => v === row[SOURCE_COLUMNS[i]!])) {
            await c.query(`UPDATE ${S}.sources SET key_id = $2 WHERE name = $1`, [name, current]);
            return false;
          }
          await c.query(`UPDATE ${S}.sources SET access_token = $2, refresh_token = $3, session_cookies = $4, key_id = $5 WHERE name = $1`, [name, ...next, current]);
          return true;
        }).then((did) => {
          if (did) report.sources.rewrapped++;
          options.onRow?.('source', did);
        });
      }
      const entries = await q<{ keyspace: Keyspace; id_hash: Buffer }>(
        'list the entries under another key',
        `SELECT keyspace, id_hash FROM ${S}.entries WHERE key_id IS DISTINCT FROM $1 ORDER BY keyspace, id_hash`,
        [current],
      );
      for (const { keyspace, id_hash } of entries.rows) {
        const digest = id_hash.toString('hex');
        const label = `${keyspace} entry ${digest.slice(0, 12)}…`;
        if (failed.has(label)) continue;
        found++;
        await rewrapRow(pool, target, label, failed, report, async (c) => {
          const { rows } = await c.query<{ value: Buffer }>(`SELECT value FROM ${S}.entries WHERE keyspace = $1 AND id_hash = $2 FOR UPDATE`, [keyspace, id_hash]);
          const row = rows[0];
          if (row === undefined) return false; // consumed or swept meanwhile
          const next = rewrapped(ring, { table: 'entries', column: keyspace, row: digest }, row.value);
          await c.query(`UPDATE ${S}.entries SET value = $3, key_id = $4 WHERE keyspace = $1 AND id_hash = $2`, [keyspace, id_hash, next, current]);
          return next !== row.value;
        }).then((did) => {
          if (did) report.entries.rewrapped++;
          options.onRow?.('entry', did);
        });
      }
      if (found === 0) break;
    }
    const left = await q<{ n: string }>(
      'count the rows under another key',
      `SELECT (SELECT count(*) FROM ${S}.sources WHERE key_id IS DISTINCT FROM $1 AND (access_token IS NOT NULL OR refresh_token IS NOT NULL OR session_cookies IS NOT NULL))
            + (SELECT count(*) FROM ${S}.entries WHERE key_id IS DISTINCT FROM $1) AS n`,
      [current],
    );
    report.remaining = Number(left.rows[0]?.n ?? 0);
    report.sources.current = totalSources - report.sources.rewrapped;
    report.entries.current = totalEntries - report.entries.rewrapped;
    return report;
  } finally {
    await pool.end().catch(() => undefined);
  }
}

/** The value re-wrapped under the ring's current key (the same Buffer when it already is). */
function rewrapped(ring: MasterKeyring, at: SealedAt, sealed: Buffer): Buffer {
  return sealedKeyId(sealed) === ring.current.id ? sealed : rewrap(ring, at, sealed);
}

/** One row in one short transaction; a value that does not open is recorded, never rewritten. */
async function rewrapRow(pool: pg.Pool, target: PgTarget, label: string, failed: Set<string>, report: RotateKeyReport, work: (c: pg.PoolClient) => Promise<boolean>): Promise<boolean> {
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    throw storeError(target, `re-wrap the ${label}`, err);
  }
  try {
    await client.query('BEGIN');
    const did = await work(client);
    await client.query('COMMIT');
    return did;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    if (err instanceof LatchkeyError && (err.code === 'LK_STORE_KEY' || err.code === 'LK_STORE_CORRUPT')) {
      failed.add(label);
      report.failures.push({ row: label, code: err.code, message: err.message });
      return false;
    }
    throw storeError(target, `re-wrap the ${label}`, err);
  } finally {
    client.release();
  }
}
