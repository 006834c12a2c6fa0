/**
 * Fleet stampede: 2 "machines" (two LATCHKEY_HOMEs sharing one PostgreSQL store) x 8 worker
 * processes x 32 concurrent callers for 30 s on ONE rotating grant, access-token TTL 2 s,
 * against the real IdP (oidc-provider, refresh-token rotation with reuse detection, in its own
 * process) behind a latency proxy: every refresh is held 50 ms, and twice per phase (the first
 * refresh after 25 % and after 65 % of the run) 11 s, beyond the peer's 10 s lock TTL.
 *
 * Two subjects, one after the other in the same run (2 cores), each with a freshly minted
 * grant, the same load and the same latency schedule:
 *
 * - `latchkey`: every worker opens Latchkey on its machine's home with
 *   `LATCHKEY_STORE=postgres://…/<run database>` (bench/fleet-stampede-worker.ts);
 * - `peer`: the pattern Nango uses across its workers: a Redis lock `SET … NX PX 10000`
 *   retried every 50 ms for up to 12 s, a re-read of the PostgreSQL row, the token call with no
 *   deadline, a plain UPDATE, an unconditional DEL (bench/fleet-peer-worker.ts).
 *
 * Worker processes of both subjects run at nice 10 (CLIENT_NICE in bench/lib/spawn.ts): the IdP,
 * PostgreSQL and Redis stand in for other machines and must not be starved by 16 closed-loop
 * client processes on 2 cores.
 *
 * Figures per subject: grants revoked (IdP reuse detection; limit 0), refresh-token replays
 * (the proxy: a refresh token presented a second time; limit 0), % of attempts that got a 200
 * from the protected endpoint (limit 100), failed calls, the p99 wait of a caller at expiry
 * (token calls not answered from memory; limit: the slowest IdP answer of the phase + 50 ms),
 * IdP refresh calls, calls/s.
 *
 * The run gets its own database (created and dropped here) on LATCHKEY_BENCH_PG_URL, else
 * LATCHKEY_TEST_PG_URL, else postgres://postgres@127.0.0.1:5432/test; Redis from
 * LATCHKEY_BENCH_REDIS_URL, else LATCHKEY_TEST_REDIS_URL, else redis://127.0.0.1:6379.
 * LATCHKEY_BENCH_SECONDS shortens the run (default 30); LATCHKEY_BENCH_SUBJECTS=latchkey or
 * =peer runs one subject; LATCHKEY_BENCH_WORKERS and LATCHKEY_BENCH_CALLERS change the processes
 * per machine (8) and callers per process (32), to see what CPU oversubscription does to the waits
 * (docs/DESIGN.md, "What the figure measures on 2 cores"). Workers still alive 25 s after the
 * deadline are SIGKILLed; the IdP, the proxy and the database are always cleaned up.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import pg from 'pg';
import { expiresAtFrom } from '../src/engine/fresh-token.js';
import { startIdpProcess, type IdpProcess } from '../test/fixtures/idp-process.js';
import type { IdpCounters } from '../test/fixtures/idp.js';
import { startLatencyProxy, type LatencyProxy, type ProxiedRequest } from '../test/helpers/latency-proxy.js';
import { makeHome, type BenchHome } from './lib/home.js';
import type { LoadCounts } from './lib/load.js';
import { loadTotals, noteStragglers, refreshWindow, reportAuthorized } from './lib/load-report.js';
import { note, reporter } from './lib/report.js';
import { CLIENT_NICE, spawnWorker, type WorkerResult } from './lib/spawn.js';
import { waitPercentiles } from './lib/token-waits.js';
import { prepareFleetStore } from './lib/fleet-store.js';
import { BENCH_PG_URL, createRunDatabase } from './lib/run-database.js';
import { redisAvailable, requirePostgres } from './lib/bench-parts.js';

const BENCH = 'fleet-stampede';
const MACHINES = 2;
const PROCESSES = Number(process.env.LATCHKEY_BENCH_WORKERS ?? 8);
const CALLERS = Number(process.env.LATCHKEY_BENCH_CALLERS ?? 32);
const SECONDS = Number(process.env.LATCHKEY_BENCH_SECONDS ?? 30);
const TTL_S = 2;
const IDP_LATENCY_MS = 50;
/** Beyond the peer's lock TTL (10 s), inside Latchkey's token deadline (15 s). */
const SLOW_IDP_LATENCY_MS = 11_000;
/**
 * Where in the run the slow answers fall (the first refresh after each mark); a mark is pushed
 * back to 3 s after the previous slow answer ended, so no caller meets two in a row.
 * LATCHKEY_BENCH_SLOW=0 turns them off (a trial run of the plain load).
 */
const SLOW_MARKS = process.env.LATCHKEY_BENCH_SLOW === '0' ? [] : [0.25, 0.65];
const SLOW_GAP_MS = 3_000;
const START_DELAY_MS = Number(process.env.LATCHKEY_BENCH_START_DELAY_MS ?? 10_000);
const KILL_AFTER_DEADLINE_MS = 25_000;
const WAIT_MARGIN_MS = 50;

const REDIS_URL = process.env.LATCHKEY_BENCH_REDIS_URL ?? process.env.LATCHKEY_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

const here = fileURLToPath(new URL('.', import.meta.url));
const out = reporter(BENCH);

/** What a worker of either subject prints. */
type FleetCounts = LoadCounts & { waits: number[]; storeKind?: string };

type Subject = 'latchkey' | 'peer';

interface PhaseResult {
  subject: Subject;
  durationMs: number;
  idp: IdpCounters;
  workers: WorkerResult<FleetCounts>[];
  refreshes: ProxiedRequest[];
  extra: Record<string, unknown>;
}

function diff(after: IdpCounters, before: IdpCounters): IdpCounters {
  const d = { ...after };
  for (const k of Object.keys(d) as (keyof IdpCounters)[]) d[k] = after[k] - before[k];
  return d;
}

/** The latency schedule of the current phase: 50 ms, and 11 s for the first refresh after each mark. */
const schedule = { marks: [] as number[], next: 0 };
function delayOf(r: ProxiedRequest): number {
  if (r.sentRefreshToken === undefined) return IDP_LATENCY_MS;
  const mark = schedule.marks[schedule.next];
  if (mark !== undefined && r.receivedAt >= mark) {
    schedule.next++;
    const following = schedule.marks[schedule.next];
    if (following !== undefined) schedule.marks[schedule.next] = Math.max(following, r.receivedAt + SLOW_IDP_LATENCY_MS + SLOW_GAP_MS);
    return SLOW_IDP_LATENCY_MS;
  }
  return IDP_LATENCY_MS;
}

/** Everything to stop if the bench itself is interrupted (Ctrl-C). */
const children = new Set<{ kill(signal?: NodeJS.Signals): boolean }>();
const cleanups: (() => Promise<void>)[] = [];
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    void Promise.allSettled(cleanups.map((f) => f())).finally(() => process.exit(130));
  });
}

async function runWorkers(
  proxy: LatencyProxy,
  subject: Subject,
  spawnArgs: (machine: number, startAt: number, deadline: number) => { script: string; args: string[]; env: NodeJS.ProcessEnv },
): Promise<{ workers: WorkerResult<FleetCounts>[]; durationMs: number; refreshes: ProxiedRequest[] }> {
  const startAt = Date.now() + START_DELAY_MS;
  const deadline = startAt + SECONDS * 1000;
  proxy.label = subject;
  schedule.marks = SLOW_MARKS.map((f) => startAt + f * SECONDS * 1000);
  schedule.next = 0;
  const spawned = [];
  for (let m = 0; m < MACHINES; m++) {
    for (let i = 0; i < PROCESSES; i++) {
      const { script, args, env } = spawnArgs(m, startAt, deadline);
      spawned.push(spawnWorker<FleetCounts>(join(here, script), args, { env, killAt: deadline + KILL_AFTER_DEADLINE_MS, nice: CLIENT_NICE }));
    }
  }
  for (const w of spawned) children.add(w.child);
  const workers = await Promise.all(spawned.map((w) => w.done));
  for (const w of spawned) children.delete(w.child);
  const refreshes = proxy.requests.filter((r) => r.label === subject && r.sentRefreshToken !== undefined);
  return { workers, durationMs: deadline - startAt, refreshes };
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

async function latchkeyPhase(idp: IdpProcess, proxy: LatencyProxy, runDbUrl: string): Promise<PhaseResult> {
  const source = 'idp';
  const masterKey = randomBytes(32).toString('base64');
  const storeEnv = { LATCHKEY_STORE: runDbUrl, LATCHKEY_MASTER_KEY: masterKey };
  const sources = { [source]: { oauth: { tokenEndpoint: `${proxy.url}/token`, clientId: 'public-client' } } };
  const homes: BenchHome[] = [await makeHome('fleet-a', sources), await makeHome('fleet-b', sources)];
  try {
    await prepareFleetStore(homes[0]!.home, storeEnv, source, await idp.mintGrant({ clientId: 'public-client' }));
    const before = await idp.stats();
    const { workers, durationMs, refreshes } = await runWorkers(proxy, 'latchkey', (m, startAt, deadline) => ({
      script: 'fleet-stampede-worker.js',
      args: ['--home', homes[m]!.home, '--source', source, '--url', idp.info.protectedUrl, '--callers', String(CALLERS), '--start-at', String(startAt), '--deadline', String(deadline)],
      env: childEnv(storeEnv),
    }));
    const kinds = [...new Set(workers.map((w) => w.result?.storeKind).filter((k) => k !== undefined))];
    return { subject: 'latchkey', durationMs, idp: diff(await idp.stats(), before), workers, refreshes, extra: { storeKinds: kinds } };
  } finally {
    await Promise.allSettled(homes.map((h) => h.remove()));
  }
}

async function peerPhase(idp: IdpProcess, proxy: LatencyProxy, runDbUrl: string): Promise<PhaseResult> {
  const source = `fleet-${randomBytes(6).toString('hex')}`;
  const table = 'peer.connections';
  const db = new pg.Client({ connectionString: runDbUrl });
  await db.connect();
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 2 });
  try {
    await redis.del(`lock:refresh:${source}`);
    const grant = await idp.mintGrant({ clientId: 'public-client' });
    const now = Date.now();
    await db.query('CREATE SCHEMA IF NOT EXISTS peer');
    await db.query(`CREATE TABLE IF NOT EXISTS ${table} (source text PRIMARY KEY, access_token text NOT NULL, refresh_token text NOT NULL, expires_at bigint NOT NULL, obtained_at bigint NOT NULL)`);
    await db.query(`INSERT INTO ${table} VALUES ($1, $2, $3, $4, $5)`, [source, grant.access_token, grant.refresh_token, expiresAtFrom(now, grant.expires_in), now]);
    const before = await idp.stats();
    const { workers, durationMs, refreshes } = await runWorkers(proxy, 'peer', (_m, startAt, deadline) => ({
      script: 'fleet-peer-worker.js',
      args: [
        '--pg', runDbUrl, '--table', table, '--redis', REDIS_URL, '--source', source, '--token-endpoint', `${proxy.url}/token`, '--client-id', 'public-client',
        '--url', idp.info.protectedUrl, '--callers', String(CALLERS), '--start-at', String(startAt), '--deadline', String(deadline),
      ],
      env: childEnv({}),
    }));
    return { subject: 'peer', durationMs, idp: diff(await idp.stats(), before), workers, refreshes, extra: {} };
  } finally {
    await redis.del(`lock:refresh:${source}`).catch(() => undefined);
    redis.disconnect();
    await db.end();
  }
}

/** Refresh requests that presented a refresh token already presented before (in arrival order). */
function countReplays(refreshes: ProxiedRequest[]): number {
  const seen = new Set<string>();
  let replays = 0;
  for (const r of refreshes) {
    const t = r.sentRefreshToken;
    if (t === undefined) continue;
    if (seen.has(t)) replays++;
    seen.add(t);
  }
  return replays;
}

interface Summary {
  authorized: number;
  refreshCalls: number;
}

function report(p: PhaseResult): Summary {
  const subject = p.subject;
  const t = loadTotals(subject, p.workers);
  const results = p.workers.map((w) => w.result);
  const seconds = p.durationMs / 1000;
  const load = { machines: MACHINES, processesPerMachine: PROCESSES, callersPerProcess: CALLERS, seconds, accessTokenTtlS: TTL_S };
  const idpLatencies = p.refreshes.filter((r) => r.answeredAt !== undefined).map((r) => (r.answeredAt ?? 0) - r.receivedAt);
  const slowest = Math.max(0, ...idpLatencies);
  const slowAnswers = idpLatencies.filter((ms) => ms >= SLOW_IDP_LATENCY_MS).length;
  const waits = waitPercentiles(results.flatMap((c) => c?.waits ?? []));
  const replays = countReplays(p.refreshes);
  const { windowMs: effInterval } = refreshWindow(TTL_S);
  const refreshLimit = Math.ceil(p.durationMs / effInterval) + 1 + SLOW_MARKS.length;

  out({ figure: 'revoked_grants', value: p.idp.revokedGrants, limit: 0, unit: 'grants', subject, extra: { source: 'IdP stats (reuse detection at the token endpoint)', ...load } });
  out({
    figure: 'replays',
    value: replays,
    limit: 0,
    unit: 'requests',
    subject,
    extra: { definition: 'refresh requests presenting a refresh token already presented (latency proxy, arrival order)', refreshRequests: p.refreshes.length },
  });
  reportAuthorized(out, subject, p.workers, t);
  out({
    figure: 'wait_at_expiry_p99',
    value: waits.p99,
    limit: slowest + WAIT_MARGIN_MS,
    unit: 'ms',
    subject,
    extra: {
      waits: waits.count,
      p50: waits.p50,
      max: waits.max,
      rule: `p99 of token calls not answered from memory (>= 2 ms) <= slowest IdP answer of the phase (${slowest} ms) + ${WAIT_MARGIN_MS} ms`,
      idpLatencyMs: IDP_LATENCY_MS,
      slowAnswers,
    },
  });
  out({
    figure: 'idp_refresh_calls',
    value: p.idp.refreshRequests,
    limit: refreshLimit,
    unit: 'calls',
    subject,
    extra: {
      refreshSuccesses: p.idp.refreshSuccesses,
      refreshFailures: p.idp.refreshFailures,
      rule: `ceil(${p.durationMs} ms / ${Math.round(effInterval)} ms window) + 1 + ${SLOW_MARKS.length} slow answers`,
      ...t.extraTotals,
      ...p.extra,
    },
  });
  out({ figure: 'calls_per_s', value: t.protectedCalls / seconds, unit: 'calls/s', subject, extra: { protectedCalls: t.protectedCalls } });
  noteStragglers(subject, p.workers);
  return { authorized: t.authorized, refreshCalls: p.idp.refreshRequests };
}

async function main(): Promise<void> {
  let subjects = (process.env.LATCHKEY_BENCH_SUBJECTS ?? 'latchkey,peer').split(',') as Subject[];
  await requirePostgres(BENCH, BENCH_PG_URL);
  if (subjects.includes('peer') && !(await redisAvailable(BENCH, REDIS_URL))) subjects = subjects.filter((s) => s !== 'peer');
  note(`fleet-stampede: ${MACHINES} machines x ${PROCESSES} processes x ${CALLERS} callers, ${SECONDS} s per subject, access TTL ${TTL_S} s, IdP ${IDP_LATENCY_MS} ms with ${SLOW_MARKS.length} answers of ${SLOW_IDP_LATENCY_MS} ms (${subjects.join(' then ')})`);
  const runDb = await createRunDatabase('lk_fleet_bench');
  cleanups.push(() => runDb.drop());
  const idp = await startIdpProcess({ accessTtl: TTL_S });
  cleanups.push(() => idp.close());
  const proxy = await startLatencyProxy(idp.info.issuer, delayOf);
  cleanups.push(() => proxy.close());
  const summaries: Partial<Record<Subject, Summary>> = {};
  try {
    if (subjects.includes('latchkey')) summaries.latchkey = report(await latchkeyPhase(idp, proxy, runDb.url));
    if (subjects.includes('peer')) summaries.peer = report(await peerPhase(idp, proxy, runDb.url));
  } finally {
    await proxy.close();
    await idp.close();
    await runDb.drop().catch((err: unknown) => note(`could not drop the run database: ${String(err)}`));
  }
  const { latchkey: lk, peer } = summaries;
  if (lk && peer && peer.authorized > 0) {
    out({ figure: 'authorized_calls_ratio', value: lk.authorized / peer.authorized, unit: 'x peer', subject: 'latchkey', extra: { latchkeyAuthorized: lk.authorized, peerAuthorized: peer.authorized } });
  }
}

main().catch((err: unknown) => {
  note(`fleet-stampede could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
