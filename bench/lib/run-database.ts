/**
 * A PostgreSQL database (or schema) of its own for one bench run: created, then dropped at the end.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { PgStore } from '../../src/store/pg/pg-store.js';
import { TEST_MASTER_KEY } from '../../test/fixtures/pg.js';

/** LATCHKEY_BENCH_PG_URL, else LATCHKEY_TEST_PG_URL, else the machines' local server. */
export const BENCH_PG_URL = process.env.LATCHKEY_BENCH_PG_URL ?? process.env.LATCHKEY_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

export interface RunDatabase {
  /** The base URL with the run database as its path. */
  url: string;
  drop(): Promise<void>;
}

export async function createRunDatabase(prefix: string, baseUrl: string = BENCH_PG_URL): Promise<RunDatabase> {
  const name = `${prefix}_${randomBytes(5).toString('hex')}`;
  const admin = async <T>(fn: (c: pg.Client) => Promise<T>): Promise<T> => {
    const c = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  await admin((c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin((c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined) };
}

export interface RunSchema {
  /** The base URL with `?schema=` set to the run schema (a Latchkey store URL). */
  url: string;
  schema: string;
  drop(): Promise<void>;
}

/**
 * A schema of its own on `baseUrl` for one bench run, migrated to the current version by the
 * store's own `migrate` (so the bench measures the real tables and indexes); dropped at the end.
 */
export async function createRunSchema(baseUrl: string = BENCH_PG_URL): Promise<RunSchema> {
  const schema = `lk_bench_${randomBytes(5).toString('hex')}`;
  const url = new URL(baseUrl);
  url.searchParams.set('schema', schema);
  const setup = new PgStore({ url: url.toString(), masterKey: TEST_MASTER_KEY });
  try {
    await setup.migrate();
  } finally {
    await setup.close();
  }
  const drop = async (): Promise<void> => {
    const c = new pg.Client({ connectionString: baseUrl, connectionTimeoutMillis: 5_000 });
    c.on('error', () => undefined);
    await c.connect();
    try {
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    } finally {
      await c.end();
    }
  };
  return { url: url.toString(), schema, drop };
}
