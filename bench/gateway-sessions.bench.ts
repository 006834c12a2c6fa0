/**
 * Sessions at scale (issue 10): a gateway process over a file store holding 10,000 live
 * sessions, against one holding 100, in the same run:
 *
 * - refresh p99: the latency of requests whose session is due (only its refresh cookie sent),
 *   each refreshed at the real IdP (out of process) through the rotation core; 100 such sessions
 *   per store size, 4 at a time. Limit: p99 at 10,000 at most 2x the p99 at 100 (a session write
 *   is one file; nothing scans the others).
 * - memory: the gateway process's resident set (VmHWM, from /proc) after every session was
 *   used once with its access cookie (each read, opened and kept in the per-process cache).
 *
 * Synthetic sessions carry made-up tokens that are never sent anywhere (the access-token check is
 * `expiry`, so nothing asks the IdP about them); the refreshed ones hold real grants minted at the IdP.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { systemClock } from '../src/core/clock.js';
import { loadOrCreateKeyFile } from '../src/gateway/seal.js';
import { SessionCookies } from '../src/gateway/session-cookies.js';
import { newSessionId, SessionStore, type SessionData } from '../src/gateway/session-store.js';
import { FileStore } from '../src/store/file-store.js';
import { startIdpProcess, type IdpProcess } from '../test/fixtures/idp-process.js';
import { quantile } from './lib/stats.js';
import { reporter } from './lib/report.js';

const BENCH = 'gateway-sessions';
const out = reporter(BENCH);
const LARGE = Number(process.env.LATCHKEY_BENCH_GATEWAY_SESSIONS ?? 10_000);
const SMALL = 100;
const REAL = 100;
/** Refreshes before the measured ones (first use loads the refresh code, opens connections to the IdP). */
const WARMUP = 5;
const SHAPE = { https: false, prefix: '', host: '127.0.0.1', origin: 'http://127.0.0.1', viaTrustedProxy: false, clientAddress: '127.0.0.1', loopbackHttp: true };

function cookiePairs(setCookies: string[]): string {
  return setCookies.map((l) => l.split(';')[0]).join('; ');
}

async function pool<T>(items: T[], width: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < items.length) await fn(items[next++] as T);
  }));
}

interface Measured {
  p50: number;
  p99: number;
  hwmMb: number;
  rssMb: number;
  refreshes: number;
  revoked: number;
  failures: number;
}

async function vm(pid: number): Promise<{ hwm: number; rss: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kb = (name: string): number => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
  return { hwm: kb('VmHWM') / 1024, rss: kb('VmRSS') / 1024 };
}

async function measure(idp: IdpProcess, upstreamUrl: string, total: number): Promise<Measured> {
  const base = await mkdtemp(join(tmpdir(), 'latchkey-bench-gw-'));
  const home = join(base, 'home');
  try {
    const key = await loadOrCreateKeyFile(home);
    const store = new FileStore({ path: join(home, 'store.json') });
    const sessions = new SessionStore({ store, key, clock: systemClock, refreshTtlMs: 14 * 86_400_000 });
    const cookies = new SessionCookies(key, systemClock, 30_000);
    const now = Date.now();
    const live: string[] = [];
    const synthetic = Array.from({ length: total - REAL }, () => newSessionId());
    await pool(synthetic, 16, async (sid) => {
      const data: SessionData = { gen: 1, version: 1, identity: { sub: `u-${sid.slice(0, 6)}`, email: 'u@example.test' }, accessToken: randomBytes(32).toString('base64url'), refreshToken: randomBytes(32).toString('base64url'), tokenType: 'Bearer', expiresAt: now + 3_600_000, obtainedAt: now, createdAt: now, endsAt: now + 86_400_000 };
      await sessions.create(sid, data);
      live.push(cookiePairs(cookies.issue(SHAPE, sid, data)));
    });
    const due: string[] = [];
    for (let i = 0; i < REAL + WARMUP; i++) {
      const g = await idp.mintGrant({ login: `real${i}` });
      const sid = newSessionId();
      const data: SessionData = { gen: 1, version: 1, identity: { sub: `real${i}` }, accessToken: g.access_token, refreshToken: g.refresh_token, tokenType: 'Bearer', expiresAt: now - 1_000, obtainedAt: now - 60_000, createdAt: now, endsAt: now + 86_400_000 };
      await sessions.create(sid, data);
      due.push(cookiePairs(cookies.issue(SHAPE, sid, { ...data, expiresAt: now + 600_000 }).filter((l) => l.includes('latchkey_rt'))));
    }
    await idp.resetStats();

    const script = fileURLToPath(new URL('../test/helpers/gateway-child.js', import.meta.url));
    const child = spawn(process.execPath, [script, JSON.stringify({ issuer: idp.info.issuer, clientId: 'public-client', upstream: upstreamUrl, home, accessTokenCheck: 'expiry' })], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        let text = '';
        child.stdout.on('data', (d: Buffer) => {
          text += d.toString();
          const m = /listening on (\S+)\n/.exec(text);
          if (m?.[1]) resolve(m[1]);
        });
        child.once('exit', (code) => reject(new Error(`gateway exited ${code}`)));
      });
      let failures = 0;
      // Every synthetic session used once (read, opened, cached).
      await pool(live, 16, async (cookie) => {
        const res = await fetch(`${url}/x`, { headers: { cookie } });
        await res.body?.cancel();
        if (res.status !== 200) failures++;
      });
      for (const cookie of due.splice(0, WARMUP)) await (await fetch(`${url}/x`, { headers: { cookie } })).body?.cancel();
      const latencies: number[] = [];
      await pool(due, 4, async (cookie) => {
        const t0 = performance.now();
        const res = await fetch(`${url}/x`, { headers: { cookie } });
        await res.body?.cancel();
        latencies.push(performance.now() - t0);
        if (res.status !== 200) failures++;
      });
      const mem = await vm(child.pid as number);
      const stats = await idp.stats();
      return { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), hwmMb: mem.hwm, rssMb: mem.rss, refreshes: stats.refreshSuccesses, revoked: stats.revokedGrants, failures };
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  } finally {
    await rm(base, { recursive: true, force: true });
  }
}

const upstream = createServer((_req, res) => res.end('ok'));
await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', () => r()));
const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
const idp = await startIdpProcess({ accessTtl: 600 });
try {
  const small = await measure(idp, upstreamUrl, SMALL);
  const large = await measure(idp, upstreamUrl, LARGE);
  for (const [m, n] of [[small, SMALL], [large, LARGE]] as const) {
    const subject = n === LARGE ? 'latchkey' : 'peer';
    const extra = { sessions: n, refreshed: REAL, p50_ms: Math.round(m.p50 * 10) / 10 };
    out({ figure: 'refresh_p99_ms', value: m.p99, unit: 'ms', subject, extra });
    out({ figure: 'gateway_rss_peak_mb', value: m.hwmMb, unit: 'MiB', subject, extra: { sessions: n, rss_now_mb: Math.round(m.rssMb) } });
    out({ figure: 'idp_refreshes', value: m.refreshes - WARMUP, unit: 'refreshes', limit: REAL, compare: 'min', subject, extra: { sessions: n, expected: REAL } });
    out({ figure: 'revoked_grants', value: m.revoked, unit: 'grants', limit: 0, subject, extra: { sessions: n } });
    out({ figure: 'failed_requests', value: m.failures, unit: 'requests', limit: 0, subject, extra: { sessions: n } });
  }
  out({ figure: 'refresh_p99_ratio', value: large.p99 / small.p99, unit: 'x', limit: 2, extra: { large: LARGE, small: SMALL } });
  out({ figure: 'memory_per_session_kb', value: ((large.hwmMb - small.hwmMb) * 1024) / (LARGE - SMALL), unit: 'KiB', extra: { note: 'peak RSS difference between the two gateways / sessions added' } });
} finally {
  await idp.close();
  upstream.close();
}
