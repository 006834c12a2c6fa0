/** A PostgreSQL database of its own for one bench run: created, then dropped (WITH (FORCE)) at the end. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';

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
