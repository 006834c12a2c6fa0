/**
 * Fleet throughput, on a PostgreSQL store in a database of its own:
 *
 * 1. 10,000 sources due at once (⅔ of their access token's lifetime passed), refreshed by 2
 *    keeper processes sharing the store: each runs the keeper's refresh stage (`refreshAhead`:
 *    the engine's refresh under the source's claim) at the keeper's default concurrency (32), on
 *    due work picked earliest-first with FOR UPDATE SKIP LOCKED (src/store/pg/due-work.ts). The
 *    token endpoint is a loopback one with rotation and reuse detection answering in 20 ms
 *    (bench/lib/rotating-token-endpoint.ts: 10,000 real oidc-provider grants would take minutes
 *    to mint on 2 cores and the IdP's CPU would be the figure). Figures: `sources_refreshed_per_s`
 *    (10,000 / time from the start to the last refresh), `refresh_calls` (exactly one per source:
 *    limit 10,000), `replays` and `revoked_grants` (limit 0), `refreshed_sources` (the store's own
 *    count of sources refreshed in the run: limit 10,000, min), the split between the keepers.
 * 2. `token()` hot path on the PostgreSQL store next to the file store, same process, same
 *    loop: the median rate of `await lk.token(src)` on a fresh memo over several rounds
 *    (`hot_path_pg_vs_file`: ratio, limit 0.9 min), and the database queries made during the
 *    measured loops (`hot_path_pg_queries`: limit 0).
 *
 * LATCHKEY_BENCH_FLEET_SOURCES sets the number of sources (default 10000);
 * LATCHKEY_BENCH_HOT_CALLS the calls per hot-path round (default 1,000,000).
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { Secret } from '../src/core/secret.js';
import { openLatchkey } from '../src/index.js';
import { parseMasterKey } from '../src/store/pg/envelope.js';
import { PgStore } from '../src/store/pg/pg-store.js';
import { rowValues, WRITE_COLUMNS } from '../src/store/pg/source-rows.js';
import { quoteIdent } from '../src/store/pg/url.js';
import { installGrant, makeHome } from './lib/home.js';
import { note, reporter } from './lib/report.js';
import { startRotatingTokenEndpoint } from './lib/rotating-token-endpoint.js';
import { BENCH_PG_URL, createRunDatabase } from './lib/run-database.js';
import { requirePostgres } from './lib/bench-parts.js';
import { spawnWorker } from './lib/spawn.js';
import { median } from './lib/stats.js';

const BENCH = 'fleet-throughput';
const SOURCES = Number(process.env.LATCHKEY_BENCH_FLEET_SOURCES ?? 10_000);
const KEEPERS = 2;
const CONCURRENCY = 32;
const PICK_BATCH = 64;
const IDP_LATENCY_MS = 20;
const LIFETIME_S = 3600;
const HOT_CALLS = Number(process.env.LATCHKEY_BENCH_HOT_CALLS ?? 1_000_000);
const HOT_ROUNDS = 5;
const START_DELAY_MS = 8_000;

const here = fileURLToPath(new URL('.', import.meta.url));
const out = reporter(BENCH);
const MASTER_KEY_TEXT = Buffer.alloc(32, 3).toString('base64');
const name = (i: number): string => `src${String(i).padStart(5, '0')}`;

interface KeeperResult {
  pid: number;
  firstStartAt: number;
  lastDoneAt: number;
  outcomes: Record<string, number>;
  pg: Record<string, number>;
}

/** 10,000 rows written straight into `sources` (sealed as the store seals them): installing them one claim at a time would take longer than the run. */
async function seed(url: string, tokenEndpoint: string): Promise<void> {
  const store = new PgStore({ url, masterKey: parseMasterKey(new Secret(MASTER_KEY_TEXT), 'bench key') });
  await store.migrate();
  await store.close();
  const ring = { current: parseMasterKey(new Secret(MASTER_KEY_TEXT), 'bench key') };
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const now = Date.now();
    const S = quoteIdent('latchkey');
    const cols = ['name', 'version', ...WRITE_COLUMNS];
    for (let start = 0; start < SOURCES; start += 500) {
      const values: unknown[] = [];
      const rows: string[] = [];
      for (let i = start; i < Math.min(SOURCES, start + 500); i++) {
        const rec = {
          grant: { accessToken: new Secret(`at-${i}`), refreshToken: new Secret(`rt-${i}-${now}`), obtainedAt: now - 3000_000, expiresAt: now + 600_000, tokenEndpoint, clientId: 'bench' },
          lastRefreshAt: now - 3000_000,
          refreshCount: 1,
        };
        const v = [name(i), 1, ...rowValues(name(i), rec, ring)];
        rows.push(`(${v.map((_, k) => `$${values.length + k + 1}`).join(', ')})`);
        values.push(...v);
      }
      await client.query(`INSERT INTO ${S}.sources (${cols.join(', ')}) VALUES ${rows.join(', ')}`, values);
    }
  } finally {
    await client.end();
  }
}

async function throughput(runUrl: string): Promise<void> {
  const endpoint = await startRotatingTokenEndpoint({ latencyMs: IDP_LATENCY_MS, expiresIn: LIFETIME_S });
  const sources = Object.fromEntries(Array.from({ length: SOURCES }, (_, i) => [name(i), { oauth: { tokenEndpoint: endpoint.url, clientId: 'bench' } }]));
  const homes = [await makeHome('fleet-keeper-a', sources), await makeHome('fleet-keeper-b', sources)];
  try {
    await seed(runUrl, endpoint.url);
    const startAt = Date.now() + START_DELAY_MS;
    const env: NodeJS.ProcessEnv = { ...process.env, LATCHKEY_STORE: runUrl, LATCHKEY_MASTER_KEY: MASTER_KEY_TEXT };
    delete env.NODE_OPTIONS;
    const workers = homes.map((h) =>
      spawnWorker<KeeperResult>(join(here, 'fleet-keeper-worker.js'), ['--home', h.home, '--start-at', String(startAt), '--concurrency', String(CONCURRENCY), '--batch', String(PICK_BATCH)], {
        env,
        killAt: startAt + 600_000,
      }),
    );
    const results = await Promise.all(workers.map((w) => w.done));
    const done = results.map((r) => r.result).filter((r): r is KeeperResult => r !== undefined);
    for (const r of results) if (r.result === undefined || r.code !== 0) note(`keeper without a result (code ${r.code ?? r.signal}): ${r.stderr.slice(-1500)}`);
    if (done.length === 0) throw new Error('no keeper produced a result');
    const lastDone = Math.max(...done.map((r) => r.lastDoneAt));
    const seconds = (lastDone - startAt) / 1000;
    const refreshed = done.reduce((a, r) => a + (r.outcomes.refreshed ?? 0), 0);
    const client = new pg.Client({ connectionString: runUrl });
    await client.connect();
    const inStore = Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM latchkey.sources WHERE last_refresh_at >= $1`, [startAt])).rows[0]?.n ?? 0);
    await client.end();
    const load = { sources: SOURCES, keepers: KEEPERS, concurrencyPerKeeper: CONCURRENCY, pickBatch: PICK_BATCH, idpLatencyMs: IDP_LATENCY_MS };
    out({
      figure: 'sources_refreshed_per_s',
      value: refreshed / seconds,
      unit: 'sources/s',
      extra: {
        ...load,
        refreshed,
        seconds,
        ceiling: Math.round((KEEPERS * CONCURRENCY * 1000) / IDP_LATENCY_MS),
        ceilingRule: 'keepers x concurrency / IdP latency (what the token endpoint alone allows)',
        perKeeper: done.map((r) => ({ outcomes: r.outcomes, claims: r.pg.claims, busyPolls: r.pg.busyPolls })),
      },
    });
    out({ figure: 'refreshed_sources', value: inStore, limit: SOURCES, compare: 'min', unit: 'sources', extra: { source: 'sources whose last_refresh_at is after the start (the store)' } });
    out({ figure: 'refresh_calls', value: endpoint.stats.refreshes, limit: SOURCES, unit: 'calls', extra: { rule: 'one per source, none twice' } });
    out({ figure: 'replays', value: endpoint.stats.replays, limit: 0, unit: 'requests' });
    out({ figure: 'revoked_grants', value: endpoint.stats.revokedGrants, limit: 0, unit: 'grants' });
  } finally {
    await endpoint.close();
    await Promise.allSettled(homes.map((h) => h.remove()));
  }
}

/** Counts queries of every pg client and pool of this process while `on`. */
function countPgQueries(): { count(): number; on: boolean } {
  const state = { n: 0, on: false, count: () => state.n };
  for (const proto of [pg.Client.prototype, pg.Pool.prototype] as { query: (...a: unknown[]) => unknown }[]) {
    const orig = proto.query;
    proto.query = function (this: unknown, ...a: unknown[]): unknown {
      if (state.on) state.n++;
      return orig.apply(this, a);
    };
  }
  return state;
}

async function hotPath(runUrl: string): Promise<void> {
  const counter = countPgQueries();
  const h = await makeHome('fleet-hot', { api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'bench' } } });
  const grant = { access_token: 'at-hot', refresh_token: 'rt-hot', expires_in: 3600 };
  try {
    await installGrant(h.home, 'api', grant);
    const file = await openLatchkey({ home: h.home, env: {} });
    const pgStore = new PgStore({ url: runUrl, masterKey: parseMasterKey(new Secret(MASTER_KEY_TEXT), 'bench key') });
    const onPg = await openLatchkey({ home: h.home, env: {}, store: pgStore });
    await onPg.installGrant('api', grant);
    await file.token('api');
    await onPg.token('api');
    const rate = async (lk: typeof file): Promise<number[]> => {
      const rates: number[] = [];
      for (let r = 0; r < HOT_ROUNDS; r++) {
        const t0 = performance.now();
        for (let i = 0; i < HOT_CALLS; i++) await lk.token('api');
        rates.push(HOT_CALLS / ((performance.now() - t0) / 1000));
      }
      return rates;
    };
    // Interleaved, so that a noisy neighbour on the shared cores hits both alike.
    const fileRates: number[] = [];
    const pgRates: number[] = [];
    for (let k = 0; k < 2; k++) {
      fileRates.push(...(await rate(file)));
      counter.on = true;
      pgRates.push(...(await rate(onPg)));
      counter.on = false;
    }
    const f = median(fileRates);
    const p = median(pgRates);
    out({ figure: 'hot_path_calls_per_s', value: f, unit: 'calls/s', subject: 'file', extra: { rounds: fileRates.length, callsPerRound: HOT_CALLS } });
    out({ figure: 'hot_path_calls_per_s', value: p, unit: 'calls/s', subject: 'postgres', extra: { rounds: pgRates.length, callsPerRound: HOT_CALLS } });
    out({ figure: 'hot_path_pg_vs_file', value: p / f, limit: 0.9, compare: 'min', unit: 'x file', subject: 'postgres' });
    out({ figure: 'hot_path_pg_queries', value: counter.count(), limit: 0, unit: 'queries', subject: 'postgres', extra: { during: `${pgRates.length * HOT_CALLS} awaited token() calls` } });
    await file.close();
    await onPg.close();
  } finally {
    await h.remove();
  }
}

async function main(): Promise<void> {
  note(`fleet-throughput: ${SOURCES} sources due at once, ${KEEPERS} keepers x ${CONCURRENCY}, token endpoint ${IDP_LATENCY_MS} ms; then the token() hot path on PostgreSQL vs the file store`);
  await requirePostgres(BENCH, BENCH_PG_URL);
  const runDb = await createRunDatabase('lk_fleet_tp');
  const stop = (): void => {
    void runDb.drop().finally(() => process.exit(130));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    await throughput(runDb.url);
    const hotDb = `${runDb.url}${runDb.url.includes('?') ? '&' : '?'}schema=hot`;
    const hotStore = new PgStore({ url: hotDb, masterKey: parseMasterKey(new Secret(MASTER_KEY_TEXT), 'bench key') });
    await hotStore.migrate();
    await hotStore.close();
    await hotPath(hotDb);
  } finally {
    await runDb.drop().catch((err: unknown) => note(`could not drop the run database: ${String(err)}`));
  }
}

main().catch((err: unknown) => {
  note(`fleet-throughput could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
