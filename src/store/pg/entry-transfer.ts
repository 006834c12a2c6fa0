import type pg from 'pg';
import type { Keyspace } from '../store.js';
import { Secret } from '../../core/secret.js';
import type { EntryTransfer, RawEntry } from '../store-copy.js';
import { DEFAULT_TIMEOUTS, createPool, storeError } from './connection.js';
import { open, seal, type MasterKeyring, type SealedAt } from './envelope.js';
import { quoteIdent, type PgTarget } from './url.js';

const sealedAt = (keyspace: Keyspace, digest: string): SealedAt => ({ table: 'entries', column: keyspace, row: digest });

/**
 * `store copy` for the PostgreSQL store's keyspace entries, by the SHA-256 of their id (the
 * store keeps no id): a listing of the live entries, and a write that replaces an entry only by
 * one that expires later, atomically (`ON CONFLICT … WHERE`), so a writer racing the copy is
 * never overwritten with an older value. Values are opened and sealed with the store's keyring
 * for their own row (the AAD binds each to its keyspace and digest).
 */
export class PgEntryTransfer implements EntryTransfer {
  readonly #pool: pg.Pool;
  readonly #target: PgTarget;
  readonly #S: string;
  readonly #ring: () => Promise<MasterKeyring>;
  readonly #now: () => number;

  constructor(target: PgTarget, ring: () => Promise<MasterKeyring>, now: () => number = Date.now) {
    this.#target = target;
    this.#S = quoteIdent(target.schema);
    this.#pool = createPool(target, DEFAULT_TIMEOUTS, 1);
    this.#ring = ring;
    this.#now = now;
  }

  async rawEntries(keyspace: Keyspace): Promise<RawEntry[]> {
    const { rows } = await this.#query<{ id_hash: Buffer; value: Buffer; expires_at: string }>(
      `list the ${keyspace} entries`,
      `SELECT id_hash, value, expires_at FROM ${this.#S}.entries WHERE keyspace = $1 AND expires_at > $2 ORDER BY id_hash`,
      [keyspace, this.#now()],
    );
    const ring = await this.#ring();
    return rows.map((r) => {
      const digest = r.id_hash.toString('hex');
      return { digest, expiresAt: Number(r.expires_at), value: new Secret(open(ring, sealedAt(keyspace, digest), r.value)) };
    });
  }

  async putRawEntry(keyspace: Keyspace, entry: RawEntry): Promise<'copied' | 'unchanged' | 'kept_newer'> {
    const hash = Buffer.from(entry.digest, 'hex');
    const ring = await this.#ring();
    const { rows } = await this.#query<{ value: Buffer; expires_at: string }>(`read a ${keyspace} entry`, `SELECT value, expires_at FROM ${this.#S}.entries WHERE keyspace = $1 AND id_hash = $2`, [keyspace, hash]);
    const existing = rows[0];
    if (existing !== undefined) {
      if (open(ring, sealedAt(keyspace, entry.digest), existing.value) === entry.value.reveal()) return 'unchanged';
      if (Number(existing.expires_at) >= entry.expiresAt) return 'kept_newer';
    }
    const { rowCount } = await this.#query(
      `write a ${keyspace} entry`,
      `INSERT INTO ${this.#S}.entries (keyspace, id_hash, value, expires_at, key_id) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (keyspace, id_hash) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, key_id = EXCLUDED.key_id
       WHERE ${this.#S}.entries.expires_at < EXCLUDED.expires_at`,
      [keyspace, hash, seal(ring, sealedAt(keyspace, entry.digest), entry.value.reveal()), entry.expiresAt, ring.current.id],
    );
    return rowCount === 1 ? 'copied' : 'kept_newer';
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }

  async #query<R extends pg.QueryResultRow>(doing: string, text: string, values: unknown[]): Promise<pg.QueryResult<R>> {
    try {
      return await this.#pool.query<R>(text, values);
    } catch (err) {
      throw storeError(this.#target, doing, err);
    }
  }
}
