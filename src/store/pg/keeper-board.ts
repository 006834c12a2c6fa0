import type { PoolClient } from 'pg';
import { LatchkeyError } from '../../core/errors.js';
import type { SharedKeeperSnapshot, SharedKeeperState } from '../store.js';
import { HOLDER } from './connection.js';

/** A statement on the store's pool, and a transaction on one of its connections (PgStore's own). */
export interface BoardDb {
  query<R extends object>(doing: string, text: string, values?: unknown[]): Promise<{ rows: R[] }>;
  transaction<T>(doing: string, work: (c: PoolClient) => Promise<T>): Promise<T>;
}

/**
 * The keeper board: what the leading keeper of a PostgreSQL store publishes (tables
 * `keeper_state`, one row per source, and `keeper_report`, migration 3) and what a standby
 * serves its dashboard from (docs/DESIGN.md "Fleet mode: keeper leadership").
 *
 * Every publish runs in one transaction that first reads the `leader` row `FOR SHARE`: a keeper
 * taking the lead bumps that row's epoch (leader-lock.ts), which waits for a publish under way
 * and is seen by every later one, so a deposed leader's publish — an epoch other than the
 * row's — is refused, never written over its successor's. The upserts also keep a row whose
 * epoch is newer than the writer's.
 */
const PUBLISH_CHUNK = 500;

export class PgKeeperBoard implements SharedKeeperState {
  readonly #db: BoardDb;
  readonly #S: string;
  /** The JSON of each source as last published, and the epoch it was published under. */
  #written = new Map<string, string>();
  #writtenEpoch: number | undefined;

  constructor(db: BoardDb, quotedSchema: string) {
    this.#db = db;
    this.#S = quotedSchema;
  }

  async publish(epoch: number, report: Record<string, unknown>, sources: ReadonlyMap<string, { health: unknown; dueAt: number | undefined }>): Promise<void> {
    const S = this.#S;
    const full = this.#writtenEpoch !== epoch;
    const next = new Map<string, string>();
    // In chunks, each one statement well within the statement timeout (10,000 sources are ~20 MB of JSON).
    const chunks: Array<Record<string, { health: unknown; dueAt: number | null }>> = [];
    let chunk: Record<string, { health: unknown; dueAt: number | null }> = {};
    let inChunk = 0;
    for (const [name, s] of sources) {
      const json = JSON.stringify(s);
      next.set(name, json);
      if (full || this.#written.get(name) !== json) {
        chunk[name] = { health: s.health, dueAt: s.dueAt ?? null };
        if (++inChunk === PUBLISH_CHUNK) {
          chunks.push(chunk);
          chunk = {};
          inChunk = 0;
        }
      }
    }
    if (inChunk > 0) chunks.push(chunk);
    const gone = full ? undefined : [...this.#written.keys()].filter((n) => !next.has(n));
    await this.#db.transaction('publish the keeper state', async (c) => {
      const { rows } = await c.query<{ epoch: string }>(`SELECT epoch FROM ${S}.leader WHERE name = 'keeper' FOR SHARE`);
      const current = rows[0] === undefined ? undefined : Number(rows[0].epoch);
      if (current !== epoch) throw deposed(epoch, current);
      for (const changed of chunks) {
        await c.query(
          `INSERT INTO ${S}.keeper_state AS k (source, health, due_at, epoch, updated_at)
           SELECT t.key, t.value->'health', (t.value->>'dueAt')::float8, $2, now() FROM jsonb_each($1::jsonb) AS t
           ON CONFLICT (source) DO UPDATE SET health = EXCLUDED.health, due_at = EXCLUDED.due_at, epoch = EXCLUDED.epoch, updated_at = now()
             WHERE k.epoch <= EXCLUDED.epoch`,
          [JSON.stringify(changed), epoch],
        );
      }
      // The first publish of a leadership says which sources there are: rows of sources it does
      // not know (removed from the config under an earlier leader) go.
      if (full) await c.query(`DELETE FROM ${S}.keeper_state WHERE NOT (source = ANY($1::text[])) AND epoch <= $2`, [[...next.keys()], epoch]);
      else if (gone && gone.length > 0) await c.query(`DELETE FROM ${S}.keeper_state WHERE source = ANY($1::text[]) AND epoch <= $2`, [gone, epoch]);
      await c.query(
        `INSERT INTO ${S}.keeper_report AS r (id, report, epoch, holder_pid, holder_host, updated_at) VALUES (1, $1::jsonb, $2, $3, $4, now())
         ON CONFLICT (id) DO UPDATE SET report = EXCLUDED.report, epoch = EXCLUDED.epoch, holder_pid = EXCLUDED.holder_pid, holder_host = EXCLUDED.holder_host, updated_at = now()
           WHERE r.epoch <= EXCLUDED.epoch`,
        [JSON.stringify(report), epoch, process.pid, HOLDER],
      );
    });
    this.#written = next;
    this.#writtenEpoch = epoch;
  }

  async read(): Promise<SharedKeeperSnapshot | undefined> {
    const S = this.#S;
    return this.#db.transaction('read the keeper state', async (c) => {
      // One snapshot for the three reads: the report and its sources as one publish left them.
      await c.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const leader = await c.query<{ epoch: string; holder_pid: number; holder_host: string; at: Date }>(`SELECT epoch, holder_pid, holder_host, at FROM ${S}.leader WHERE name = 'keeper'`);
      const report = await c.query<{ report: Record<string, unknown>; epoch: string }>(`SELECT report, epoch FROM ${S}.keeper_report WHERE id = 1`);
      if (report.rows[0] === undefined) return undefined;
      const sources = await c.query<{ sources: Record<string, unknown> | null }>(`SELECT jsonb_object_agg(source, health ORDER BY source) AS sources FROM ${S}.keeper_state`);
      const l = leader.rows[0];
      return {
        report: report.rows[0].report,
        sources: sources.rows[0]?.sources ?? {},
        epoch: Number(report.rows[0].epoch),
        leader: l === undefined ? undefined : { epoch: Number(l.epoch), pid: l.holder_pid, host: l.holder_host, at: l.at.getTime() },
      };
    });
  }
}

function deposed(epoch: number, current: number | undefined): LatchkeyError {
  return new LatchkeyError(
    'LK_KEEPER',
    `this keeper's leadership (epoch ${epoch}) is over: the store's keeper leader is at epoch ${current ?? 'none'}, so its state was not written (another keeper took the lead while this one was unresponsive or disconnected)`,
  );
}
