/**
 * Stampede: 8 worker processes x 32 concurrent callers for 30 s on ONE rotating grant,
 * access-token TTL 2 s, against the real IdP (oidc-provider, refresh-token rotation with
 * reuse detection) running in its own process. Each caller loops: token, then GET the
 * protected endpoint with it.
 *
 * Two subjects, one after the other in the same run, each with its own freshly minted grant
 * and the IdP to itself (2 cores: running both at once would measure the scheduler):
 *
 * - `latchkey`: every worker opens Latchkey on one shared LATCHKEY_HOME (an `oauth` source,
 *   client `public-client`, grant installed with `installGrant`, as `latchkey import` does);
 * - `peer`: openid-client refreshing from a shared JSON file with in-process single-flight
 *   only (bench/stampede-peer-worker.ts).
 *
 * Worker processes of both subjects run at nice 10 (CLIENT_NICE in bench/lib/spawn.ts): the IdP
 * stands in for another machine and must not be starved by closed-loop clients.
 *
 * Figures per subject: grants revoked (IdP; limit 0), % of attempts that got a 200 from the
 * protected endpoint (limit 100), IdP refresh calls (limit: one per refresh window + 1),
 * failed calls, total protected calls and calls/s. Then ratios where meaningful.
 *
 * LATCHKEY_BENCH_SECONDS shortens the run (default 30); LATCHKEY_BENCH_SUBJECTS=latchkey or
 * =peer runs one subject only. Workers stop at the deadline; any worker still alive 20 s
 * after it is SIGKILLed, and the IdP is always stopped.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expiresAtFrom } from '../src/engine/fresh-token.js';
import { FileStore, homePaths } from '../src/index.js';
import { startIdpProcess, type IdpProcess } from '../test/fixtures/idp-process.js';
import type { IdpCounters } from '../test/fixtures/idp.js';
import { installGrant, makeHome } from './lib/home.js';
import type { LoadCounts } from './lib/load.js';
import { loadTotals, noteStragglers, refreshWindow, reportAuthorized } from './lib/load-report.js';
import { note, reporter } from './lib/report.js';
import { CLIENT_NICE, spawnWorker, type WorkerResult } from './lib/spawn.js';

const BENCH = 'stampede';
const WORKERS = Number(process.env.LATCHKEY_BENCH_WORKERS ?? 8);
const CALLERS = Number(process.env.LATCHKEY_BENCH_CALLERS ?? 32);
const SECONDS = Number(process.env.LATCHKEY_BENCH_SECONDS ?? 30);
const TTL_S = 2;
const SOURCE = 'idp';
/** Time for the workers to start (node + imports + discovery on 2 busy cores) before the load begins. */
const START_DELAY_MS = Number(process.env.LATCHKEY_BENCH_START_DELAY_MS ?? 4_000);
const KILL_AFTER_DEADLINE_MS = 20_000;

const here = fileURLToPath(new URL('.', import.meta.url));
const out = reporter(BENCH);

interface PhaseResult {
  subject: 'latchkey' | 'peer';
  durationMs: number;
  idp: IdpCounters;
  workers: WorkerResult<LoadCounts>[];
  extra: Record<string, unknown>;
}

function diff(after: IdpCounters, before: IdpCounters): IdpCounters {
  const d = { ...after };
  for (const k of Object.keys(d) as (keyof IdpCounters)[]) d[k] = after[k] - before[k];
  return d;
}

/** Everything to stop if the bench itself is interrupted (Ctrl-C): workers and the IdP. */
const children = new Set<{ kill(signal?: NodeJS.Signals): boolean }>();
let idpToClose: IdpProcess | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    for (const c of children) c.kill('SIGKILL');
    void (idpToClose?.close() ?? Promise.resolve()).finally(() => process.exit(130));
  });
}

async function runWorkers(script: string, argsFor: (startAt: number, deadline: number) => string[]): Promise<{ workers: WorkerResult<LoadCounts>[]; durationMs: number }> {
  const startAt = Date.now() + START_DELAY_MS;
  const deadline = startAt + SECONDS * 1000;
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const spawned = Array.from({ length: WORKERS }, () => spawnWorker<LoadCounts>(join(here, script), argsFor(startAt, deadline), { env, killAt: deadline + KILL_AFTER_DEADLINE_MS, nice: CLIENT_NICE }));
  for (const w of spawned) children.add(w.child);
  const workers = await Promise.all(spawned.map((w) => w.done));
  for (const w of spawned) children.delete(w.child);
  return { workers, durationMs: deadline - startAt };
}

async function latchkeyPhase(idp: IdpProcess): Promise<PhaseResult> {
  const h = await makeHome('stampede', { [SOURCE]: { oauth: { tokenEndpoint: idp.info.tokenEndpoint, clientId: 'public-client' } } });
  try {
    await installGrant(h.home, SOURCE, await idp.mintGrant({ clientId: 'public-client' }));
    const before = await idp.stats();
    const { workers, durationMs } = await runWorkers('stampede-worker.js', (startAt, deadline) => [
      '--home', h.home, '--source', SOURCE, '--url', idp.info.protectedUrl, '--callers', String(CALLERS), '--start-at', String(startAt), '--deadline', String(deadline),
    ]);
    const idpStats = diff(await idp.stats(), before);
    const rec = await new FileStore({ path: homePaths(h.home).store }).read(SOURCE);
    return {
      subject: 'latchkey',
      durationMs,
      idp: idpStats,
      workers,
      extra: { storeRefreshCount: rec?.refreshCount ?? 0, storeGrantRevoked: rec?.grant?.revoked !== undefined },
    };
  } finally {
    await h.remove();
  }
}

async function peerPhase(idp: IdpProcess): Promise<PhaseResult> {
  const h = await makeHome('stampede-peer', {});
  try {
    const grant = await idp.mintGrant({ clientId: 'public-client' });
    const now = Date.now();
    const file = join(h.home, 'peer-tokens.json');
    await writeFile(
      file,
      JSON.stringify({ access_token: grant.access_token, refresh_token: grant.refresh_token, expires_at: expiresAtFrom(now, grant.expires_in), obtained_at: now }),
      { mode: 0o600 },
    );
    const before = await idp.stats();
    const { workers, durationMs } = await runWorkers('stampede-peer-worker.js', (startAt, deadline) => [
      '--file', file, '--issuer', idp.info.issuer, '--url', idp.info.protectedUrl, '--callers', String(CALLERS), '--start-at', String(startAt), '--deadline', String(deadline),
    ]);
    return { subject: 'peer', durationMs, idp: diff(await idp.stats(), before), workers, extra: {} };
  } finally {
    await h.remove();
  }
}

interface Summary {
  refreshCalls: number;
  attempts: number;
  authorized: number;
  failed: number;
  protectedCalls: number;
  authorizedPct: number;
  callsPerS: number;
}

function report(p: PhaseResult): Summary {
  const subject = p.subject;
  const t = loadTotals(subject, p.workers);
  const seconds = p.durationMs / 1000;
  const load = { workers: p.workers.length, callersPerWorker: CALLERS, seconds, accessTokenTtlS: TTL_S };

  // One refresh per window (refreshWindow: the part of a token's lifetime before its refresh is
  // due, as the engine counts it). Nominal: the TTL taken at face value.
  const { lifetimeMs: effLifetime, windowMs: effInterval } = refreshWindow(TTL_S);
  const nomLifetime = TTL_S * 1000;
  const nomInterval = nomLifetime - Math.min(120_000, nomLifetime / 3);
  const limit = Math.ceil(p.durationMs / effInterval) + 1;
  const nominalLimit = Math.ceil(p.durationMs / nomInterval) + 1;

  out({ figure: 'revoked_grants', value: p.idp.revokedGrants, limit: 0, unit: 'grants', subject, extra: { source: 'IdP stats (reuse detection at the token endpoint)', ...load } });
  reportAuthorized(out, subject, p.workers, t, { idpProtectedOk: p.idp.protectedOk, idpProtectedUnauthorized: p.idp.protectedUnauthorized });
  out({
    figure: 'idp_refresh_calls',
    value: p.idp.refreshRequests,
    limit,
    unit: 'calls',
    subject,
    extra: {
      refreshSuccesses: p.idp.refreshSuccesses,
      refreshFailures: p.idp.refreshFailures,
      rule: `ceil(${p.durationMs} ms / ${Math.round(effInterval)} ms window) + 1; window = (TTL counted as ${effLifetime} ms) - skew min(120 s, lifetime/3)`,
      nominalLimit,
      nominalPass: p.idp.refreshRequests <= nominalLimit,
      nominalRule: `ceil(${p.durationMs} ms / ${Math.round(nomInterval)} ms) + 1 with the 2 s TTL at face value`,
      ...t.extraTotals,
      ...p.extra,
    },
  });
  out({ figure: 'protected_calls', value: t.protectedCalls, unit: 'calls', subject, extra: { attempts: t.attempts } });
  out({ figure: 'calls_per_s', value: t.protectedCalls / seconds, unit: 'calls/s', subject, extra: { authorizedPerS: Math.round(t.authorized / seconds) } });
  noteStragglers(subject, p.workers);
  return { refreshCalls: p.idp.refreshRequests, attempts: t.attempts, authorized: t.authorized, failed: t.failed, protectedCalls: t.protectedCalls, authorizedPct: t.authorizedPct, callsPerS: t.protectedCalls / seconds };
}

async function main(): Promise<void> {
  const subjects = (process.env.LATCHKEY_BENCH_SUBJECTS ?? 'latchkey,peer').split(',');
  note(`stampede: ${WORKERS} workers x ${CALLERS} callers, ${SECONDS} s per subject, access TTL ${TTL_S} s (${subjects.join(' then ')})`);
  const idp = await startIdpProcess({ accessTtl: TTL_S });
  idpToClose = idp;
  const summaries: Partial<Record<'latchkey' | 'peer', Summary>> = {};
  try {
    if (subjects.includes('latchkey')) summaries.latchkey = report(await latchkeyPhase(idp));
    if (subjects.includes('peer')) summaries.peer = report(await peerPhase(idp));
  } finally {
    await idp.close();
  }
  const { latchkey: lk, peer } = summaries;
  if (lk && peer) {
    out({
      figure: 'idp_refresh_calls_ratio',
      value: peer.refreshCalls / Math.max(1, lk.refreshCalls),
      unit: 'x latchkey',
      subject: 'peer',
      extra: { peerRefreshCalls: peer.refreshCalls, latchkeyRefreshCalls: lk.refreshCalls },
    });
    // Only meaningful while the peer still gets some calls through.
    if (peer.authorized > 0) {
      out({
        figure: 'authorized_calls_ratio',
        value: lk.authorized / peer.authorized,
        unit: 'x peer',
        subject: 'latchkey',
        extra: { latchkeyAuthorized: lk.authorized, peerAuthorized: peer.authorized },
      });
    }
  }
}

main().catch((err: unknown) => {
  note(`stampede could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
