/**
 * The servers a fleet bench needs (PostgreSQL, Redis), checked before it starts. A part that does
 * not answer skips the bench, saying why (exit 0), unless a variable named the part explicitly
 * (LATCHKEY_BENCH_PG_URL / LATCHKEY_TEST_PG_URL, LATCHKEY_BENCH_REDIS_URL / LATCHKEY_TEST_REDIS_URL):
 * then the bench fails (exit 1), as a test made mandatory by its variable does.
 */
import { Redis } from 'ioredis';
import pg from 'pg';
import { note } from './report.js';

const PG_VARS = ['LATCHKEY_BENCH_PG_URL', 'LATCHKEY_TEST_PG_URL'];
const REDIS_VARS = ['LATCHKEY_BENCH_REDIS_URL', 'LATCHKEY_TEST_REDIS_URL'];

function named(vars: string[]): boolean {
  return vars.some((v) => (process.env[v] ?? '').trim() !== '');
}

/** Whether PostgreSQL at `url` answers; exits (skip or failure) when it does not. */
export async function requirePostgres(bench: string, url: string): Promise<void> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  c.on('error', () => undefined);
  try {
    await c.connect();
    await c.query('SELECT 1');
  } catch (err) {
    const host = new URL(url).host;
    if (named(PG_VARS)) {
      note(`${bench} could not run: PostgreSQL at ${host} did not answer (${(err as Error).message})`);
      process.exit(1);
    }
    note(`${bench} skipped: needs PostgreSQL (none answered at ${host}; set LATCHKEY_BENCH_PG_URL or LATCHKEY_TEST_PG_URL to run it)`);
    process.exit(0);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** Whether Redis at `url` answers: true, or false (the caller skips what needs it) unless it was named, then exit 1. */
export async function redisAvailable(bench: string, url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 3_000, retryStrategy: () => null });
  r.on('error', () => undefined);
  try {
    await r.connect();
    await r.ping();
    return true;
  } catch (err) {
    if (named(REDIS_VARS)) {
      note(`${bench} could not run: Redis at ${new URL(url).host} did not answer (${(err as Error).message})`);
      process.exit(1);
    }
    note(`${bench}: the peer is skipped: it needs Redis (none answered at ${new URL(url).host}; set LATCHKEY_BENCH_REDIS_URL or LATCHKEY_TEST_REDIS_URL to run it)`);
    return false;
  } finally {
    r.disconnect();
  }
}
