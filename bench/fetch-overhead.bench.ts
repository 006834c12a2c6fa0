/**
 * fetch overhead: `lk.fetch(source, url)` against plain `fetch(url, { headers })` with the same
 * bearer token, on a loopback endpoint served by another process, in the same run. Limit: the
 * p50 of `lk.fetch` at most 10% above the p50 of `fetch`.
 *
 * Two sources: `pat` (token method, `env:` reference) and `api` (oauth method, a fresh grant
 * served from the engine's memo). Each request is timed alone (send → body read). After a
 * warm-up of both, the variants are interleaved request by request in a rotating order, so
 * that drift (CPU frequency, GC, the other process) lands on all of them alike.
 *
 * Figures: the p50 of each variant (µs), and the p50 overhead of each `lk.fetch` variant over
 * plain fetch (%; limit 10).
 */
import { openLatchkey } from '../src/index.js';
import { installGrant, makeHome } from './lib/home.js';
import { startLoopbackServer } from './lib/loopback-server.js';
import { note, reporter } from './lib/report.js';
import { quantile } from './lib/stats.js';

const BENCH = 'fetch-overhead';
const REQUESTS = Math.max(2000, Number(process.env.LATCHKEY_BENCH_FETCH_REQUESTS ?? 20_000));
const WARMUP = Math.max(500, Math.round(REQUESTS / 10));
const LIMIT_PCT = 10;
const PAT = 'good-static-token';
const ACCESS = 'good-oauth-access-token';

const out = reporter(BENCH);

interface Variant {
  name: string;
  run(): Promise<number>;
  us: number[];
}

async function main(): Promise<void> {
  const server = await startLoopbackServer();
  const h = await makeHome('fetch', {
    pat: { token: { secret: 'env:LATCHKEY_BENCH_PAT' } },
    api: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'bench-client' } },
  });
  try {
    await installGrant(h.home, 'api', { access_token: ACCESS, refresh_token: 'bench-refresh', expires_in: 3600 });
    const lk = await openLatchkey({ home: h.home, env: { LATCHKEY_BENCH_PAT: PAT } });
    const url = `${server.origin}/ok`;
    const timed = async (send: () => Promise<Response>): Promise<number> => {
      const start = process.hrtime.bigint();
      const res = await send();
      await res.arrayBuffer();
      const us = Number(process.hrtime.bigint() - start) / 1000;
      if (res.status !== 200) throw new Error(`unexpected status ${res.status}`);
      return us;
    };
    const variants: Variant[] = [
      { name: 'fetch', run: () => timed(() => fetch(url, { headers: { authorization: `Bearer ${PAT}` } })), us: [] },
      { name: 'lk.fetch token', run: () => timed(() => lk.fetch('pat', url)), us: [] },
      { name: 'lk.fetch oauth', run: () => timed(() => lk.fetch('api', url)), us: [] },
    ];
    for (let i = 0; i < WARMUP; i++) for (const v of variants) await v.run();
    for (let i = 0; i < REQUESTS; i++) {
      for (let j = 0; j < variants.length; j++) {
        const v = variants[(i + j) % variants.length]!;
        v.us.push(await v.run());
      }
    }
    await lk.close();
    const [plain, token, oauth] = variants as [Variant, Variant, Variant];
    const base = quantile(plain.us, 0.5);
    const detail = (v: Variant): Record<string, unknown> => ({ variant: v.name, requests: v.us.length, p25_us: round1(quantile(v.us, 0.25)), p75_us: round1(quantile(v.us, 0.75)), p99_us: round1(quantile(v.us, 0.99)) });
    out({ figure: 'p50_us', value: base, unit: 'µs', subject: 'node', extra: detail(plain) });
    for (const [v, label] of [
      [token, 'token'],
      [oauth, 'oauth'],
    ] as const) {
      const p50 = quantile(v.us, 0.5);
      out({ figure: `p50_us_${label}`, value: p50, unit: 'µs', subject: 'latchkey', extra: detail(v) });
      out({ figure: `p50_overhead_pct_${label}`, value: ((p50 - base) / base) * 100, limit: LIMIT_PCT, unit: '%', subject: 'latchkey', extra: { variant: v.name, baseline: plain.name, overhead_us: round1(p50 - base) } });
    }
  } finally {
    await h.remove();
    await server.close();
  }
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

main().catch((err: unknown) => {
  note(`fetch-overhead could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
