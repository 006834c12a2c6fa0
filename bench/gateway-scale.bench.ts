/**
 * Sessions at scale: a `latchkey gateway` process on a file store holding 10,000 live
 * sessions, refreshing sessions whose access token expired; the refresh latency (p50/p99 of
 * the requests that carried only a refresh cookie) and the gateway's memory (RSS now and at
 * peak). The reference, in the same run: the same gateway on a store holding only the sessions
 * it refreshes.
 *
 * The sessions are written into the store the way the gateway writes them (SessionStore, sealed
 * with the home's gateway key) rather than through 10,000 browser logins. SAMPLE of them hold a
 * real grant minted at the test IdP for the gateway's client, with the access token marked
 * expired: those are refreshed, each by one request carrying only its refresh cookie (the cookie
 * the gateway itself issues for that session). The others hold unused tokens: live entries the
 * store must keep and find around, which is what "10,000 sessions" costs a file store.
 *
 * Every refresh must be a 200 from the upstream, with one IdP refresh per session and no grant
 * revoked; the figures say so.
 *
 * Env: LATCHKEY_BENCH_SESSIONS (default 10000), LATCHKEY_BENCH_SAMPLE (default 200),
 * LATCHKEY_BENCH_CONCURRENCY (parallel refreshes of different sessions, default 4).
 */
import { randomBytes } from 'node:crypto';
import { readFile, mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadOrCreateKeyFile, type SealKey } from '../src/gateway/seal.js';
import { SessionCookies } from '../src/gateway/session-cookies.js';
import { newSessionId, SessionStore, type SessionData } from '../src/gateway/session-store.js';
import type { RequestShape } from '../src/gateway/request-shape.js';
import { homePaths } from '../src/paths.js';
import { FileStore } from '../src/store/file-store.js';
import { TEST_CLIENTS } from '../test/fixtures/idp-clients.js';
import type { IdpCounters } from '../test/fixtures/idp-counters.js';
import { startIdpProcess, type IdpProcess } from '../test/fixtures/idp-process.js';
import { startLatchkeyGateway, startUpstreamProcess, stopAll, type GatewayUnderTest } from './lib/gateway-procs.js';
import { note, reporter } from './lib/report.js';
import { quantile } from './lib/stats.js';

const BENCH = 'gateway-scale';
const SESSIONS = Number(process.env.LATCHKEY_BENCH_SESSIONS ?? 10_000);
const SAMPLE = Number(process.env.LATCHKEY_BENCH_SAMPLE ?? 200);
const CONCURRENCY = Number(process.env.LATCHKEY_BENCH_CONCURRENCY ?? 4);
const SEED_CONCURRENCY = 16;
const CLIENT = TEST_CLIENTS['basic-client'];
const DAY_MS = 86_400_000;
const out = reporter(BENCH);

let idpToClose: IdpProcess | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.all([stopAll(), idpToClose?.close()]).finally(() => process.exit(130));
  });
}

/** A plain-HTTP loopback request shape, as the gateway computes it for http://127.0.0.1:PORT. */
const LOOPBACK_SHAPE: RequestShape = { https: false, prefix: '', host: '127.0.0.1', origin: 'http://127.0.0.1', viaTrustedProxy: false, clientAddress: '127.0.0.1', loopbackHttp: true };

function sessionData(now: number, tokens: { access: string; refresh: string; expiresAt: number; idToken?: string }, sub: string): SessionData {
  return {
    gen: 1,
    version: 1,
    identity: { sub, email: `${sub}@example.test` },
    accessToken: tokens.access,
    refreshToken: tokens.refresh,
    ...(tokens.idToken ? { idToken: tokens.idToken } : {}),
    tokenType: 'Bearer',
    scope: 'openid offline_access email',
    expiresAt: tokens.expiresAt,
    obtainedAt: now - 60_000,
    createdAt: now - 60_000,
    endsAt: now + 14 * DAY_MS,
  };
}

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i]!, i);
      }
    }),
  );
  return results;
}

interface Seeded {
  /** `latchkey_rt=…` for each sample session */
  cookies: string[];
  seedMs: number;
}

/** Writes `total` sessions into the home's store, `sample` of them with real grants and an expired access token. */
async function seed(home: string, key: SealKey, idp: IdpProcess, total: number, sample: number): Promise<Seeded> {
  const store = new FileStore({ path: homePaths(home).store });
  const sessions = new SessionStore({ store, key, clock: { now: () => Date.now() }, refreshTtlMs: 14 * DAY_MS });
  const cookies = new SessionCookies(key, { now: () => Date.now() }, 30_000);
  const start = Date.now();
  try {
    const grants = await pool(Array.from({ length: sample }, (_, i) => i), 4, () => idp.mintGrant({ clientId: CLIENT.clientId, scope: 'openid offline_access email', login: 'alice' }));
    const out: string[] = [];
    await pool(grants, SEED_CONCURRENCY, async (g, i) => {
      const sid = newSessionId();
      const now = Date.now();
      const data = sessionData(now, { access: g.access_token, refresh: g.refresh_token, expiresAt: now - 1_000, idToken: g.id_token }, `user${i}`);
      await sessions.create(sid, data);
      const rt = cookies.issue(LOOPBACK_SHAPE, sid, data).find((h) => h.startsWith('latchkey_rt='));
      if (!rt) throw new Error('the gateway issued no refresh cookie for a seeded session');
      out.push(rt.slice(0, rt.indexOf(';')));
    });
    const fillers = Array.from({ length: Math.max(0, total - sample) }, (_, i) => i);
    await pool(fillers, SEED_CONCURRENCY, async (i) => {
      const now = Date.now();
      const fake = (): string => randomBytes(32).toString('base64url');
      await sessions.create(newSessionId(), sessionData(now, { access: fake(), refresh: fake(), expiresAt: now + 3_600_000 }, `filler${i}`));
    });
    return { cookies: out, seedMs: Date.now() - start };
  } finally {
    await store.close();
  }
}

async function rssKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  const text = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? Number.NaN);
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

async function dirBytes(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    files += 1;
    bytes += (await stat(join(entry.parentPath ?? dir, entry.name))).size;
  }
  return { files, bytes };
}

interface PhaseResult {
  subject: string;
  sessions: number;
  latenciesMs: number[];
  statuses: Record<string, number>;
  idp: IdpCounters;
  rssKiB: number;
  hwmKiB: number;
  rssIdleKiB: number;
  seedMs: number;
  disk: { files: number; bytes: number };
}

function diff(after: IdpCounters, before: IdpCounters): IdpCounters {
  const d = { ...after };
  for (const k of Object.keys(d) as (keyof IdpCounters)[]) d[k] = after[k] - before[k];
  return d;
}

async function phase(subject: string, total: number, gut: GatewayUnderTest, idp: IdpProcess): Promise<PhaseResult> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-scale-'));
  try {
    const key = await loadOrCreateKeyFile(home);
    note(`${subject}: writing ${total} sessions (${SAMPLE} with real grants)…`);
    const seeded = await seed(home, key, idp, total, SAMPLE);
    note(`${subject}: seeded in ${Math.round(seeded.seedMs / 1000)} s`);
    const gw = await startLatchkeyGateway({ ...gut, home });
    try {
      // The gateway's own warm-up (discovery, JWKS, first store access) is not a refresh.
      await (await fetch(`${gw.url}/readyz`)).arrayBuffer();
      const idle = await rssKiB(gw.pid);
      const before = await idp.stats();
      const statuses: Record<string, number> = {};
      const latenciesMs = await pool(seeded.cookies, CONCURRENCY, async (cookie) => {
        const t0 = performance.now();
        const res = await fetch(`${gw.url}/whoami`, { headers: { cookie, accept: 'application/json' }, signal: AbortSignal.timeout(30_000) });
        await res.arrayBuffer();
        const ms = performance.now() - t0;
        statuses[String(res.status)] = (statuses[String(res.status)] ?? 0) + 1;
        return ms;
      });
      const idpDiff = diff(await idp.stats(), before);
      const mem = await rssKiB(gw.pid);
      const disk = await dirBytes(join(home));
      return { subject, sessions: total, latenciesMs, statuses, idp: idpDiff, rssKiB: mem.rss, hwmKiB: mem.hwm, rssIdleKiB: idle.rss, seedMs: seeded.seedMs, disk };
    } finally {
      await gw.close();
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

function report(r: PhaseResult): void {
  const ok = r.statuses['200'] ?? 0;
  const subject = r.subject;
  const common = { sessionsInStore: r.sessions, refreshed: SAMPLE, concurrency: CONCURRENCY };
  out({
    figure: 'refresh_p99_ms',
    value: quantile(r.latenciesMs, 0.99),
    unit: 'ms',
    subject,
    extra: { p50Ms: Math.round(quantile(r.latenciesMs, 0.5)), maxMs: Math.round(Math.max(...r.latenciesMs)), ...common, note: 'one request per session carrying only its refresh cookie; each refreshes at the IdP' },
  });
  out({ figure: 'refresh_ok', value: ok, limit: SAMPLE, compare: 'min', unit: 'requests', subject, extra: { statuses: r.statuses, idpRefreshes: r.idp.refreshRequests, idpRefreshSuccesses: r.idp.refreshSuccesses, revokedGrants: r.idp.revokedGrants } });
  out({ figure: 'idp_refreshes', value: r.idp.refreshRequests, limit: SAMPLE, unit: 'calls', subject, extra: { rule: 'one per refreshed session' } });
  out({ figure: 'rss_mib', value: r.rssKiB / 1024, unit: 'MiB', subject, extra: { peakMiB: Math.round(r.hwmKiB / 102.4) / 10, beforeRefreshesMiB: Math.round(r.rssIdleKiB / 102.4) / 10, ...common } });
  out({ figure: 'store_on_disk_mib', value: r.disk.bytes / 1048576, unit: 'MiB', subject, extra: { files: r.disk.files, seedSeconds: Math.round(r.seedMs / 1000) } });
}

async function main(): Promise<void> {
  note(`${BENCH}: ${SESSIONS} sessions in the file store, ${SAMPLE} refreshed (${CONCURRENCY} at a time); reference: a store of ${SAMPLE}`);
  const idp = await startIdpProcess({ accessTtl: 300, redirectUris: ['http://127.0.0.1/auth/callback'] });
  idpToClose = idp;
  try {
    const upstream = await startUpstreamProcess();
    const gut: GatewayUnderTest = { upstream: upstream.url, issuer: idp.info.issuer, clientId: CLIENT.clientId, clientSecret: CLIENT.clientSecret ?? '' };
    const small = await phase(`latchkey-${SAMPLE}`, SAMPLE, gut, idp);
    report(small);
    const big = await phase('latchkey', SESSIONS, gut, idp);
    report(big);
    out({ figure: 'refresh_p99_ratio_vs_small_store', value: quantile(big.latenciesMs, 0.99) / quantile(small.latenciesMs, 0.99), unit: `x ${SAMPLE} sessions`, subject: 'latchkey', extra: { sessions: SESSIONS } });
    out({ figure: 'rss_added_mib', value: (big.rssKiB - small.rssKiB) / 1024, unit: 'MiB', subject: 'latchkey', extra: { note: `RSS with ${SESSIONS} sessions minus RSS with ${SAMPLE}` } });
  } finally {
    await stopAll();
    await idp.close();
  }
}

main().catch((err: unknown) => {
  note(`${BENCH} could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  void stopAll().finally(() => process.exit(1));
});
