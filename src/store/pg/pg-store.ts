import { PgKeeperBoard } from './keeper-board.js';
import { PgDueWork } from './due-work.js';
import { createHash, randomUUID } from 'node:crypto';
import type pg from 'pg';
import { LatchkeyError } from '../../core/errors.js';
import { Secret } from '../../core/secret.js';
import type { SecretOpener } from '../store-document.js';
import { KEYSPACES, type Keyspace, type LeaderLock, type LeaderLockOptions, type SourceMeta, type SourceRecord, type Store, type StoreTx, type WithLockOptions } from '../store.js';
import { beginBounded, createPool, DEFAULT_TIMEOUTS, HOLDER, refusedStartupParameter, storeError, type BoundsVia, type PgTimeouts } from './connection.js';
import { open, rewrap, seal, type MasterKey, type MasterKeyring, type SealedAt } from './envelope.js';
import { masterKeyringFromEnv } from './master-keyring.js';
import { ClaimWakeups } from './claim-wakeups.js';
import { checkSchema, migrate, type MigrateResult } from './migrations.js';
import { META_COLUMNS, metaOfRow, RECORD_COLUMNS, RECORD_COLUMNS_OF_S, recordOfRow, rowValues, sourceSealedAt, WRITE_CASTS, WRITE_COLUMNS, type SourceRow } from './source-rows.js';
import { parsePgUrl, quoteIdent, type PgTarget } from './url.js';
import type { PgLeaderLock } from './leader-lock.js';
import { lazy } from '../../core/lazy.js';

/** Options of {@link PgStore}. */
export interface PgStoreOptions {
  /** `postgres://user:password@host:port/database[?schema=name]` (the schema defaults to `latchkey`). */
  url: string | { reveal(): string };
  /**
   * The master key(s) secrets are sealed with; default: `LATCHKEY_MASTER_KEY` from `env`
   * (resolved on the first secret sealed or opened, so metadata reads need no key).
   */
  masterKey?: MasterKey | MasterKeyring | (() => Promise<MasterKey | MasterKeyring>);
  env?: NodeJS.ProcessEnv;
  /** The clock keyspace expiry is judged by (default Date.now). */
  now?: () => number;
  /** How an opened secret's text becomes a Secret (default: wrapped as is). */
  openSecret?: SecretOpener;
  /** A claim's lease (default 30 s, above the 15 s token timeout); renewed every third of it while the work runs. */
  leaseMs?: number;
  /** How long {@link PgStore.withLock} waits for a claim (default 45 s). */
  lockTimeoutMs?: number;
  /**
   * Poll interval while a claim is held by another (default 25 ms, jittered); 250 ms once this
   * process listens for releases (LISTEN/NOTIFY wakes it at once; not behind a transaction pooler).
   */
  pollMs?: number;
  /** Listen for releases while waiting for a claim (default true; polling alone when false). */
  listen?: boolean;
  /** Connection bounds (statement, lock, idle-in-transaction, connect). */
  timeouts?: Partial<PgTimeouts>;
  /** Pool size (default 4). */
  poolSize?: number;
}

/** What a claim is while held (see "Fleet mode: claim before use" in docs/DESIGN.md). */
export interface Claim {
  key: string;
  id: string;
  generation: number;
  /** The previous holder, when this claim took over an expired lease. */
  tookOverFrom?: string;
}

interface ClaimState {
  open: boolean;
  /** Set when a renewal found the claim taken over. */
  lost?: string;
  /**
   * The key's source row as the claim read it (null: none), for the first `tx.read` while the
   * claim is young (`claimedRowUntil`, this process's monotonic clock); then undefined.
   */
  claimedRow?: SourceRow | null;
  claimedRowUntil?: number;
}

/** What the claim statement answers: the attempt's outcome, and the source row it claimed (its columns null when none). */
type ClaimRow = { status: string; generation: string; claim_holder: string | null; wait_ms: string } & SourceRow;

/**
 * Counters of every PgStore of this process (benchmarks and tests): claims taken, claim polls
 * that found the key busy, takeovers of expired leases, writes refused because the claim was lost.
 */
export const pgStoreCounters = { claims: 0, busyPolls: 0, takeovers: 0, lostClaimWrites: 0, reads: 0 };

const idHash = (id: string): Buffer => createHash('sha256').update(id, 'utf8').digest();
const entrySealedAt = (keyspace: Keyspace, hash: Buffer): SealedAt => ({ table: 'entries', column: keyspace, row: hash.toString('hex') });

function checkKeyspace(keyspace: Keyspace): void {
  if (!KEYSPACES.includes(keyspace)) throw new LatchkeyError('LK_USAGE', `unknown store keyspace "${String(keyspace)}" (known: ${KEYSPACES.join(', ')})`);
}
function checkId(keyspace: Keyspace, id: string): void {
  checkKeyspace(keyspace);
  if (typeof id !== 'string' || id === '') throw new LatchkeyError('LK_USAGE', `a ${keyspace} entry needs a non-empty id`);
}

/**
 * The PostgreSQL store (store contract v2; docs/DESIGN.md "Fleet mode: claim before use").
 *
 * Locks are claims in committed rows with a lease on the database's clock, never a transaction
 * or a lock held across the locked work: `withLock` claims, renews the lease while the work runs,
 * and every `tx` call is its own short statement or transaction that re-checks the claim (a write
 * is compare-and-set on the version and on the claim). Secrets are sealed per value
 * (src/store/pg/envelope.ts); metadata columns are plain, so {@link listMeta} opens nothing.
 */
export class PgStore implements Store {
  readonly location: string;
  readonly target: PgTarget;
  readonly #S: string;
  /** The claim statement: one attempt, and on success the row of the source it claimed (lk_source_row, migration 4). */
  readonly #claimSql: string;
  #pool: pg.Pool;
  /** How the connection bounds reach the server (switched to `transaction` behind a pooler that refuses them at startup). */
  #boundsVia: BoundsVia = 'startup';
  readonly #poolSize: number;
  readonly #timeouts: PgTimeouts;
  readonly #env: NodeJS.ProcessEnv;
  readonly #now: () => number;
  readonly #openSecret: SecretOpener;
  readonly #leaseMs: number;
  readonly #lockTimeoutMs: number;
  readonly #pollMs: number;
  readonly #masterKey: PgStoreOptions['masterKey'];
  #ready: Promise<void> | undefined;
  #sealingRing: Promise<MasterKeyring> | undefined;
  #closed = false;
  readonly #wakeups: ClaimWakeups;
  readonly #listen: boolean;
  readonly #leaders = new Set<LeaderLock>();

  constructor(options: PgStoreOptions) {
    this.target = parsePgUrl(options.url);
    this.location = this.target.location;
    this.#S = quoteIdent(this.target.schema);
    this.#claimSql = `SELECT c.status, c.generation, c.holder AS claim_holder, c.wait_ms, ${RECORD_COLUMNS_OF_S} FROM ${this.#S}.lk_claim($1, $2, $3, $4) c LEFT JOIN LATERAL ${this.#S}.lk_source_row($1, c.status) s ON true`;
    this.#timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.#poolSize = options.poolSize ?? 4;
    this.#pool = createPool(this.target, this.#timeouts, this.#poolSize);
    this.#env = options.env ?? process.env;
    this.#now = options.now ?? Date.now;
    this.#openSecret = options.openSecret ?? ((v) => new Secret(v));
    this.#leaseMs = options.leaseMs ?? 30_000;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 45_000;
    this.#pollMs = options.pollMs ?? 25;
    this.#masterKey = options.masterKey;
    this.#wakeups = new ClaimWakeups(this.target, this.#timeouts);
    this.#listen = options.listen ?? true;
  }

  /** The schema's tables (quoted), for modules built on this store (leader lock, fleet). */
  get schema(): string {
    return this.target.schema;
  }

  /** Applies the migrations this store's schema lacks (`latchkey migrate`); idempotent. */
  async migrate(): Promise<MigrateResult> {
    const client = await this.#connect('migrate the store');
    try {
      return await migrate(client, this.target.schema, this.location, this.#boundsVia === 'transaction' ? beginBounded(this.#timeouts) : 'BEGIN');
    } catch (err) {
      throw storeError(this.target, 'migrate the store', err);
    } finally {
      client.release();
    }
  }

  // ---- reads ---------------------------------------------------------------------------------

  async read(source: string): Promise<SourceRecord | undefined> {
    pgStoreCounters.reads++;
    const { rows } = await this.#query<SourceRow>(`read "${source}"`, `SELECT ${RECORD_COLUMNS} FROM ${this.#S}.sources WHERE name = $1`, [source]);
    const row = rows[0];
    return row === undefined ? undefined : recordOfRow(row, await this.#keys(), this.#openSecret);
  }

  async list(): Promise<Map<string, SourceRecord>> {
    const { rows } = await this.#query<SourceRow>('list the sources', `SELECT ${RECORD_COLUMNS} FROM ${this.#S}.sources ORDER BY name`);
    const out = new Map<string, SourceRecord>();
    if (rows.length === 0) return out;
    const ring = await this.#keys();
    for (const row of rows) out.set(row.name, recordOfRow(row, ring, this.#openSecret));
    return out;
  }

  async listMeta(): Promise<Map<string, SourceMeta>> {
    const { rows } = await this.#query<SourceRow>('list the sources', `SELECT ${META_COLUMNS} FROM ${this.#S}.sources ORDER BY name`);
    return new Map(rows.map((row) => [row.name, metaOfRow(row)]));
  }

  // ---- the lock: claim before use ------------------------------------------------------------

  async withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>, options: WithLockOptions = {}): Promise<T> {
    const { claim, row, sentAt } = await this.#claim(key, options.timeoutMs ?? this.#lockTimeoutMs, options);
    const state: ClaimState = { open: true, claimedRow: row, claimedRowUntil: sentAt + this.#leaseMs / 2 };
    let renewing: Promise<void> | undefined;
    const timer = setInterval(() => {
      renewing ??= this.renew(claim)
        .then((ours) => {
          if (!ours) state.lost = `its lease expired and another process took it over`;
        })
        .catch(() => undefined) // the database is unreachable: the lease runs on; the next tick tries again
        .finally(() => {
          renewing = undefined;
        });
    }, Math.max(50, Math.floor(this.#leaseMs / 3)));
    timer.unref();
    try {
      return await fn(this.#tx(claim, state));
    } finally {
      state.open = false;
      clearInterval(timer);
      await renewing;
      await this.release(claim).catch(() => undefined); // not released: the lease runs out, then peers take over
    }
  }

  /**
   * Claims `key` (waiting up to `timeoutMs` while a live lease holds it): one committed statement
   * (`lk_claim`), then the claim is ours until released or its lease expires. Exported for the
   * fleet's own locked work; {@link withLock} is the usual way.
   */
  async claim(key: string, timeoutMs: number, wait: Pick<WithLockOptions, 'whileWaiting' | 'signal'> = {}): Promise<Claim> {
    return (await this.#claim(key, timeoutMs, wait)).claim;
  }

  /**
   * {@link claim}, and the source row named `key` as the claim found it (null: none), read in the
   * same statement (`lk_source_row`, migration 4): the first `tx.read` of the key needs no round
   * trip of its own, so a refresh sends its refresh token one round trip after its claim.
   */
  async #claim(key: string, timeoutMs: number, wait: Pick<WithLockOptions, 'whileWaiting' | 'signal'>): Promise<{ claim: Claim; row: SourceRow | null; sentAt: number }> {
    const id = randomUUID();
    const deadline = Date.now() + timeoutMs;
    const digest = ClaimWakeups.digest(key);
    let listening = false;
    let waited = false;
    for (;;) {
      if (wait.signal?.aborted || (waited && wait.whileWaiting !== undefined && (await wait.whileWaiting()))) {
        throw new LatchkeyError('LK_LOCK_TIMEOUT', `stopped waiting for the lock of "${key}" in ${this.location} (the caller no longer needs it)`);
      }
      const heard = this.#wakeups.heard(digest);
      const listeningBefore = this.#wakeups.listening;
      const sentAt = performance.now();
      const { rows } = await this.#query<ClaimRow>(`claim the lock of "${key}"`, this.#claimSql, [key, id, HOLDER, this.#leaseMs]);
      const r = rows[0]!;
      if (r.status === 'claimed' || r.status === 'taken_over') {
        pgStoreCounters.claims++;
        const claim: Claim = { key, id, generation: Number(r.generation) };
        if (r.status === 'taken_over') {
          pgStoreCounters.takeovers++;
          claim.tookOverFrom = r.claim_holder ?? 'unknown';
        }
        return { claim, row: r.name === null ? null : r, sentAt };
      }
      const waitMs = Number(r.wait_ms);
      if (r.status === 'quarantined') {
        throw new LatchkeyError(
          'LK_LOCK_TIMEOUT',
          `the lock of "${key}" in ${this.location} is quarantined for ${waitMs} ms more: its holder ${r.claim_holder ?? ''} lost its lease mid-work and may still save what it did, so no one else may act on it before then`,
        );
      }
      pgStoreCounters.busyPolls++;
      waited = true;
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new LatchkeyError('LK_LOCK_TIMEOUT', `timed out after ${timeoutMs} ms waiting for the lock of "${key}" in ${this.location}, held by ${r.claim_holder ?? 'another process'} (claim ${r.generation}, lease ends in ${waitMs} ms)`);
      }
      if (!listening && this.#listen) {
        listening = await this.#wakeups.start(this.#boundsVia);
        // Listening from now on: a release between this attempt and the LISTEN was not heard, so
        // try once more at once, unless the process was listening before the attempt (then the
        // release is counted in heard(), and the wait below returns at once). At a refresh due
        // in a fleet, that spares every waiting process a read and a claim while the holder
        // claims, reads and calls the IdP.
        if (listening && !listeningBefore) continue;
      }
      await this.#wakeups.wait(digest, Math.min(left, waitMs + 1, listening && this.#wakeups.listening ? 250 : this.#pollMs * (0.5 + Math.random())), heard);
    }
  }

  /** Extends a live claim's lease; false when it is no longer ours (taken over after it expired). */
  async renew(claim: Claim): Promise<boolean> {
    const { rowCount } = await this.#query(
      `renew the lease of "${claim.key}"`,
      `UPDATE ${this.#S}.claims SET lease_until = now() + $3 * interval '1 millisecond' WHERE key = $1 AND claim_id = $2`,
      [claim.key, claim.id, this.#leaseMs],
    );
    return rowCount === 1;
  }

  /** Lets go of a claim (if it is still ours). */
  async release(claim: Claim): Promise<void> {
    // Committed with the release, the notification wakes the processes waiting for this key.
    await this.#query(
      `release the lock of "${claim.key}"`,
      `WITH released AS (UPDATE ${this.#S}.claims SET claim_id = NULL, lease_until = now() WHERE key = $1 AND claim_id = $2 RETURNING key) SELECT pg_notify($3, $4) FROM released`,
      [claim.key, claim.id, this.#wakeups.channel, ClaimWakeups.digest(claim.key)],
    );
  }

  #lost(claim: Claim, why: string): LatchkeyError {
    pgStoreCounters.lostClaimWrites++;
    return new LatchkeyError('LK_CLAIM_LOST', `the claim on "${claim.key}" (claim ${claim.generation}) was lost: ${why}; nothing was written`);
  }

  #tx(claim: Claim, state: ClaimState): StoreTx {
    const lockKey = claim.key;
    const bound = (what: string, key?: string): void => {
      if (!state.open) throw new LatchkeyError('LK_STORE_IO', `a ${what}${key === undefined ? '' : ` of "${key}"`} came after its lock was released; nothing was written`);
      if (key !== undefined && key !== lockKey) throw new LatchkeyError('LK_STORE_IO', `a ${what} of "${key}" under the lock of "${lockKey}": each key is written under its own lock; nothing was written`);
      if (state.lost !== undefined) throw this.#lost(claim, state.lost);
    };
    // One short transaction holding the claim row: the claim is ours for the whole of it (a
    // takeover has to wait for the row, then finds the work committed).
    const underClaim = async <T>(doing: string, work: (c: pg.PoolClient) => Promise<T>): Promise<T> =>
      this.#transaction(doing, async (c) => {
        const { rowCount } = await c.query(`SELECT 1 FROM ${this.#S}.claims WHERE key = $1 AND claim_id = $2 FOR UPDATE`, [lockKey, claim.id]);
        if (rowCount !== 1) throw this.#lost(claim, 'its lease expired and another process took it over');
        return work(c);
      });
    const S = this.#S;
    return {
      read: async (key) => {
        bound('read', key);
        pgStoreCounters.reads++;
        // The first read of the claimed key: the row the claim statement read, after claiming, as
        // long as the claim is surely still ours (less than half its lease since the claim was
        // sent, by this process's monotonic clock: a process paused longer, say by SIGSTOP, reads
        // and checks the claim like any later read does).
        const claimed = state.claimedRow;
        state.claimedRow = undefined;
        if (claimed !== undefined && performance.now() < (state.claimedRowUntil ?? 0)) {
          return claimed === null ? undefined : recordOfRow(claimed, await this.#keys(), this.#openSecret);
        }
        const { rows } = await this.#query<SourceRow & { ours: boolean | null }>(
          `read "${key}"`,
          `SELECT c.claim_id IS NOT DISTINCT FROM $2::uuid AS ours, ${RECORD_COLUMNS_OF_S} FROM ${S}.claims c LEFT JOIN ${S}.sources s ON s.name = c.key WHERE c.key = $1`,
          [key, claim.id],
        );
        const row = rows[0];
        if (!row?.ours) throw this.#lost(claim, 'its lease expired and another process took it over');
        return row.name === null ? undefined : recordOfRow(row, await this.#keys(), this.#openSecret);
      },
      write: async (key, record, expectedVersion) => {
        bound('write', key);
        state.claimedRow = undefined;
        const values = rowValues(key, record, await this.#sealingKeys());
        const written = await this.#casWrite(claim, key, values, expectedVersion);
        return { ...record, version: written } as SourceRecord;
      },
      remove: async (key, expectedVersion) => {
        bound('removal', key);
        state.claimedRow = undefined;
        await underClaim(`remove "${key}"`, async (c) => {
          const { rows } = await c.query<{ version: string }>(`SELECT version FROM ${S}.sources WHERE name = $1 FOR UPDATE`, [key]);
          const current = rows[0];
          if (current === undefined) return;
          if (expectedVersion !== undefined && Number(current.version) !== expectedVersion) {
            throw new LatchkeyError('LK_STORE_CONFLICT', `store record for "${key}" changed underneath`, { source: key });
          }
          await c.query(`DELETE FROM ${S}.sources WHERE name = $1`, [key]);
        });
      },
      getEntry: async (keyspace, id) => {
        bound(`read of a ${keyspace} entry`);
        checkId(keyspace, id);
        const hash = idHash(id);
        const { rows } = await this.#query<{ ours: boolean; value: Buffer | null }>(
          `read a ${keyspace} entry`,
          `SELECT c.claim_id IS NOT DISTINCT FROM $4::uuid AS ours, e.value FROM ${S}.claims c LEFT JOIN ${S}.entries e ON e.keyspace = $1 AND e.id_hash = $2 AND e.expires_at > $3 WHERE c.key = $5`,
          [keyspace, hash, this.#now(), claim.id, lockKey],
        );
        const row = rows[0];
        if (!row?.ours) throw this.#lost(claim, 'its lease expired and another process took it over');
        return row.value === null ? undefined : this.#openSecret(open(await this.#keys(), entrySealedAt(keyspace, hash), row.value));
      },
      putEntry: async (keyspace, id, value, ttlMs) => {
        bound(`write of a ${keyspace} entry`);
        const put = await this.#entryValues(keyspace, id, value, ttlMs);
        await underClaim(`write a ${keyspace} entry`, (c) => c.query(this.#putSql(), put));
      },
      deleteEntry: async (keyspace, id) => {
        bound(`removal of a ${keyspace} entry`);
        checkId(keyspace, id);
        return underClaim(`remove a ${keyspace} entry`, async (c) => {
          const { rowCount } = await c.query(`DELETE FROM ${S}.entries WHERE keyspace = $1 AND id_hash = $2`, [keyspace, idHash(id)]);
          return rowCount === 1;
        });
      },
    };
  }

  /**
   * Compare-and-set of a source row on its version **and** on the claim, in one statement (the
   * crash window of a refresh ends with it: one round trip): the claim row is locked first
   * (`FOR UPDATE` in the CTE, the same order as a takeover's), so a takeover either committed
   * before (no row written) or waits until this has committed. The new version.
   */
  async #casWrite(claim: Claim, key: string, values: unknown[], expectedVersion: number): Promise<number> {
    const S = this.#S;
    const n = values.length;
    const params = WRITE_COLUMNS.map((col, i) => `$${i + 2}::${WRITE_CASTS[col]}`);
    const held = `WITH held AS (SELECT 1 FROM ${S}.claims WHERE key = $${n + 2} AND claim_id = $${n + 3}::uuid FOR UPDATE)`;
    // Committed with the write, the notification wakes the processes waiting for this key at
    // once: they read and serve what was written (whileWaiting) without waiting for the release.
    const woke = `pg_notify($${n + 4}, $${n + 5})`;
    const { rows } =
      expectedVersion === 0
        ? await this.#query<{ version: string }>(
            `write "${key}"`,
            `${held} INSERT INTO ${S}.sources (name, version, ${WRITE_COLUMNS.join(', ')}) SELECT $1, 1, ${params.join(', ')} WHERE EXISTS (SELECT 1 FROM held) ON CONFLICT (name) DO NOTHING RETURNING version, ${woke}`,
            [key, ...values, claim.key, claim.id, this.#wakeups.channel, ClaimWakeups.digest(claim.key)],
          )
        : await this.#query<{ version: string }>(
            `write "${key}"`,
            `${held} UPDATE ${S}.sources SET version = version + 1, updated_at = now(), ${WRITE_COLUMNS.map((col, i) => `${col} = ${params[i]!}`).join(', ')} WHERE name = $1 AND version = $${n + 6} AND EXISTS (SELECT 1 FROM held) RETURNING version, ${woke}`,
            [key, ...values, claim.key, claim.id, this.#wakeups.channel, ClaimWakeups.digest(claim.key), expectedVersion],
          );
    if (rows[0] !== undefined) return Number(rows[0].version);
    // Not written: say why (the claim lost, or the version moved on).
    const { rows: why } = await this.#query<{ ours: boolean | null; version: string | null }>(
      `check the write of "${key}"`,
      `SELECT (SELECT claim_id = $2::uuid FROM ${S}.claims WHERE key = $3) AS ours, (SELECT version FROM ${S}.sources WHERE name = $1) AS version`,
      [key, claim.id, claim.key],
    );
    if (why[0]?.ours !== true) throw this.#lost(claim, 'its lease expired and another process took it over');
    const found = why[0].version === null ? 0 : Number(why[0].version);
    throw new LatchkeyError('LK_STORE_CONFLICT', `store record for "${key}" changed underneath (expected version ${expectedVersion}, found ${found})`, { source: key });
  }

  // ---- keyspaces -----------------------------------------------------------------------------

  #putSql(): string {
    return `INSERT INTO ${this.#S}.entries (keyspace, id_hash, value, expires_at, key_id) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (keyspace, id_hash) DO UPDATE SET value = EXCLUDED.value, expires_at = EXCLUDED.expires_at, key_id = EXCLUDED.key_id`;
  }

  async #entryValues(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<unknown[]> {
    checkId(keyspace, id);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new LatchkeyError('LK_USAGE', `a ${keyspace} entry needs a positive lifetime (got ${String(ttlMs)} ms)`);
    const ring = await this.#sealingKeys();
    const hash = idHash(id);
    return [keyspace, hash, seal(ring, entrySealedAt(keyspace, hash), value.reveal()), this.#now() + ttlMs, ring.current.id];
  }

  async put(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void> {
    const values = await this.#entryValues(keyspace, id, value, ttlMs);
    await this.#query(`write a ${keyspace} entry`, this.#putSql(), values);
  }

  async get(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    checkId(keyspace, id);
    const hash = idHash(id);
    const { rows } = await this.#query<{ value: Buffer }>(`read a ${keyspace} entry`, `SELECT value FROM ${this.#S}.entries WHERE keyspace = $1 AND id_hash = $2 AND expires_at > $3`, [keyspace, hash, this.#now()]);
    const row = rows[0];
    return row === undefined ? undefined : this.#openSecret(open(await this.#keys(), entrySealedAt(keyspace, hash), row.value));
  }

  async delete(keyspace: Keyspace, id: string): Promise<boolean> {
    checkId(keyspace, id);
    const { rowCount } = await this.#query(`remove a ${keyspace} entry`, `DELETE FROM ${this.#S}.entries WHERE keyspace = $1 AND id_hash = $2`, [keyspace, idHash(id)]);
    return rowCount === 1;
  }

  /** `DELETE … RETURNING`: one statement, so of N concurrent consumers exactly one gets the row. */
  async consume(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    checkId(keyspace, id);
    const hash = idHash(id);
    const { rows } = await this.#query<{ value: Buffer; expires_at: number }>(
      `consume a ${keyspace} entry`,
      `DELETE FROM ${this.#S}.entries WHERE keyspace = $1 AND id_hash = $2 RETURNING value, expires_at`,
      [keyspace, hash],
    );
    const row = rows[0];
    if (row === undefined || Number(row.expires_at) <= this.#now()) return undefined;
    return this.#openSecret(open(await this.#keys(), entrySealedAt(keyspace, hash), row.value));
  }

  async sweep(): Promise<number> {
    const { rowCount } = await this.#query('sweep expired entries', `DELETE FROM ${this.#S}.entries WHERE expires_at <= $1`, [this.#now()]);
    // Claim rows of keys nobody has claimed for a day (old sessions' lock keys): not entries, not counted.
    await this.#query('sweep idle claims', `DELETE FROM ${this.#S}.claims WHERE claim_id IS NULL AND (quarantine_until IS NULL OR quarantine_until < now()) AND claimed_at < now() - interval '1 day'`);
    return rowCount ?? 0;
  }

  // ---- master keys (for `latchkey rotate-key`) ------------------------------------------------

  /**
   * Registers the ring's current key as one that may seal. Rarely needed: a store whose ring
   * holds an active key in `previous` registers its new current key by itself on its first
   * write (a rotation in progress). Idempotent; re-activates a retired key.
   */
  async registerCurrentKey(): Promise<void> {
    const ring = await this.#keys();
    const id = ring.current.id;
    await this.#query(
      'register the master key',
      `INSERT INTO ${this.#S}.master_keys (id, check_value) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET active = true, retired_at = NULL`,
      [id, seal(ring, { table: 'master_keys', column: 'check_value', row: id }, 'latchkey master key check')],
    );
    this.#sealingRing = undefined;
  }

  /**
   * Re-wraps the data keys of up to `limit` rows (of `sources`, then `entries`) whose values are
   * not yet under the ring's current key; the ciphertexts and the record versions are unchanged
   * (the content is the same). Each value is authenticated first: a tampered one throws naming
   * it, and nothing of its row is rewritten. Rows being written right now are skipped (`FOR
   * UPDATE SKIP LOCKED`) for a later call. Returns how many rows were re-wrapped (0: none left).
   */
  async rewrapBatch(limit = 100): Promise<number> {
    const ring = await this.#keys();
    const id = ring.current.id;
    const S = this.#S;
    return this.#transaction('re-wrap stored values', async (c) => {
      let done = 0;
      const { rows } = await c.query<{ name: string; access_token: Buffer | null; refresh_token: Buffer | null; session_cookies: Buffer | null }>(
        `SELECT name, access_token, refresh_token, session_cookies FROM ${S}.sources WHERE key_id IS DISTINCT FROM $1 AND (access_token IS NOT NULL OR refresh_token IS NOT NULL OR session_cookies IS NOT NULL) LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [id, limit],
      );
      for (const r of rows) {
        const again = (col: 'access_token' | 'refresh_token' | 'session_cookies'): Buffer | null => (r[col] ? rewrap(ring, sourceSealedAt(r.name, col), r[col]) : null);
        await c.query(`UPDATE ${S}.sources SET access_token = $2, refresh_token = $3, session_cookies = $4, key_id = $5 WHERE name = $1`, [r.name, again('access_token'), again('refresh_token'), again('session_cookies'), id]);
        done++;
      }
      if (done >= limit) return done;
      const { rows: entries } = await c.query<{ keyspace: Keyspace; id_hash: Buffer; value: Buffer }>(
        `SELECT keyspace, id_hash, value FROM ${S}.entries WHERE key_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [id, limit - done],
      );
      for (const e of entries) {
        await c.query(`UPDATE ${S}.entries SET value = $3, key_id = $4 WHERE keyspace = $1 AND id_hash = $2`, [e.keyspace, e.id_hash, rewrap(ring, entrySealedAt(e.keyspace, e.id_hash), e.value), id]);
        done++;
      }
      return done;
    });
  }

  /**
   * Retires a master key (the last step of a rotation): refused while any stored value is still
   * sealed with it. Writers still holding it are refused from their next check (within a minute).
   */
  async retireKey(keyId: string): Promise<void> {
    const S = this.#S;
    await this.#transaction('retire the master key', async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`latchkey master keys ${this.target.schema}`]);
      const { rows } = await c.query<{ n: string }>(`SELECT (SELECT count(*) FROM ${S}.sources WHERE key_id = $1) + (SELECT count(*) FROM ${S}.entries WHERE key_id = $1) AS n`, [keyId]);
      if (Number(rows[0]!.n) > 0) throw new LatchkeyError('LK_STORE_KEY', `master key ${keyId} still seals ${rows[0]!.n} stored values of ${this.location}: re-wrap them first; nothing was retired`);
      await c.query(`UPDATE ${S}.master_keys SET active = false, retired_at = now() WHERE id = $1`, [keyId]);
    });
  }

  // ---- leadership, lifecycle -----------------------------------------------------------------

  /** The store's leader lock: a session-level advisory lock on a dedicated connection, plus an epoch (src/store/pg/leader-lock.ts). */
  async leaderLock(options: LeaderLockOptions = {}): Promise<PgLeaderLock> {
    await this.#ensureReady();
    const { acquirePgLeaderLock } = await import('./leader-lock.js');
    const lock = await acquirePgLeaderLock(this.target, this.#timeouts, options, this.#boundsVia);
    this.#leaders.add(lock);
    return {
      path: lock.path,
      epoch: lock.epoch,
      release: async () => {
        this.#leaders.delete(lock);
        await lock.release();
      },
    };
  }

  /**
   * The due-work picker for this store's keeper leader (src/store/pg/due-work.ts); close it when
   * done. A pick lease of 15 s: it covers a refresh waiting for a slot, and a keeper taking over
   * from one that died mid-pick waits no longer than that for those sources (the refresh's own
   * claim, not the pick, is what keeps two refreshes apart).
   */
  dueWork(): PgDueWork {
    return new PgDueWork(this.target, { pickLeaseMs: 15_000 });
  }

  /** Where the leading keeper publishes its report for standbys (src/store/pg/keeper-board.ts). */
  sharedKeeperState(): PgKeeperBoard {
    return new PgKeeperBoard(
      {
        query: (doing, text, values) => this.#query(doing, text, values),
        transaction: (doing, work) => this.#transaction(doing, work),
      },
      this.#S,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const lock of [...this.#leaders]) await lock.release().catch(() => undefined);
    await this.#wakeups.close();
    await this.#pool.end().catch(() => undefined);
  }

  // ---- plumbing ------------------------------------------------------------------------------

  /** The master key ring, resolved once (a failure is not kept: the next call tries again). */
  readonly #keys = lazy(async (): Promise<MasterKeyring> => {
    const given = this.#masterKey;
    const k = typeof given === 'function' ? await given() : (given ?? (await masterKeyringFromEnv(this.#env)));
    return 'current' in k ? k : { current: k };
  });

  /**
   * The ring to seal with, once its current key is proven to be one this store accepts (an active
   * row of `master_keys`; the first writer of a store registers its key, unless values sealed
   * with another key are already stored). A machine with a wrong key is refused before it seals
   * anything: it can never leave rows that only it can read. Memoised (a failure is not kept).
   */
  #sealingKeys(): Promise<MasterKeyring> {
    if (this.#sealingRing === undefined) {
      const checking = (async () => {
        const ring = await this.#keys();
        const id = ring.current.id;
        const at: SealedAt = { table: 'master_keys', column: 'check_value', row: id };
        const S = this.#S;
        await this.#transaction('check the master key', async (c) => {
          await c.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`latchkey master keys ${this.target.schema}`]);
          const { rows } = await c.query<{ id: string; active: boolean; check_value: Buffer }>(`SELECT id, active, check_value FROM ${S}.master_keys`);
          const mine = rows.find((r) => r.id === id);
          if (mine?.active) {
            open(ring, at, mine.check_value); // throws if the row was forged for this id
            return;
          }
          const active = rows.filter((r) => r.active).map((r) => r.id);
          // A key rotation in progress (LATCHKEY_MASTER_KEY = the new key, the old one in the
          // ring's `previous`): holding an active key proves the right to register the new one.
          const vouching = [...(ring.previous?.values() ?? [])].find((k) => active.includes(k.id));
          if (mine === undefined && vouching !== undefined) {
            const row = rows.find((r) => r.id === vouching.id)!;
            open({ current: vouching }, { table: 'master_keys', column: 'check_value', row: vouching.id }, row.check_value);
            await c.query(`INSERT INTO ${S}.master_keys (id, check_value) VALUES ($1, $2)`, [id, seal(ring, at, 'latchkey master key check')]);
            return;
          }
          if (active.length === 0) {
            const { rows: foreign } = await c.query<{ key_id: string }>(
              `(SELECT key_id FROM ${S}.sources WHERE key_id IS NOT NULL AND key_id <> $1 LIMIT 1) UNION ALL (SELECT key_id FROM ${S}.entries WHERE key_id <> $1 LIMIT 1)`,
              [id],
            );
            if (foreign[0] === undefined) {
              await c.query(`INSERT INTO ${S}.master_keys (id, check_value) VALUES ($1, $2)`, [id, seal(ring, at, 'latchkey master key check')]);
              return;
            }
            active.push(foreign[0].key_id);
          }
          throw new LatchkeyError(
            'LK_STORE_KEY',
            `the master key given (${id}) is not a key of the store ${this.location}, whose values are sealed with ${active.join(', ')}${mine ? ` (${id} was retired by a key rotation)` : ''}: set LATCHKEY_MASTER_KEY to the store's key on this machine; nothing was written`,
          );
        });
        return ring;
      })();
      this.#sealingRing = checking;
      checking.catch(() => {
        if (this.#sealingRing === checking) this.#sealingRing = undefined;
      });
      // Checked again after a minute: a key retired by a rotation stops sealing within it.
      setTimeout(() => {
        if (this.#sealingRing === checking) this.#sealingRing = undefined;
      }, 60_000).unref();
    }
    return this.#sealingRing;
  }

  /** The schema check, once per store (a failure is not kept). */
  #ensureReady(): Promise<void> {
    if (this.#ready === undefined) {
      const checking = (async () => {
        let client: pg.PoolClient | undefined;
        try {
          client = await this.#acquire();
          await checkSchema(client, this.target.schema, this.location);
        } catch (err) {
          throw storeError(this.target, `open the store ${this.location}`, err);
        } finally {
          client?.release();
        }
      })();
      this.#ready = checking;
      checking.catch(() => {
        if (this.#ready === checking) this.#ready = undefined;
      });
    }
    return this.#ready;
  }

  async #connect(doing: string): Promise<pg.PoolClient> {
    if (this.#closed) throw new LatchkeyError('LK_STORE_IO', `cannot ${doing}: the store ${this.location} was closed`);
    try {
      return await this.#acquire();
    } catch (err) {
      throw storeError(this.target, doing, err);
    }
  }

  /**
   * A pooled connection. A pooler that refuses the bounds as startup parameters (PgBouncer in
   * any mode: "unsupported startup parameter") switches the store, once, to a pool without them
   * and `SET LOCAL` bounds in every transaction: the bounds hold either way.
   */
  async #acquire(): Promise<pg.PoolClient> {
    try {
      return await this.#pool.connect();
    } catch (err) {
      if (this.#boundsVia !== 'startup' || !refusedStartupParameter(err)) throw err;
      const old = this.#pool;
      this.#boundsVia = 'transaction';
      this.#pool = createPool(this.target, this.#timeouts, this.#poolSize, 'transaction');
      await old.end().catch(() => undefined);
      return this.#pool.connect();
    }
  }

  /**
   * The bounds as the server applies them to this store's statements (`current_setting`, read
   * the way every statement runs: on a pooled connection, or in a bounded transaction behind a
   * pooler). For diagnostics and tests.
   */
  async connectionBounds(): Promise<{ statementTimeout: string; lockTimeout: string; idleInTransactionSessionTimeout: string }> {
    const { rows } = await this.#query<{ s: string; l: string; i: string }>(
      'read the connection bounds',
      `SELECT current_setting('statement_timeout') AS s, current_setting('lock_timeout') AS l, current_setting('idle_in_transaction_session_timeout') AS i`,
    );
    const r = rows[0]!;
    return { statementTimeout: r.s, lockTimeout: r.l, idleInTransactionSessionTimeout: r.i };
  }

  /** How the bounds reach the server (`transaction`: behind a pooler such as PgBouncer). */
  get boundsVia(): BoundsVia {
    return this.#boundsVia;
  }

  async #query<R extends object = Record<string, unknown>>(doing: string, text: string, values?: unknown[]): Promise<{ rows: R[]; rowCount: number | null }> {
    if (this.#closed) throw new LatchkeyError('LK_STORE_IO', `cannot ${doing}: the store ${this.location} was closed`);
    await this.#ensureReady();
    // Behind a pooler, every statement runs in a transaction that sets the bounds first.
    if (this.#boundsVia === 'transaction') {
      return this.#transaction(doing, async (c) => {
        const r = await c.query(text, values);
        return { rows: r.rows as R[], rowCount: r.rowCount };
      });
    }
    try {
      const r = await this.#pool.query(text, values);
      return { rows: r.rows as R[], rowCount: r.rowCount };
    } catch (err) {
      throw storeError(this.target, doing, err);
    }
  }

  async #transaction<T>(doing: string, work: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    await this.#ensureReady();
    const c = await this.#connect(doing);
    let broken: unknown;
    try {
      await c.query(this.#boundsVia === 'transaction' ? beginBounded(this.#timeouts) : 'BEGIN');
      const result = await work(c);
      await c.query('COMMIT');
      return result;
    } catch (err) {
      broken = err;
      await c.query('ROLLBACK').catch(() => undefined);
      throw storeError(this.target, doing, err);
    } finally {
      // A connection that broke mid-transaction is not given back to the pool.
      c.release(broken !== undefined && !(broken instanceof LatchkeyError) ? (broken as Error) : undefined);
    }
  }
}
