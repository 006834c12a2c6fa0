/**
 * Hot path: `lk.token(source)` on a fresh memo must reach >= 5,000,000 calls/s with zero
 * filesystem calls.
 *
 * Setup: an oauth source whose grant expires in an hour (its token endpoint is never called),
 * warmed up by one call. Then every function of `node:fs` and `node:fs/promises` is wrapped
 * with a counter (and `syncBuiltinESMExports()` makes the store's named ESM imports see the
 * wrappers); a self-check proves the counter sees the store's reads. Measured, each over
 * several rounds of 5M calls:
 *
 * - `awaited`: `for (…) await lk.token(src)`: the realistic pattern, one await per call;
 * - `batched`: 1,000 calls back to back, then one `await` of the last promise (the raw cost
 *   of the call itself).
 *
 * Figures: the median rate of each (limit 5M/s), and the fs calls counted during every
 * measured loop (limit 0).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { openLatchkey } from '../src/index.js';
import { installGrant, makeHome } from './lib/home.js';
import { note, reporter } from './lib/report.js';
import { median, min, max } from './lib/stats.js';

const BENCH = 'hot-path';
const SOURCE = 'api';
const CALLS = Number(process.env.LATCHKEY_BENCH_HOT_CALLS ?? 5_000_000);
const ROUNDS = Number(process.env.LATCHKEY_BENCH_HOT_ROUNDS ?? 5);
const BATCH = 1_000;
const TARGET = 5_000_000;

const out = reporter(BENCH);

/** Counts calls of every function on `node:fs` and `node:fs/promises`. */
function instrumentFs(): { count(): number; calls: Map<string, number>; restore(): void } {
  const calls = new Map<string, number>();
  let total = 0;
  const restores: (() => void)[] = [];
  const wrapAll = (obj: Record<string, unknown>, label: string): void => {
    for (const key of Object.keys(obj)) {
      const orig = obj[key];
      // Functions only; classes (ReadStream, Stats, Dirent, …) start upper-case and are left alone.
      if (typeof orig !== 'function' || !/^[a-z]/.test(key)) continue;
      const fn = orig as (...a: unknown[]) => unknown;
      const wrapped = function (this: unknown, ...args: unknown[]): unknown {
        total++;
        calls.set(`${label}.${key}`, (calls.get(`${label}.${key}`) ?? 0) + 1);
        return fn.apply(this, args);
      };
      obj[key] = wrapped;
      restores.push(() => {
        obj[key] = orig;
      });
    }
  };
  wrapAll(fs as unknown as Record<string, unknown>, 'fs');
  // `fs.promises` is the same object as `node:fs/promises`; wrap it once.
  wrapAll(fsp as unknown as Record<string, unknown>, 'fs/promises');
  syncBuiltinESMExports();
  return {
    count: () => total,
    calls,
    restore: () => {
      for (const r of restores) r();
      syncBuiltinESMExports();
    },
  };
}

async function awaitedRound(token: (s: string) => Promise<string>, n: number): Promise<number> {
  let last = '';
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) last = await token(SOURCE);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (last === '') throw new Error('empty token');
  return (n / ms) * 1000;
}

async function batchedRound(token: (s: string) => Promise<string>, n: number): Promise<number> {
  let last = '';
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i += BATCH) {
    let p!: Promise<string>;
    for (let j = 0; j < BATCH; j++) p = token(SOURCE);
    last = await p;
  }
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (last === '') throw new Error('empty token');
  return (n / ms) * 1000;
}

async function main(): Promise<void> {
  const h = await makeHome('hot', {
    // Never called: the grant below stays fresh for the whole bench.
    [SOURCE]: { oauth: { tokenEndpoint: 'http://127.0.0.1:9/token', clientId: 'bench-client' } },
  });
  try {
    await installGrant(h.home, SOURCE, { access_token: 'hot-path-access-token', refresh_token: 'hot-path-refresh-token', expires_in: 3600, token_type: 'Bearer' });
    const lk = await openLatchkey({ home: h.home });
    const warm = await lk.token(SOURCE); // fills the memo (store read happens here)
    if (warm !== 'hot-path-access-token') throw new Error('warm-up returned the wrong token');
    const token = (s: string): Promise<string> => lk.token(s);

    const fsCount = instrumentFs();
    // Self-check: the counter must see the store's own reads, else "0 fs calls" would mean nothing.
    const before = fsCount.count();
    await lk.store.read(SOURCE);
    const selfCheck = fsCount.count() - before;
    if (selfCheck === 0) throw new Error('fs instrumentation does not see the store reads; cannot count fs calls');

    // Short warm-up so both loops are optimised before timing.
    await awaitedRound(token, 200_000);
    await batchedRound(token, 200_000);

    const startCount = fsCount.count();
    const awaited: number[] = [];
    const batched: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      awaited.push(await awaitedRound(token, CALLS));
      batched.push(await batchedRound(token, CALLS));
    }
    const fsCalls = fsCount.count() - startCount;
    const fsDetail = Object.fromEntries([...fsCount.calls].filter(([, n]) => n > 0));
    fsCount.restore();
    await lk.close();

    const rounds = { rounds: ROUNDS, callsPerRound: CALLS };
    out({
      figure: 'calls_per_s_awaited',
      value: median(awaited),
      limit: TARGET,
      compare: 'min',
      unit: 'calls/s',
      subject: 'latchkey',
      extra: { method: 'for (...) await lk.token(src): one await per call', ...rounds, minRound: Math.round(min(awaited)), maxRound: Math.round(max(awaited)) },
    });
    out({
      figure: 'calls_per_s_batched',
      value: median(batched),
      limit: TARGET,
      compare: 'min',
      unit: 'calls/s',
      subject: 'latchkey',
      extra: { method: `${BATCH} calls back to back, one await per batch`, ...rounds, minRound: Math.round(min(batched)), maxRound: Math.round(max(batched)) },
    });
    out({
      figure: 'fs_calls',
      value: fsCalls,
      limit: 0,
      unit: 'calls',
      subject: 'latchkey',
      extra: {
        during: `${ROUNDS * CALLS * 2} measured token() calls`,
        wrapped: 'every function of node:fs and node:fs/promises',
        selfCheckCallsForOneStoreRead: selfCheck,
        ...(fsCalls > 0 ? { detail: fsDetail } : {}),
      },
    });
  } finally {
    await h.remove();
  }
}

main().catch((err: unknown) => {
  note(`hot-path could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
