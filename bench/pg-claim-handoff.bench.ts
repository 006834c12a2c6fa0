/**
 * The PostgreSQL store's lock, claim before use (docs/DESIGN.md "Fleet mode: claim before use"):
 *
 * - handoff: how long after a holder's locked work ends the next waiter's work starts (the
 *   release statement, the wake-up, the waiter's claim), 200 handoffs between two stores (two
 *   pools, as two processes have). Latchkey's waiters are woken by LISTEN/NOTIFY; the peer, in
 *   the same run, is the same store polling alone (25 ms, jittered), the usual shape of a
 *   lock-row loop. Limit: p99 within 50 ms (the fleet stampede allows IdP latency + 50 ms for a
 *   caller's whole wait);
 * - a locked unit uncontended (claim, read, CAS write, release): what each refresh pays the
 *   store, beside the file store's (lock file, read, fsync'd rename) in the same run.
 *
 * Needs PostgreSQL: LATCHKEY_BENCH_PG_URL, else LATCHKEY_TEST_PG_URL, else the local server.
 * Runs in a schema of its own, dropped at the end.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Secret } from '../src/core/secret.js';
import { FileStore } from '../src/store/file-store.js';
import { PgStore } from '../src/store/pg/pg-store.js';
import type { SourceRecordInput, Store } from '../src/store/store.js';
import { TEST_MASTER_KEY } from '../test/fixtures/pg.js';
import { reporter } from './lib/report.js';
import { median, quantile } from './lib/stats.js';
import { requirePostgres } from './lib/bench-parts.js';
import { BENCH_PG_URL, createRunSchema } from './lib/run-database.js';

const BENCH = 'pg-claim-handoff';
const out = reporter(BENCH);
const HANDOFFS = Number(process.env.LATCHKEY_BENCH_HANDOFFS ?? 200);
const UNITS = Number(process.env.LATCHKEY_BENCH_UNITS ?? 200);

await requirePostgres(BENCH, BENCH_PG_URL);
const run = await createRunSchema();
const open = (listen: boolean): PgStore => new PgStore({ url: run.url, masterKey: TEST_MASTER_KEY, listen });

async function handoffs(listen: boolean): Promise<number[]> {
  const a = open(listen);
  const b = open(listen);
  const lat: number[] = [];
  try {
    for (let i = 0; i < HANDOFFS; i++) {
      let ended = 0;
      let holding!: () => void;
      const held = new Promise<void>((r) => (holding = r));
      const holder = a.withLock('k', async () => {
        holding();
        await new Promise((r) => setTimeout(r, 10));
        ended = performance.now();
      });
      await held;
      await b.withLock('k', async () => {
        lat.push(performance.now() - ended);
      });
      await holder;
    }
  } finally {
    await a.close();
    await b.close();
  }
  return lat;
}

function grant(i: number): SourceRecordInput {
  return { grant: { accessToken: new Secret(`at-${i}-${'x'.repeat(40)}`), refreshToken: new Secret(`rt-${i}-${'y'.repeat(40)}`), obtainedAt: Date.now(), expiresAt: Date.now() + 3_600_000 } };
}

async function units(store: Store): Promise<number[]> {
  const times: number[] = [];
  for (let i = 0; i < UNITS; i++) {
    const t0 = performance.now();
    await store.withLock('s', async (tx) => {
      const rec = await tx.read('s');
      await tx.write('s', grant(i), rec?.version ?? 0);
    });
    times.push(performance.now() - t0);
  }
  return times;
}

const dir = await mkdtemp(join(tmpdir(), 'lk-bench-handoff-'));
try {
  // Alternated, so that load from elsewhere on the machine falls on both alike.
  const notify: number[] = [];
  const polling: number[] = [];
  for (let round = 0; round < 2; round++) {
    notify.push(...(await handoffs(true)));
    polling.push(...(await handoffs(false)));
  }
  for (const [subject, xs] of [['latchkey', notify], ['peer', polling]] as const) {
    const method = subject === 'latchkey' ? 'LISTEN/NOTIFY wake-up, polling underneath' : 'polling every 25 ms (jittered), no wake-up';
    out({ figure: 'claim_handoff_p50', value: median(xs), unit: 'ms', subject, extra: { method, handoffs: xs.length } });
    out({ figure: 'claim_handoff_p99', value: quantile(xs, 0.99), unit: 'ms', subject, ...(subject === 'latchkey' ? { limit: 50 } : {}), extra: { method, handoffs: xs.length } });
  }
  const pgStore = open(true);
  const fileStore = new FileStore({ path: join(dir, 'home', 'store.json') });
  try {
    const pgUnits = await units(pgStore);
    const fileUnits = await units(fileStore);
    out({ figure: 'locked_unit_p50', value: median(pgUnits), unit: 'ms', subject: 'latchkey', extra: { store: 'postgres', steps: 'claim, read, CAS write (sealed), release', units: UNITS } });
    out({ figure: 'locked_unit_p50', value: median(fileUnits), unit: 'ms', subject: 'file store', extra: { store: 'file', steps: 'lock file, read, write (fsync, rename), unlock', units: UNITS } });
  } finally {
    await pgStore.close();
    await fileStore.close();
  }
} finally {
  await rm(dir, { recursive: true, force: true });
  await run.drop();
}
