/**
 * Due work on PostgreSQL (docs/DESIGN.md "Fleet mode: keeper leadership"): what one refresh tick
 * of the keeper leader costs the store — `PgDueWork.pick(10)` then `done` — with 10,000 and 100,000 sources
 * of which 50 are due. Latchkey reads the partial index on the stored `due_at` column from its front
 * and stops at the limit; the peer, in the same run and on the same rows, is the same pick
 * computing every refreshable row's due time (the query before migration 3). Rounds alternate so
 * that load from elsewhere on the machine falls on both alike.
 *
 * Needs PostgreSQL: LATCHKEY_BENCH_PG_URL, else LATCHKEY_TEST_PG_URL, else the local server (a
 * server that does not answer skips the bench, or fails it when a variable named it).
 * Runs in a schema of its own, dropped at the end.
 */
import pg from 'pg';
import { PgDueWork } from '../src/store/pg/due-work.js';
import { parsePgUrl } from '../src/store/pg/url.js';
import { reporter } from './lib/report.js';
import { median, quantile } from './lib/stats.js';
import { requirePostgres } from './lib/bench-parts.js';
import { BENCH_PG_URL, createRunSchema } from './lib/run-database.js';

const BENCH = 'fleet-due-pick';
const out = reporter(BENCH);
/** Two sizes in one run: Latchkey's tick should not grow with the number of sources, the peer's does. */
const SIZES = [10_000, 100_000];
const DUE = 50;
const ROUNDS = Number(process.env.LATCHKEY_BENCH_ROUNDS ?? 100);

await requirePostgres(BENCH, BENCH_PG_URL);
const run = await createRunSchema();
const { schema } = run;

const admin = new pg.Client({ connectionString: BENCH_PG_URL });
admin.on('error', () => undefined);
await admin.connect();
try {
  const target = parsePgUrl(run.url);
  for (const sources of SIZES) {
    const now = Date.now();
    const hour = 3_600_000;
    await admin.query(`TRUNCATE "${schema}".sources, "${schema}".claims`);
    // Metadata rows as the store writes them; the pick reads no sealed column, so a placeholder
    // refresh token (non-null) is all it needs. DUE of them are due, the rest are not.
    await admin.query(
      `INSERT INTO "${schema}".sources (name, version, has_grant, obtained_at, expires_at, refresh_token, key_id)
       SELECT 's' || lpad(i::text, 7, '0'), 1, true,
              CASE WHEN i < $2::int THEN $1::float8 - $3::float8 + i * 1000 ELSE $1::float8 - (i % 600) * 1000 END,
              CASE WHEN i < $2::int THEN $1::float8 + i * 1000 ELSE $1::float8 - (i % 600) * 1000 + $3::float8 END,
              '\\x00'::bytea, 'bench'
         FROM generate_series(0, $4::int - 1) AS i`,
      [now, DUE, hour, sources],
    );
    await admin.query(`ANALYZE "${schema}".sources`);
    const indexed = new PgDueWork(target);
    const computed = new PgDueWork(target, { useDueIndex: false });
    const times = { latchkey: [] as number[], peer: [] as number[] };
    const picked = { latchkey: 0, peer: 0 };
    try {
      for (let r = 0; r < ROUNDS; r++) {
        for (const [subject, w] of [['latchkey', indexed], ['peer', computed]] as const) {
          const t0 = performance.now();
          const names = await w.pick(10, now);
          await w.done(names);
          times[subject].push(performance.now() - t0);
          picked[subject] = names.length;
        }
      }
    } finally {
      await indexed.close();
      await computed.close();
    }
    for (const subject of ['latchkey', 'peer'] as const) {
      const method = subject === 'latchkey' ? 'partial index on the stored due_at, read in order up to the limit' : 'due time computed for every refreshable row, then sorted';
      const extra = { method, sources, due: DUE, limit_per_pick: 10, picked_per_round: picked[subject], rounds: ROUNDS, steps: 'pick transaction (select, pick leases, commit) + done' };
      out({ figure: 'due_pick_p50', value: median(times[subject]), unit: 'ms', subject, extra });
      out({ figure: 'due_pick_p99', value: quantile(times[subject], 0.99), unit: 'ms', subject, extra });
    }
  }
} finally {
  await admin.end();
  await run.drop();
}
