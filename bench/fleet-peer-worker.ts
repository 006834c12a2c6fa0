/**
 * One peer worker process of the fleet stampede bench: the pattern Nango uses to refresh a
 * shared OAuth connection across its workers (its `Locking.tryAcquire` over a Redis KV store),
 * with the credentials in a PostgreSQL table:
 *
 * 1. read the row; if the access token is not due, use it;
 * 2. take a Redis lock, `SET lock:refresh:<source> 1 NX PX 10000`, retried every 50 ms for up
 *    to 12 s (then the call fails: "Acquiring lock … timed out");
 * 3. re-read the row after acquiring; if another worker refreshed meanwhile, use its token;
 * 4. call the token endpoint with the refresh token just read, with no deadline tied to the
 *    lock's TTL (a call slower than 10 s outlives the lock);
 * 5. write the answer with a plain `UPDATE … WHERE source = $1` (no version check);
 * 6. release with an unconditional `DEL` (which may delete another holder's lock).
 *
 * Two things are given to the peer so that the comparison isolates the cross-machine
 * coordination: a memo per process (the row is re-read only once the token is due, as
 * Latchkey's memo does; Nango itself reads the row on every request) and one flight per
 * process (its callers share one lock attempt instead of 32), plus Latchkey's expiry
 * arithmetic (`refreshDueAt`). A failed flight pauses 250 ms so a dead grant is not a busy loop.
 *
 * Prints one JSON line when the deadline has passed: the common LoadCounts plus `waits` (ms of
 * every token call that was not a memo hit: the wait of a caller at expiry).
 *
 *   node fleet-peer-worker.js --pg URL --table SCHEMA.TABLE --redis URL --source NAME
 *     --token-endpoint URL --client-id ID --url PROTECTED_URL --callers N --start-at MS --deadline MS
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { expiresAtFrom, refreshDueAt } from '../src/engine/fresh-token.js';
import { parseWorkerArgs, required, runLoad, sleep } from './lib/load.js';
import { timedTokens } from './lib/token-waits.js';

/** Nango's numbers: lock TTL 10 s, acquisition retried every 50 ms for up to 12 s. */
export const PEER_LOCK_TTL_MS = 10_000;
export const PEER_LOCK_ACQUIRE_TIMEOUT_MS = 12_000;
export const PEER_LOCK_RETRY_MS = 50;

interface Row {
  access_token: string;
  refresh_token: string;
  /** epoch ms */
  expires_at: number;
  /** epoch ms */
  obtained_at: number;
}

const args = parseWorkerArgs(process.argv.slice(2));
const source = required(args, 'source');
const table = required(args, 'table');
if (!/^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$/.test(table)) throw new Error(`--table must be schema.table, got ${table}`);
const tokenEndpoint = required(args, 'token-endpoint');
const clientId = required(args, 'client-id');
const db = new pg.Pool({ connectionString: required(args, 'pg'), max: 2 });
const redis = new Redis(required(args, 'redis'), { maxRetriesPerRequest: 2 });
const lockKey = `lock:refresh:${source}`;

const extra: Record<string, number> = {
  refresh_calls: 0,
  refresh_ok: 0,
  refresh_failed: 0,
  refresh_invalid_grant: 0,
  adopted_after_lock: 0,
  lock_acquired: 0,
  lock_timeouts: 0,
  lock_tries: 0,
};
function bump(key: string): void {
  extra[key] = (extra[key] ?? 0) + 1;
}

async function readRow(): Promise<Row> {
  const r = await db.query<{ access_token: string; refresh_token: string; expires_at: string; obtained_at: string }>(
    `SELECT access_token, refresh_token, expires_at, obtained_at FROM ${table} WHERE source = $1`,
    [source],
  );
  const row = r.rows[0];
  if (!row) throw new Error(`no connection row for ${source}`);
  return { access_token: row.access_token, refresh_token: row.refresh_token, expires_at: Number(row.expires_at), obtained_at: Number(row.obtained_at) };
}

function due(t: Row): number {
  return refreshDueAt({ obtainedAt: t.obtained_at, expiresAt: t.expires_at });
}

/** Nango's `Locking.tryAcquire`: SET NX PX, retried every 50 ms until the acquisition timeout. */
async function tryAcquire(): Promise<void> {
  const start = Date.now();
  while (Date.now() - start < PEER_LOCK_ACQUIRE_TIMEOUT_MS) {
    bump('lock_tries');
    if ((await redis.set(lockKey, '1', 'PX', PEER_LOCK_TTL_MS, 'NX')) === 'OK') {
      bump('lock_acquired');
      return;
    }
    await sleep(PEER_LOCK_RETRY_MS);
  }
  bump('lock_timeouts');
  throw new Error(`Acquiring lock for ${lockKey} timed out after ${PEER_LOCK_ACQUIRE_TIMEOUT_MS}ms`);
}

/** The token call: a plain form POST, no deadline. */
async function refreshTokenGrant(refreshToken: string): Promise<{ access_token: string; refresh_token?: string; expires_in?: number }> {
  const res = await fetch(tokenEndpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refreshToken, client_id: clientId }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; refresh_token?: string; expires_in?: number; error?: string };
  if (res.status !== 200 || typeof body.access_token !== 'string') {
    if (body.error === 'invalid_grant') bump('refresh_invalid_grant');
    throw new Error(`refresh failed: HTTP ${res.status} ${body.error ?? ''}`.trim());
  }
  return body as { access_token: string; refresh_token?: string; expires_in?: number };
}

let memo: Row | undefined;
let flight: Promise<Row> | undefined;

async function refreshFlight(): Promise<Row> {
  const current = await readRow();
  if (Date.now() < due(current)) {
    memo = current;
    return current;
  }
  await tryAcquire();
  try {
    return await refreshUnderLock();
  } catch (err) {
    bump('refresh_failed');
    throw err;
  } finally {
    await redis.del(lockKey);
  }
}

/** Steps 3-5, holding the Redis lock (which may expire under us: nothing here checks). */
async function refreshUnderLock(): Promise<Row> {
  const again = await readRow();
  if (Date.now() < due(again)) {
    bump('adopted_after_lock');
    memo = again;
    return again;
  }
  const requestedAt = Date.now();
  bump('refresh_calls');
  const res = await refreshTokenGrant(again.refresh_token);
  const next: Row = {
    access_token: res.access_token,
    refresh_token: res.refresh_token ?? again.refresh_token,
    expires_at: expiresAtFrom(requestedAt, res.expires_in ?? 60),
    obtained_at: requestedAt,
  };
  await db.query(`UPDATE ${table} SET access_token = $2, refresh_token = $3, expires_at = $4, obtained_at = $5 WHERE source = $1`, [
    source,
    next.access_token,
    next.refresh_token,
    next.expires_at,
    next.obtained_at,
  ]);
  bump('refresh_ok');
  memo = next;
  return next;
}

function getToken(): Promise<string> {
  const m = memo;
  if (m !== undefined && Date.now() < due(m)) return Promise.resolve(m.access_token);
  flight ??= refreshFlight()
    .catch(async (err: unknown) => {
      await sleep(250);
      throw err;
    })
    .finally(() => {
      flight = undefined;
    });
  return flight.then((t) => t.access_token);
}

const timed = timedTokens(getToken);
const counts = await runLoad({
  callers: Number(required(args, 'callers')),
  protectedUrl: required(args, 'url'),
  startAt: Number(required(args, 'start-at')),
  deadline: Number(required(args, 'deadline')),
  getToken: timed.getToken,
  extra,
});
await Promise.allSettled([db.end(), redis.quit()]);
process.stdout.write(`${JSON.stringify({ ...counts, waits: timed.waits() })}\n`);
