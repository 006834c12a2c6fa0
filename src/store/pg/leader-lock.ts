import pg from 'pg';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import type { LeaderInfo, LeaderLock, LeaderLockOptions } from '../store.js';
import { clientConfig, HOLDER, refusedStartupParameter, storeError, type BoundsVia, type PgTimeouts } from './connection.js';
import { quoteIdent, type PgTarget } from './url.js';

/** A PostgreSQL leader lock as held: the store contract's lock plus the epoch of this leadership. */
export interface PgLeaderLock extends LeaderLock {
  /** Incremented at every acquisition (`leader` table): stamp it on what the leader writes. */
  readonly epoch: number;
}

/** First key of the two-key advisory lock ('LK'); the second is the schema's hash. */
const LOCK_CLASS = 19531;
const HEARTBEAT_MS = 15_000;

/**
 * One keeper leads per store: a session-level advisory lock on a dedicated (non-pooled)
 * connection, plus an epoch. The lock lives exactly as long as that connection: a leader killed
 * (SIGKILL), a dropped connection or a server restart frees it for a standby at once.
 *
 * PgBouncer in transaction mode (or any pooler that multiplexes a client connection over
 * server connections) breaks a session lock without a word: the next statement may run on
 * another backend. Detected by asking, in a separate statement right after taking the lock and
 * at every heartbeat, whether the backend running that statement is the one holding the lock;
 * refused with LK_KEEPER (see docs/DESIGN.md "Fleet mode: claim before use", Leadership).
 */
export async function acquirePgLeaderLock(target: PgTarget, timeouts: PgTimeouts, options: LeaderLockOptions = {}, via: BoundsVia = 'startup'): Promise<PgLeaderLock> {
  const S = quoteIdent(target.schema);
  const path = `${target.location} (advisory lock ${LOCK_CLASS}/hash of schema "${target.schema}")`;
  const heartbeatMs = options.heartbeatMs ?? HEARTBEAT_MS;
  let announced = false;
  for (;;) {
    if (options.signal?.aborted) throw new LatchkeyError('LK_KEEPER', 'stopped while standing by for the keeper lock', { exitCode: ExitCode.ok });
    let gone = false;
    const client = await connectDirect(target, timeouts, via, () => {
      gone = true;
    });
    // Before any lock is taken (a session lock taken through a transaction pooler would stay on a
    // pooled server connection): is this connection ours alone?
    try {
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      const pooled = await multiplexed(target, timeouts, via, rows[0]!.pid);
      if (pooled !== undefined) throw pooled;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw storeError(target, 'check the keeper lock', err);
    }
    let got: { got: boolean; pid: number };
    try {
      const { rows } = await client.query<{ got: boolean; pid: number }>(`SELECT pg_try_advisory_lock($1, hashtext($2) & 2147483647) AS got, pg_backend_pid() AS pid`, [LOCK_CLASS, target.schema]);
      got = rows[0]!;
    } catch (err) {
      await client.end().catch(() => undefined);
      throw storeError(target, 'take the keeper lock', err);
    }
    if (got.got) {
      const problem = await sessionProblem(client, target, got.pid).catch((err: unknown) => storeError(target, 'check the keeper lock', err));
      if (problem !== undefined) {
        await client.query(`SELECT pg_advisory_unlock($1, hashtext($2) & 2147483647)`, [LOCK_CLASS, target.schema]).catch(() => undefined);
        await client.end().catch(() => undefined);
        throw problem;
      }
      let epoch: number;
      try {
        const { rows } = await client.query<{ epoch: string }>(
          `INSERT INTO ${S}.leader (name, epoch, holder_pid, holder_host, at) VALUES ('keeper', 1, $1, $2, now())
           ON CONFLICT (name) DO UPDATE SET epoch = ${S}.leader.epoch + 1, holder_pid = EXCLUDED.holder_pid, holder_host = EXCLUDED.holder_host, at = now() RETURNING epoch`,
          [process.pid, HOLDER],
        );
        epoch = Number(rows[0]!.epoch);
      } catch (err) {
        await client.end().catch(() => undefined);
        throw storeError(target, 'record the keeper leadership', err);
      }
      return held(client, target, S, path, got.pid, epoch, heartbeatMs, options, () => gone);
    }
    const holder = await readHolder(client, S).catch(() => undefined);
    await client.end().catch(() => undefined);
    if (!options.standby) {
      throw new LatchkeyError(
        'LK_KEEPER',
        `another keeper already leads the store ${target.location} (${describe(holder)}). Only one keeper may lead a store. Stop the other one, or run this one with --standby to take over when it stops.`,
        { exitCode: ExitCode.usage, fix: 'latchkey keeper --standby' },
      );
    }
    if (!announced) {
      announced = true;
      options.onStandby?.(holder);
    }
    await abortableSleep(Math.min(heartbeatMs, 1_000), options.signal);
  }
}

function held(client: pg.Client, target: PgTarget, S: string, path: string, pid: number, epoch: number, heartbeatMs: number, options: LeaderLockOptions, gone: () => boolean): PgLeaderLock {
  let lost = false;
  let beating: Promise<void> | undefined;
  const loseIt = async (): Promise<void> => {
    if (lost) return;
    lost = true;
    clearInterval(timer);
    options.onLost?.(undefined);
    await client.end().catch(() => undefined);
  };
  client.on('end', () => void loseIt());
  const timer = setInterval(() => {
    if (lost || beating) return;
    if (gone()) {
      void loseIt();
      return;
    }
    beating = (async () => {
      const problem = await sessionProblem(client, target, pid);
      if (problem !== undefined) return loseIt();
      await client.query(`UPDATE ${S}.leader SET at = now() WHERE name = 'keeper' AND epoch = $1`, [epoch]);
    })()
      .catch(async (err: unknown) => {
        // The dedicated connection broke: its session lock is gone with it.
        if (gone() || (err as { code?: string }).code === '57P01') return loseIt();
        options.onHeartbeatError?.(err);
      })
      .finally(() => {
        beating = undefined;
      });
  }, heartbeatMs);
  timer.unref();
  return {
    path,
    epoch,
    async release() {
      clearInterval(timer);
      await beating;
      if (lost) return;
      lost = true;
      await client.query(`SELECT pg_advisory_unlock($1, hashtext($2) & 2147483647)`, [LOCK_CLASS, target.schema]).catch(() => undefined);
      await client.end().catch(() => undefined);
    },
  };
}

/** A dedicated connection (not from any pool), with the bounds as the store's pool has them. */
async function connectDirect(target: PgTarget, timeouts: PgTimeouts, via: BoundsVia, onError: () => void): Promise<pg.Client> {
  for (const v of via === 'startup' ? (['startup', 'transaction'] as const) : (['transaction'] as const)) {
    const client = new pg.Client(clientConfig(target, timeouts, `latchkey-leader ${HOLDER}`.slice(0, 63), v));
    client.on('error', onError);
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => undefined);
      // A pooler refusing the bounds at startup: try without them (and find out below what it is).
      if (v === 'startup' && refusedStartupParameter(err)) continue;
      throw storeError(target, 'take the keeper lock', err);
    }
  }
  throw new LatchkeyError('LK_KEEPER', `cannot connect to ${target.location} for the keeper lock`);
}

/**
 * A second connection holds a transaction open and asks for its backend: if it is the backend
 * the lock was just taken on (`pid`), two client connections share one server connection, which
 * a pooler in transaction (or statement) mode does and a direct or session-mode connection never
 * does. PgBouncer hands the server connection released last to the next transaction, so the
 * probe catches it at once, before any lock is taken; the check after taking it and at every
 * heartbeat ({@link sessionProblem}) catches the rest.
 */
async function multiplexed(target: PgTarget, timeouts: PgTimeouts, via: BoundsVia, pid: number): Promise<LatchkeyError | undefined> {
  const probe = await connectDirect(target, timeouts, via, () => undefined);
  try {
    await probe.query('BEGIN');
    const { rows } = await probe.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    await probe.query('ROLLBACK');
    return rows[0]!.pid === pid ? pooledProblem(target, pid, rows[0]!.pid) : undefined;
  } finally {
    await probe.end().catch(() => undefined);
  }
}

function pooledProblem(target: PgTarget, pid: number, other: number): LatchkeyError {
  return new LatchkeyError(
    'LK_KEEPER',
    `keeper leadership needs a direct connection to PostgreSQL, but ${target.host}:${target.port} (database "${target.database}") shares server connections between client connections (the lock was taken on backend ${pid}; ${other === pid ? 'another client connection was then served by that same backend' : `the next statement ran on backend ${other}`}): a pooler in transaction mode (PgBouncer pool_mode=transaction) cannot hold a session-level lock. Point the keeper's LATCHKEY_STORE at the PostgreSQL server itself (or at PgBouncer in session mode); token, fetch and the gateway may keep using the pooler.`,
    { exitCode: ExitCode.usage },
  );
}

/**
 * Whether the lock taken on backend `pid` is held by the backend running this very statement.
 * A different backend: the client connection is multiplexed (PgBouncer in transaction mode).
 */
async function sessionProblem(client: pg.Client, target: PgTarget, pid: number): Promise<LatchkeyError | undefined> {
  const { rows } = await client.query<{ pid: number; held: boolean }>(
    `SELECT pg_backend_pid() AS pid, EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND granted AND classid = $1::oid AND objid = (hashtext($2) & 2147483647)::oid AND objsubid = 2) AS held`,
    [LOCK_CLASS, target.schema],
  );
  const r = rows[0]!;
  if (r.pid === pid && r.held) return undefined;
  return pooledProblem(target, pid, r.pid);
}

async function readHolder(client: pg.Client, S: string): Promise<LeaderInfo | undefined> {
  const { rows } = await client.query<{ holder_pid: number; holder_host: string; at: Date }>(`SELECT holder_pid, holder_host, at FROM ${S}.leader WHERE name = 'keeper'`);
  const r = rows[0];
  return r === undefined ? undefined : { pid: r.holder_pid, host: r.holder_host, at: r.at.getTime() };
}

function describe(h: LeaderInfo | undefined): string {
  return h === undefined ? 'holder unknown' : `pid ${h.pid} (${h.host}), its last heartbeat at ${new Date(h.at).toISOString()}`;
}

function abortableSleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
