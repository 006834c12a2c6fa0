/**
 * Refresh storm: 200 concurrent requests carrying the same stale session (the access token
 * expired, the access cookie gone, the refresh cookie present), split across 2 gateway
 * processes, 20 rounds. This is a dashboard with many tabs or panels waking from sleep, behind
 * two replicas.
 *
 * Each round waits until the access token has expired, sends the 200 requests at once with the
 * cookies a browser would send (from the jar: the expired access cookie is not sent), then
 * stores the `Set-Cookie` headers of the answers in completion order, as a browser would (the
 * last one wins), for the next round.
 *
 * Subjects, one after the other against the same IdP process, each signed in through the real
 * authorization-code flow:
 * - `latchkey`: two `latchkey gateway` processes on one LATCHKEY_HOME (the file store);
 * - `peer`: two express-openid-connect processes sharing their session secret, with the
 *   refresh-when-expired middleware of its documentation (bench/gateway-peer-server.ts).
 *
 * Figures per subject: logouts (answers telling the browser it is signed out: 401 or a
 * redirect to the login; goal 0; with the answers that deleted the refresh cookie alongside),
 * revoked grants at the IdP (reuse detection; goal 0), IdP
 * refresh calls (goal: exactly one per round), % of requests answered 200 by the upstream,
 * and the storm's p99 latency.
 *
 * Env: LATCHKEY_BENCH_ROUNDS (default 20), LATCHKEY_BENCH_STORM (requests per round,
 * default 200), LATCHKEY_BENCH_TTL (access-token lifetime, s, default 5: a round that outlasts
 * the new token's due time legitimately needs a second refresh, see DUE_AFTER_MS),
 * LATCHKEY_BENCH_SUBJECTS (default latchkey,peer).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expiresAtFrom, refreshDueAt } from '../src/engine/expiry.js';
import { cookieAccess, type JarCookie } from '../src/remote/cookie-jar.js';
import { TEST_CLIENTS } from '../test/fixtures/idp-clients.js';
import type { IdpCounters } from '../test/fixtures/idp-counters.js';
import { startIdpProcess, type IdpProcess } from '../test/fixtures/idp-process.js';
import { signIn } from '../test/helpers/browserless-login.js';
import { getJson, startLatchkeyGateway, startPeerProcess, stopAll, startUpstreamProcess, type GatewayUnderTest, type ServerProcess } from './lib/gateway-procs.js';
import { figureLine, note, reporter } from './lib/report.js';
import { quantile } from './lib/stats.js';

const BENCH = 'gateway-storm';
const ROUNDS = Number(process.env.LATCHKEY_BENCH_ROUNDS ?? 20);
const STORM = Number(process.env.LATCHKEY_BENCH_STORM ?? 200);
const TTL_S = Number(process.env.LATCHKEY_BENCH_TTL ?? 5);
/** The gateway's refresh skew (refreshSkewSeconds default), capped at a third of the lifetime. */
const GATEWAY_SKEW_MS = 30_000;
/**
 * How long after a refresh the new access token is due again (the gateway's rule: expiry counted
 * as TTL - 1 s, minus the skew). A round that lasts longer than this legitimately refreshes
 * twice, so the TTL must leave room for the slowest round (2 s: ~0.67 s, too short on a loaded
 * 2-core machine; 5 s: ~2.7 s).
 */
const DUE_AFTER_MS = (() => {
  const expiresAt = expiresAtFrom(0, TTL_S);
  return refreshDueAt({ expiresAt, obtainedAt: 0 }, GATEWAY_SKEW_MS);
})();
const CLIENT = TEST_CLIENTS['basic-client'];
const out = reporter(BENCH);

type Subject = 'latchkey' | 'peer';

let idpToClose: IdpProcess | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.all([stopAll(), idpToClose?.close()]).finally(() => process.exit(130));
  });
}

interface StormResult {
  subject: Subject;
  requests: number;
  ok: number;
  logouts: number;
  unavailable: number;
  other: number;
  /** answers that deleted the browser's session cookie (the refresh cookie, or the peer's appSession) */
  cookieClears: number;
  statuses: Record<string, number>;
  latenciesMs: number[];
  idp: IdpCounters;
  sessionAliveAfter: boolean;
  /** The slowest round: from its first request to its last answer. */
  longestRoundMs: number;
  extra: Record<string, unknown>;
}

function diff(after: IdpCounters, before: IdpCounters): IdpCounters {
  const d = { ...after };
  for (const k of Object.keys(d) as (keyof IdpCounters)[]) d[k] = after[k] - before[k];
  return d;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One request of the storm: status, Set-Cookie headers, latency. */
async function hit(url: string, cookie: string): Promise<{ status: number; location: string | null; setCookies: string[]; ms: number; error?: string }> {
  const start = performance.now();
  try {
    const res = await fetch(url, { redirect: 'manual', headers: { cookie, accept: 'application/json' }, signal: AbortSignal.timeout(30_000) });
    await res.arrayBuffer();
    return { status: res.status, location: res.headers.get('location'), setCookies: res.headers.getSetCookie(), ms: performance.now() - start };
  } catch (err) {
    return { status: 0, location: null, setCookies: [], ms: performance.now() - start, error: err instanceof Error ? err.message : String(err) };
  }
}

/** A `Set-Cookie` that deletes the session itself: the refresh cookie (any variant) or the peer's `appSession`. */
function deletesSessionCookie(header: string): boolean {
  const name = header.slice(0, header.indexOf('=')).trim();
  if (!/^(__Host-|__Secure-)?latchkey_rt$|^appSession(\.\d+)?$/.test(name)) return false;
  return /;\s*max-age=0\b/i.test(header) || /;\s*expires=[^;]*1970/i.test(header);
}

/**
 * Runs the rounds against `servers` (requests alternate between them) with a browser signed in
 * at `signInUrl`.
 */
async function storm(subject: Subject, servers: ServerProcess[], signInUrl: string, idp: IdpProcess): Promise<StormResult> {
  const signedIn = await signIn(signInUrl);
  if (signedIn.finalStatus !== 200 || !signedIn.finalBody.includes('"user":"alice"')) {
    throw new Error(`${subject}: sign-in did not reach the upstream (${signedIn.finalStatus}): ${signedIn.hops.map((h) => `${h.method} ${h.url} ${h.status}`).join(' → ')}`);
  }
  // One jar for the host: a browser shares cookies across ports of 127.0.0.1.
  const jar: Map<string, JarCookie> = signedIn.jar;
  const access = cookieAccess(jar);
  const before = await idp.stats();
  const r: StormResult = { subject, requests: 0, ok: 0, logouts: 0, unavailable: 0, other: 0, cookieClears: 0, statuses: {}, latenciesMs: [], idp: before, sessionAliveAfter: false, longestRoundMs: 0, extra: {} };
  const errors: Record<string, number> = {};
  for (let round = 0; round < ROUNDS; round++) {
    await sleep(TTL_S * 1000 + 300);
    const now = Date.now();
    const urls = servers.map((s) => new URL('/whoami', s.url));
    const cookie = (await access.forRequest(urls[0]!, now)).map((c) => `${c.name}=${c.value}`).join('; ');
    const roundStart = performance.now();
    const answers = await Promise.all(
      Array.from({ length: STORM }, async (_, i) => {
        const url = urls[i % urls.length]!;
        const a = await hit(url.href, cookie);
        // Stored as each answer arrives (completion order), like a browser.
        await access.apply(url, a.setCookies, Date.now());
        return a;
      }),
    );
    r.longestRoundMs = Math.max(r.longestRoundMs, performance.now() - roundStart);
    let roundOk = 0;
    for (const a of answers) {
      r.requests += 1;
      r.statuses[String(a.status)] = (r.statuses[String(a.status)] ?? 0) + 1;
      r.latenciesMs.push(a.ms);
      if (a.status === 200) {
        r.ok += 1;
        roundOk += 1;
      } else if (a.status === 401 || (a.status >= 300 && a.status < 400 && /login|\/auth\b|authorize/i.test(a.location ?? ''))) r.logouts += 1;
      else if (a.status === 503) r.unavailable += 1;
      else r.other += 1;
      if (a.setCookies.some(deletesSessionCookie)) r.cookieClears += 1;
      if (a.error) errors[a.error] = (errors[a.error] ?? 0) + 1;
    }
    note(`${subject} round ${round + 1}/${ROUNDS}: ${roundOk}/${STORM} ok`);
  }
  r.idp = diff(await idp.stats(), before);
  // Is the browser still signed in after the storms? One more request with what it holds now.
  await sleep(TTL_S * 1000 + 300);
  const finalUrl = new URL('/whoami', servers[0]!.url);
  const finalCookie = (await access.forRequest(finalUrl, Date.now())).map((c) => `${c.name}=${c.value}`).join('; ');
  r.sessionAliveAfter = (await hit(finalUrl.href, finalCookie)).status === 200;
  if (Object.keys(errors).length) r.extra.networkErrors = errors;
  return r;
}

async function latchkeyPhase(gut: GatewayUnderTest, idp: IdpProcess): Promise<StormResult> {
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-storm-'));
  try {
    const a = await startLatchkeyGateway({ ...gut, home });
    const b = await startLatchkeyGateway({ ...gut, home });
    try {
      return await storm('latchkey', [a, b], `${a.url}/auth/login?next=%2Fwhoami`, idp);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  } finally {
    await rm(home, { recursive: true, force: true });
  }
}

async function peerPhase(gut: GatewayUnderTest, idp: IdpProcess): Promise<StormResult> {
  const sessionSecret = randomBytes(32).toString('base64url');
  const a = await startPeerProcess({ ...gut, sessionSecret });
  const b = await startPeerProcess({ ...gut, sessionSecret });
  try {
    const r = await storm('peer', [a, b], `${a.url}/whoami`, idp);
    const stats = await Promise.all([a, b].map((p) => getJson<Record<string, number>>(`${p.url}/__peer/stats`)));
    r.extra.peerProcesses = stats;
    return r;
  } finally {
    await Promise.all([a.close(), b.close()]);
  }
}

function report(r: StormResult): void {
  const subject = r.subject;
  const load = { rounds: ROUNDS, requestsPerRound: STORM, processes: 2, accessTokenTtlS: TTL_S };
  out({ figure: 'logouts', value: r.logouts, limit: 0, unit: 'answers', subject, extra: { definition: '401 or redirect to the login during the storms', cookieClears: r.cookieClears, sessionAliveAfter: r.sessionAliveAfter, ...load } });
  out({ figure: 'revoked_grants', value: r.idp.revokedGrants, limit: 0, unit: 'grants', subject, extra: { source: 'IdP counters (refresh-token reuse detection)' } });
  // Exactly one per round: fewer would mean stale tokens were served, more means a second refresh.
  const refreshes = figureLine(BENCH, {
    figure: 'idp_refreshes',
    value: r.idp.refreshRequests,
    limit: ROUNDS,
    unit: 'calls',
    subject,
    extra: {
      rule: `exactly one per round (${ROUNDS})`,
      refreshSuccesses: r.idp.refreshSuccesses,
      refreshFailures: r.idp.refreshFailures,
      longestRoundMs: Math.round(r.longestRoundMs),
      newTokenDueAfterMs: DUE_AFTER_MS,
      ...(r.longestRoundMs > DUE_AFTER_MS ? { warning: 'a round outlasted the new token\'s due time: a second refresh in that round was legitimate' } : {}),
    },
  });
  refreshes.pass = r.idp.refreshRequests === ROUNDS;
  process.stdout.write(`${JSON.stringify(refreshes)}\n`);
  out({
    figure: 'ok_pct',
    value: r.requests === 0 ? 0 : (r.ok / r.requests) * 100,
    limit: 100,
    compare: 'min',
    unit: '%',
    subject,
    extra: { ok: r.ok, requests: r.requests, logouts: r.logouts, unavailable503: r.unavailable, other: r.other, statuses: r.statuses, ...r.extra },
  });
  out({ figure: 'storm_p99_ms', value: quantile(r.latenciesMs, 0.99), unit: 'ms', subject, extra: { p50Ms: Math.round(quantile(r.latenciesMs, 0.5)), maxMs: Math.round(Math.max(...r.latenciesMs)) } });
}

async function main(): Promise<void> {
  const subjects = (process.env.LATCHKEY_BENCH_SUBJECTS ?? 'latchkey,peer').split(',') as Subject[];
  note(`${BENCH}: ${STORM} concurrent requests x ${ROUNDS} rounds over 2 processes, access TTL ${TTL_S} s (${subjects.join(' then ')})`);
  const idp = await startIdpProcess({ accessTtl: TTL_S, redirectUris: ['http://127.0.0.1/auth/callback'] });
  idpToClose = idp;
  try {
    const upstream = await startUpstreamProcess();
    const gut: GatewayUnderTest = { upstream: upstream.url, issuer: idp.info.issuer, clientId: CLIENT.clientId, clientSecret: CLIENT.clientSecret ?? '' };
    if (subjects.includes('latchkey')) report(await latchkeyPhase(gut, idp));
    if (subjects.includes('peer')) report(await peerPhase(gut, idp));
  } finally {
    await stopAll();
    await idp.close();
  }
}

main().catch((err: unknown) => {
  note(`${BENCH} could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  void stopAll().finally(() => process.exit(1));
});
