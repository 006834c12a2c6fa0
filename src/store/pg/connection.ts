import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import type { PgTarget } from './url.js';

/** Per-connection bounds (docs/DESIGN.md "Fleet mode: claim before use", Connections). */
export interface PgTimeouts {
  /** `statement_timeout` (default 5 s): no statement of the store runs longer. */
  statementTimeoutMs: number;
  /** `lock_timeout` (default 3 s): no row lock is waited for longer. */
  lockTimeoutMs: number;
  /** `idle_in_transaction_session_timeout` (default 10 s): a transaction left open by a stopped process ends. */
  idleInTransactionMs: number;
  /** How long a new connection may take (default 5 s). */
  connectTimeoutMs: number;
}

export const DEFAULT_TIMEOUTS: PgTimeouts = { statementTimeoutMs: 5_000, lockTimeoutMs: 3_000, idleInTransactionMs: 10_000, connectTimeoutMs: 5_000 };

/** Who this process is in claims and leader rows: pid, host, and a nonce (two containers may share pid and host name). */
export const HOLDER = `${process.pid}@${hostname()}#${randomBytes(3).toString('hex')}`;

/**
 * How the bounds reach the server: as startup parameters of every connection (the default), or,
 * through a pooler that refuses them (PgBouncer: "unsupported startup parameter"), with
 * `SET LOCAL` at the start of every transaction (each statement of the store then runs in one).
 */
export type BoundsVia = 'startup' | 'transaction';

/** The client config of every connection of the store: the timeouts are startup parameters, set on every connection. */
export function clientConfig(target: PgTarget, timeouts: PgTimeouts, applicationName: string, via: BoundsVia = 'startup'): pg.ClientConfig {
  return {
    connectionString: target.connectionString.reveal(),
    ...(via === 'startup'
      ? { statement_timeout: timeouts.statementTimeoutMs, lock_timeout: timeouts.lockTimeoutMs, idle_in_transaction_session_timeout: timeouts.idleInTransactionMs }
      : {}),
    connectionTimeoutMillis: timeouts.connectTimeoutMs,
    application_name: applicationName,
  };
}

/** `BEGIN` with the bounds set for the transaction (one round trip), for {@link BoundsVia} `transaction`. */
export function beginBounded(timeouts: PgTimeouts): string {
  const ms = (n: number): number => Math.max(0, Math.floor(n));
  return `BEGIN; SET LOCAL statement_timeout = ${ms(timeouts.statementTimeoutMs)}; SET LOCAL lock_timeout = ${ms(timeouts.lockTimeoutMs)}; SET LOCAL idle_in_transaction_session_timeout = ${ms(timeouts.idleInTransactionMs)}`;
}

/** True when a pooler refused the bounds as startup parameters (PgBouncer). */
export function refusedStartupParameter(err: unknown): boolean {
  return /unsupported startup parameter/i.test((err as Error | undefined)?.message ?? '');
}

/** A pool whose idle connections are expendable: a killed backend or a restart costs the next statement a reconnect, never the process. */
export function createPool(target: PgTarget, timeouts: PgTimeouts, max: number, via: BoundsVia = 'startup'): pg.Pool {
  const pool = new pg.Pool({ ...clientConfig(target, timeouts, `latchkey ${HOLDER}`.slice(0, 63), via), max, idleTimeoutMillis: 10_000, allowExitOnIdle: true });
  // An idle client whose backend was terminated emits 'error' on the pool: without a listener the
  // process would crash. The pool drops it; the next statement connects anew.
  pool.on('error', () => undefined);
  return pool;
}

const CONNECT_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'EPIPE']);

/** True when `err` says the database could not be reached or the connection broke (as opposed to an SQL error). */
export function isConnectionFailure(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | undefined;
  if (e?.code !== undefined && CONNECT_CODES.has(e.code)) return true;
  // 57P01 admin shutdown (pg_terminate_backend), 57P02 crash shutdown, 57P03 cannot connect now (starting up), 08xxx connection exceptions
  if (e?.code !== undefined && (/^08/.test(e.code) || e.code === '57P01' || e.code === '57P02' || e.code === '57P03')) return true;
  return /Connection terminated|timeout expired|connect ETIMEDOUT|Client has encountered a connection error/i.test(e?.message ?? '');
}

/** A short, secret-free description of a driver or server error. */
export function describePgError(err: unknown): string {
  const e = err as { code?: string; message?: string } | undefined;
  const message = (e?.message ?? String(err)).split('\n')[0]!.slice(0, 300);
  return e?.code !== undefined && !message.includes(e.code) ? `${message} [${e.code}]` : message;
}

/**
 * What a failed database call becomes: an unreachable server (or a broken connection) is
 * LK_UNREACHABLE (exit 3, names host, port and database, never the password); a timeout is a
 * transient LK_STORE_IO (exit 3); anything else LK_STORE_IO. A LatchkeyError passes through.
 */
export function storeError(target: PgTarget, doing: string, err: unknown): LatchkeyError {
  if (err instanceof LatchkeyError) return err;
  const where = `PostgreSQL at ${target.host}:${target.port}, database "${target.database}"`;
  if (isConnectionFailure(err)) {
    return new LatchkeyError('LK_UNREACHABLE', `cannot ${doing}: ${where} did not answer (${describePgError(err)})`, { cause: new Error(describePgError(err)), operatorAction: 'check_network', fix: `check that ${target.host}:${target.port} is up and reachable from this machine` });
  }
  const code = (err as { code?: string }).code;
  if (code === '28P01' || code === '28000' || code === '3D000') {
    return new LatchkeyError('LK_UNREACHABLE', `cannot ${doing}: ${where} refused the connection (${describePgError(err)}); check the user, password and database of the store URL`, { cause: new Error(describePgError(err)), operatorAction: 'fix_config' });
  }
  const transient = code === '57014' || code === '55P03' || code === '40001' || code === '40P01' || code === '25P03';
  // The cause keeps the server's words but not its SQLSTATE as `code`: callers that describe a
  // store failure by its errno-style code (the rotation core's `unsaved` message) then say the words.
  return new LatchkeyError('LK_STORE_IO', `cannot ${doing} (${where}): ${describePgError(err)}`, { cause: new Error(describePgError(err)), ...(transient ? { exitCode: ExitCode.unreachable } : {}) });
}
