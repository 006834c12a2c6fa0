/**
 * Claim before use under faults (docs/DESIGN.md "Fleet mode: claim before use"), each against
 * the real IdP with rotation and reuse detection, through the real PostgreSQL server, with the
 * refreshing process a real child process (test/helpers/pg-refresher.ts) and a latency proxy in
 * front of the token endpoint so that its call is in flight when the fault strikes:
 *
 * - its database connections killed (`pg_terminate_backend`) while its token call is in flight;
 * - the process paused (SIGSTOP) past its lease, a peer coming meanwhile, then resumed;
 * - its commit running into a statement timeout;
 * - the server restarted mid-refresh (a private cluster: initdb + pg_ctl).
 *
 * In every case: the IdP's reuse detection never fires (no refresh token replayed), the rotated
 * grant ends up in the store, every process finishes (bounded waits), and what went wrong is said.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { Secret } from '../../src/core/secret.js';
import type { PgStore } from '../../src/store/pg/pg-store.js';
import { startIdp, type Idp, type TokenResponse } from '../fixtures/idp.js';
import { freshPgSchema, openPgStore, pgExec, pgSkipReason, pgTestUrl, withSchema } from '../fixtures/pg.js';
import { privateClusterSkipReason, startPrivateCluster } from '../fixtures/pg-cluster.js';
import { repoRoot } from '../helpers/home.js';
import { startLatencyProxy, type LatencyProxy } from '../helpers/latency-proxy.js';
import { writeRecord } from '../helpers/store.js';

const skip = pgSkipReason();

interface Line {
  ready?: number;
  event?: { outcome: string; message?: string };
  token?: string;
  error?: { code?: string; message: string };
  unsaved?: string | null;
  unsavedAfterFlush?: string | null;
  closed?: boolean;
}

interface Refresher {
  pid: number;
  lines: Line[];
  /** The first line (already seen or still to come) that `pred` accepts. */
  line(pred: (l: Line) => boolean, what: string): Promise<Line>;
  exited: Promise<number | null>;
  events(): string[];
}

function startRefresher(opts: Record<string, unknown>): Refresher {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/test/helpers/pg-refresher.js'), JSON.stringify(opts)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines: Line[] = [];
  const waiters: { pred: (l: Line) => boolean; resolve(l: Line): void }[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i !== -1; i = buf.indexOf('\n')) {
      const l = JSON.parse(buf.slice(0, i)) as Line;
      buf = buf.slice(i + 1);
      lines.push(l);
      for (const w of [...waiters]) if (w.pred(l)) w.resolve(l);
    }
  });
  // Bounded: a child that hangs fails the test instead of hanging it.
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => (clearTimeout(killer), resolve(code))));
  return {
    pid: child.pid!,
    lines,
    exited,
    events: () => lines.filter((l) => l.event).map((l) => l.event!.outcome),
    line(pred, what) {
      const seen = lines.find(pred);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        waiters.push({ pred, resolve });
        void exited.then(() => {
          const l = lines.find(pred);
          if (l) resolve(l);
          else reject(new Error(`the refresher exited without ${what}: ${JSON.stringify(lines)}`));
        });
      });
    },
  };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, boundMs = 30_000): Promise<void> {
  const end = Date.now() + boundMs;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`still waiting for ${what} after ${boundMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let idp: Idp;
let proxy: LatencyProxy;
let delayMs = 0;
let tokenEndpoint: string;

before(async () => {
  if (skip) return;
  idp = await startIdp({ accessTokenTtl: 60 });
  proxy = await startLatencyProxy(idp.issuer, () => delayMs);
  tokenEndpoint = `${proxy.url}${new URL(idp.tokenEndpoint).pathname}`;
});
after(async () => {
  await proxy?.close();
  await idp?.close();
});

/** A fresh schema holding source "s" with an expired access token and a live refresh token; the IdP's counters zeroed. */
async function seeded(t: { after(fn: () => Promise<void>): void }, url?: string): Promise<{ url: string; schema: string; store: PgStore; minted: TokenResponse }> {
  let f: { url: string; schema: string; cleanup(): Promise<void> };
  if (url === undefined) f = await freshPgSchema();
  else {
    const u = withSchema(url, 'latchkey');
    const s = openPgStore(u);
    await s.migrate();
    await s.close();
    f = { url: u, schema: 'latchkey', cleanup: async () => undefined };
  }
  const store = openPgStore(f.url);
  t.after(async () => {
    await store.close();
    await f.cleanup();
  });
  const minted = await idp.mintGrant();
  const now = Date.now();
  await writeRecord(store, 's', { grant: { accessToken: new Secret(minted.access_token), refreshToken: new Secret(minted.refresh_token), obtainedAt: now - 120_000, expiresAt: now - 1_000 } }, 0);
  idp.stats.reset();
  proxy.requests.length = 0;
  return { url: f.url, schema: f.schema, store, minted };
}

/** The rotated refresh token the IdP handed out (through the proxy), and that it is the one stored and still live. */
async function assertRotationKept(store: PgStore): Promise<void> {
  const rotated = proxy.requests.filter((r) => r.refreshToken !== undefined);
  assert.equal(rotated.length, 1, 'the IdP rotated once');
  const rec = await store.read('s');
  assert.equal(rec?.grant?.refreshToken?.reveal(), rotated[0]!.refreshToken, 'the store holds the rotated refresh token');
  assert.equal(rec?.lastFailure, undefined, 'no failure left recorded');
  // Live: the stored refresh token works at the IdP (a replayed or lost one would not).
  const again = await idp.tokenRequest('public-client', { grant_type: 'refresh_token', refresh_token: rotated[0]!.refreshToken! });
  assert.equal(again.status, 200, JSON.stringify(again.body));
  assert.equal(idp.stats.revokedGrants, 0, 'no reuse detected: no refresh token was replayed');
}

test('pg_terminate_backend on the refreshing process while its token call is in flight: the commit uses a new connection; a peer waits and adopts; no replay', { skip }, async (t) => {
  const { url, store, minted } = await seeded(t);
  delayMs = 1_500;
  const a = startRefresher({ url, tokenEndpoint });
  await a.line((l) => l.ready !== undefined, 'starting');
  await until(() => proxy.requests.length === 1, "A's token call reaching the IdP proxy");
  const killed = await pgExec<{ t: boolean }>(`SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE application_name LIKE $1`, [`latchkey ${a.pid}@%`]);
  assert.ok(killed.length >= 1 && killed.every((k) => k.t), `A's connections were terminated (${killed.length})`);
  // A peer arrives while A's call is still in flight: the claim is a committed row, not a lock of
  // the killed connection, so the peer waits for it instead of reading the token A is spending.
  const b = startRefresher({ url, tokenEndpoint });
  const [aTok, bTok] = await Promise.all([a.line((l) => 'token' in l || 'error' in l, 'a token'), b.line((l) => 'token' in l || 'error' in l, 'a token')]);
  assert.equal(await a.exited, 0);
  assert.equal(await b.exited, 0);
  assert.ok(aTok.token !== undefined && aTok.token !== minted.access_token, `A refreshed (${JSON.stringify(a.lines)})`);
  assert.equal(bTok.token, aTok.token, 'B adopted what A committed');
  assert.deepEqual(a.events(), ['refreshed']);
  assert.deepEqual(b.events(), ['adopted']);
  assert.equal(idp.stats.refreshRequests, 1, 'one refresh at the IdP');
  await assertRotationKept(store);
});

test('the refreshing process SIGSTOPped past its lease, then resumed: the peer does not send the maybe-consumed token; the late commit is refused, held, and saved under a new claim; no replay', { skip }, async (t) => {
  const { url, store, minted } = await seeded(t);
  delayMs = 300;
  const a = startRefresher({ url, tokenEndpoint, leaseMs: 1_000 });
  await a.line((l) => l.ready !== undefined, 'starting');
  await until(() => proxy.requests.length === 1, "A's token call reaching the IdP proxy");
  process.kill(a.pid, 'SIGSTOP');
  try {
    // The IdP rotates while A is stopped: the answer waits in A's socket, unread.
    await until(() => proxy.requests[0]!.answeredAt !== undefined, 'the IdP answering A');
    await sleep(2_000); // A's 1 s lease runs out: a stopped process renews nothing
    const b = startRefresher({ url, tokenEndpoint, leaseMs: 1_000 });
    const bTok = await b.line((l) => 'token' in l || 'error' in l, 'a token');
    assert.equal(await b.exited, 0);
    assert.equal(bTok.token, minted.access_token, 'B served the current access token (fail open) rather than send a refresh token A may have consumed');
    assert.equal(idp.stats.refreshRequests, 1, 'B did not call the IdP');
    const stamped = await store.read('s');
    assert.equal(stamped?.lastFailure?.maybeConsumed, true, 'the takeover recorded the token as maybe consumed, for every process');
    assert.match(stamped?.lastFailure?.message ?? '', /lost its lease mid-refresh/);
  } finally {
    process.kill(a.pid, 'SIGCONT');
  }
  const aTok = await a.line((l) => 'token' in l || 'error' in l, 'a token');
  assert.equal(await a.exited, 0);
  assert.ok(aTok.token !== undefined && aTok.token !== minted.access_token, `A got the rotated grant (${JSON.stringify(a.lines)})`);
  const unsaved = a.lines.find((l) => l.event?.outcome === 'unsaved');
  assert.match(unsaved?.event?.message ?? '', /claim .* was lost/, 'its commit was refused: the claim was lost');
  assert.deepEqual(a.events(), ['unsaved', 'saved'], 'held, then saved under a new claim');
  assert.equal(a.lines.find((l) => 'unsavedAfterFlush' in l)?.unsavedAfterFlush, null);
  assert.equal(idp.stats.refreshRequests, 1);
  await assertRotationKept(store);
});

test('a statement timeout on the commit (another session holds the claim row): the write is retried, the rotation saved, nothing replayed', { skip }, async (t) => {
  const { url, schema, store, minted } = await seeded(t);
  delayMs = 500;
  const a = startRefresher({ url, tokenEndpoint, statementTimeoutMs: 300, lockTimeoutMs: 20_000 });
  await a.line((l) => l.ready !== undefined, 'starting');
  await until(() => proxy.requests.length === 1, "A's token call reaching the IdP proxy");
  // A stuck session (an operator's open transaction) locks the row A's commit must lock.
  const blocker = new pg.Client({ connectionString: pgTestUrl() });
  blocker.on('error', () => undefined);
  await blocker.connect();
  try {
    await blocker.query('BEGIN');
    await blocker.query(`SELECT 1 FROM "${schema}".claims WHERE key = 's' FOR UPDATE`);
    // A's commit waits on the lock, times out (statement_timeout), and is tried again: seen as
    // two different waiting statements of A's backends.
    const starts = new Set<string>();
    await until(async () => {
      const rows = await pgExec<{ s: string }>(`SELECT query_start::text AS s FROM pg_stat_activity WHERE application_name LIKE $1 AND wait_event_type = 'Lock'`, [`latchkey ${a.pid}@%`]);
      for (const r of rows) starts.add(r.s);
      return starts.size >= 2;
    }, "A's commit timing out and being retried");
  } finally {
    await blocker.query('ROLLBACK').catch(() => undefined);
    await blocker.end();
  }
  const aTok = await a.line((l) => 'token' in l || 'error' in l, 'a token');
  assert.equal(await a.exited, 0);
  assert.ok(aTok.token !== undefined && aTok.token !== minted.access_token, JSON.stringify(a.lines));
  const refreshed = a.lines.find((l) => l.event?.outcome === 'refreshed');
  assert.match(refreshed?.event?.message ?? '', /saved at attempt \d \(.*statement timeout/, 'the event says the first write timed out');
  assert.equal(idp.stats.refreshRequests, 1);
  await assertRotationKept(store);
});

test('the server restarted mid-refresh (private cluster): the claim survives the restart, the commit reconnects, no replay', { skip: skip || privateClusterSkipReason() }, async (t) => {
  const cluster = await startPrivateCluster();
  t.after(() => cluster.stop());
  const { url, store, minted } = await seeded(t, cluster.url);
  delayMs = 1_500;
  const a = startRefresher({ url, tokenEndpoint });
  await a.line((l) => l.ready !== undefined, 'starting');
  await until(() => proxy.requests.length === 1, "A's token call reaching the IdP proxy");
  await cluster.restart();
  // A peer right after the restart: the committed claim is still there, so it waits.
  const b = startRefresher({ url, tokenEndpoint });
  const [aTok, bTok] = await Promise.all([a.line((l) => 'token' in l || 'error' in l, 'a token'), b.line((l) => 'token' in l || 'error' in l, 'a token')]);
  assert.equal(await a.exited, 0);
  assert.equal(await b.exited, 0);
  assert.ok(aTok.token !== undefined && aTok.token !== minted.access_token, JSON.stringify(a.lines));
  assert.equal(bTok.token, aTok.token, `B adopted A's rotation (${JSON.stringify(b.lines)})`);
  assert.equal(idp.stats.refreshRequests, 1);
  await assertRotationKept(store);
});
