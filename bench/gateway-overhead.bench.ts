/**
 * Pass-through overhead of the session gateway: authenticated requests/s and p99 latency with
 * autocannon, three subjects in the same run against the same upstream process:
 *
 * - `bare`: the upstream itself (the ceiling);
 * - `node-proxy`: a plain Node keep-alive reverse proxy with no authentication at all
 *   (bench/gateway-floor-proxy.ts): what any Node proxy costs, so the gateway's own work is
 *   the rest;
 * - `latchkey`: `latchkey gateway --upstream …` (one process, signed in through the real
 *   authorization-code flow at the test IdP);
 * - `peer`: express-openid-connect + http-proxy-middleware with a keep-alive agent and its
 *   documented refresh-when-expired middleware (bench/gateway-peer-server.ts), signed in the
 *   same way.
 *
 * Access tokens live an hour here, so no refresh happens during the load: this is the steady
 * state of a signed-in dashboard. Subjects run one after the other (2 cores: running them at
 * once would measure the scheduler), interleaved over ROUNDS rounds; each figure is the
 * median over the rounds. Every answer must be a 2xx from the upstream: a subject answering
 * 401s quickly would look fast, so its non-2xx count is printed and fails the figure.
 *
 * Figures: requests_per_s and p99_ms per subject; latchkey/peer requests/s ratio (goal ≥ 1.5);
 * latchkey/bare and latchkey/node-proxy requests/s ratios and p99 added over bare (informational).
 *
 * Env: LATCHKEY_BENCH_SECONDS (per run, default 8), LATCHKEY_BENCH_ROUNDS (default 2),
 * LATCHKEY_BENCH_CONNECTIONS (default 32), LATCHKEY_BENCH_SUBJECTS (default bare,node-proxy,latchkey,peer).
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startIdpProcess, type IdpProcess } from '../test/fixtures/idp-process.js';
import { TEST_CLIENTS } from '../test/fixtures/idp-clients.js';
import { cookieHeaderOf, signIn } from '../test/helpers/browserless-login.js';
import { cannon, type CannonRun } from './lib/cannon.js';
import { startFloorProxy, startLatchkeyGateway, startPeerProcess, startUpstreamProcess, stopAll, type ServerProcess } from './lib/gateway-procs.js';
import { note, reporter } from './lib/report.js';
import { median } from './lib/stats.js';

const BENCH = 'gateway-overhead';
const SECONDS = Number(process.env.LATCHKEY_BENCH_SECONDS ?? 8);
const ROUNDS = Number(process.env.LATCHKEY_BENCH_ROUNDS ?? 2);
const CONNECTIONS = Number(process.env.LATCHKEY_BENCH_CONNECTIONS ?? 32);
const WARMUP_SECONDS = 2;
const CLIENT = TEST_CLIENTS['basic-client'];
const out = reporter(BENCH);

type Subject = 'bare' | 'node-proxy' | 'latchkey' | 'peer';

interface Target {
  subject: Subject;
  url: string;
  headers: Record<string, string>;
}

let idpToClose: IdpProcess | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    void Promise.all([stopAll(), idpToClose?.close()]).finally(() => process.exit(130));
  });
}

/** Signs in through a gateway and returns the request headers of the signed-in browser. */
async function signedInHeaders(startUrl: string, subject: Subject): Promise<Record<string, string>> {
  const r = await signIn(startUrl);
  if (r.finalStatus !== 200 || !r.finalBody.includes('"user":"alice"')) {
    throw new Error(`${subject}: sign-in did not reach the upstream as alice (${r.finalStatus}): ${r.hops.map((h) => `${h.method} ${h.url} ${h.status}`).join(' → ')}`);
  }
  return { cookie: cookieHeaderOf(r.jar), accept: 'application/json' };
}

async function main(): Promise<void> {
  const subjects = (process.env.LATCHKEY_BENCH_SUBJECTS ?? 'bare,node-proxy,latchkey,peer').split(',') as Subject[];
  note(`${BENCH}: ${subjects.join(', ')}; ${ROUNDS} round(s) x ${SECONDS} s, ${CONNECTIONS} connections, GET /whoami`);
  const idp = await startIdpProcess({ accessTtl: 3600, redirectUris: ['http://127.0.0.1/auth/callback'] });
  idpToClose = idp;
  const home = await mkdtemp(join(tmpdir(), 'latchkey-bench-gateway-'));
  const servers: ServerProcess[] = [];
  try {
    const upstream = await startUpstreamProcess();
    servers.push(upstream);
    const gut = { upstream: upstream.url, issuer: idp.info.issuer, clientId: CLIENT.clientId, clientSecret: CLIENT.clientSecret ?? '' };
    const targets: Target[] = [];
    if (subjects.includes('bare')) targets.push({ subject: 'bare', url: `${upstream.url}/whoami`, headers: { accept: 'application/json' } });
    if (subjects.includes('node-proxy')) {
      const floor = await startFloorProxy(upstream.url);
      servers.push(floor);
      targets.push({ subject: 'node-proxy', url: `${floor.url}/whoami`, headers: { accept: 'application/json' } });
    }
    if (subjects.includes('latchkey')) {
      const gw = await startLatchkeyGateway({ ...gut, home });
      servers.push(gw);
      targets.push({ subject: 'latchkey', url: `${gw.url}/whoami`, headers: await signedInHeaders(`${gw.url}/auth/login?next=%2Fwhoami`, 'latchkey') });
    }
    if (subjects.includes('peer')) {
      const peer = await startPeerProcess({ ...gut, sessionSecret: randomBytes(32).toString('base64url') });
      servers.push(peer);
      targets.push({ subject: 'peer', url: `${peer.url}/whoami`, headers: await signedInHeaders(`${peer.url}/whoami`, 'peer') });
    }

    for (const t of targets) await cannon(t.url, t.headers, WARMUP_SECONDS, CONNECTIONS);
    const runs = new Map<Subject, CannonRun[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const t of targets) {
        const r = await cannon(t.url, t.headers, SECONDS, CONNECTIONS);
        runs.set(t.subject, [...(runs.get(t.subject) ?? []), r]);
        note(`round ${round + 1} ${t.subject}: ${Math.round(r.rps)} req/s, p99 ${r.p99Ms} ms, non-2xx ${r.non2xx}, errors ${r.errors}`);
      }
    }

    const summary = new Map<Subject, { rps: number; p99: number }>();
    for (const [subject, rs] of runs) {
      const rps = median(rs.map((r) => r.rps));
      const p99 = median(rs.map((r) => r.p99Ms));
      const non2xx = rs.reduce((a, r) => a + r.non2xx + r.errors, 0);
      summary.set(subject, { rps, p99 });
      const extra = {
        rounds: rs.map((r) => ({ rps: Math.round(r.rps), p50Ms: r.p50Ms, p99Ms: r.p99Ms, non2xx: r.non2xx, errors: r.errors, statusCodes: r.statusCodes })),
        connections: CONNECTIONS,
        secondsPerRound: SECONDS,
        path: 'GET /whoami',
      };
      // A subject that answered anything but 2xx did not pass requests through: its speed does not count.
      out({ figure: 'requests_per_s', value: rps, unit: 'req/s', subject, ...(non2xx > 0 ? { limit: 0, compare: 'max' as const } : {}), extra: { ...extra, non2xxOrErrors: non2xx } });
      out({ figure: 'p99_ms', value: p99, unit: 'ms', subject, extra: { p50Ms: median(rs.map((r) => r.p50Ms)) } });
    }
    const lk = summary.get('latchkey');
    const peer = summary.get('peer');
    const bare = summary.get('bare');
    const floor = summary.get('node-proxy');
    if (lk && peer) {
      out({ figure: 'rps_ratio_vs_peer', value: lk.rps / peer.rps, limit: 1.5, compare: 'min', unit: 'x peer', subject: 'latchkey', extra: { latchkeyRps: Math.round(lk.rps), peerRps: Math.round(peer.rps), peer: 'express-openid-connect 3.4 + http-proxy-middleware 3 (keep-alive agent)' } });
      out({ figure: 'p99_ratio_vs_peer', value: lk.p99 / peer.p99, unit: 'x peer', subject: 'latchkey', extra: { latchkeyP99Ms: lk.p99, peerP99Ms: peer.p99 } });
    }
    if (lk && bare) {
      out({ figure: 'rps_ratio_vs_bare', value: lk.rps / bare.rps, unit: 'x bare', subject: 'latchkey', extra: { latchkeyRps: Math.round(lk.rps), bareRps: Math.round(bare.rps) } });
      out({ figure: 'p99_added_ms', value: lk.p99 - bare.p99, unit: 'ms', subject: 'latchkey', extra: { latchkeyP99Ms: lk.p99, bareP99Ms: bare.p99 } });
    }
    if (lk && floor) {
      out({ figure: 'rps_ratio_vs_node_proxy', value: lk.rps / floor.rps, unit: 'x node-proxy', subject: 'latchkey', extra: { latchkeyRps: Math.round(lk.rps), nodeProxyRps: Math.round(floor.rps), note: 'a plain Node keep-alive proxy without authentication' } });
    }
    if (peer && bare) out({ figure: 'rps_ratio_vs_bare', value: peer.rps / bare.rps, unit: 'x bare', subject: 'peer', extra: { peerRps: Math.round(peer.rps), bareRps: Math.round(bare.rps) } });
  } finally {
    await stopAll();
    await idp.close();
    await rm(home, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  note(`${BENCH} could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  void stopAll().finally(() => process.exit(1));
});
