/**
 * Crash window: how long a rotated refresh token exists only in this process's memory.
 *
 * The IdP consumes the old refresh token and sends its successor; until the store file holding
 * the successor is renamed into place, a crash (SIGKILL, power cut) loses the grant. Measured
 * over 200 refreshes (`engine.refreshNow`, under the source's lock, as the keeper does) against
 * the real IdP (oidc-provider with rotation and reuse detection) in its own process:
 *
 * - `answer_to_rename_ms`: from the token endpoint's answer arriving (the fetch resolving with
 *   its headers: the IdP has rotated by then) to `rename(2)` of the new store document
 *   returning. The rename is timed by wrapping `fs.promises.rename` (syncBuiltinESMExports makes
 *   the store's named import see the wrapper); the answer time comes from the engine's event
 *   (`answerAt`, taken by refreshTokenGrant's fetch wrapper: no I/O added to the path).
 * - `answer_to_durable_ms`: to the locked unit that wrote it resolving (store contract v2: its
 *   work is durable then; the directory fsync'd too, the lock released).
 *
 * p50/p95/max of each, one line per figure; plus the IdP's revoked grants (limit 0).
 * LATCHKEY_BENCH_CRASH_REFRESHES changes the count (default 200).
 */
import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { openLatchkey, type EngineEvent } from '../src/index.js';
import { startIdpProcess } from '../test/fixtures/idp-process.js';
import { installGrant, makeHome } from './lib/home.js';
import { note, reporter, round } from './lib/report.js';
import { max, quantile } from './lib/stats.js';

const BENCH = 'crash-window';
const REFRESHES = Number(process.env.LATCHKEY_BENCH_CRASH_REFRESHES ?? 200);
const SOURCE = 'idp';
const out = reporter(BENCH);

/** performance.now() after each rename(2) of the store document resolved. */
let lastRenameAt = 0;
function timeRenames(storePath: string): () => void {
  const orig = fsp.rename;
  fsp.rename = async function rename(from: Parameters<typeof orig>[0], to: Parameters<typeof orig>[1]): Promise<void> {
    await orig(from, to);
    if (String(to) === storePath) lastRenameAt = performance.now();
  };
  syncBuiltinESMExports();
  return () => {
    fsp.rename = orig;
    syncBuiltinESMExports();
  };
}

function figures(name: string, xs: number[]): void {
  out({
    figure: name,
    value: quantile(xs, 0.95),
    unit: 'ms',
    extra: { p50: round(quantile(xs, 0.5)), p95: round(quantile(xs, 0.95)), max: round(max(xs)), samples: xs.length, value_is: 'p95' },
  });
}

async function main(): Promise<void> {
  const idp = await startIdpProcess({ accessTtl: 3600 });
  const home = await makeHome('crash-window', { [SOURCE]: { oauth: { tokenEndpoint: idp.info.tokenEndpoint, clientId: 'public-client' } } });
  const restore = timeRenames(`${home.home}/store.json`);
  try {
    await installGrant(home.home, SOURCE, await idp.mintGrant());
    await idp.resetStats();
    const toRename: number[] = [];
    const toDurable: number[] = [];
    let pending: EngineEvent | undefined;
    const lk = await openLatchkey({ home: home.home, onRefresh: (e) => (pending = e) });
    try {
      for (let i = 0; i < REFRESHES; i++) {
        pending = undefined;
        await lk.engine.refreshNow(SOURCE);
        const e = pending as EngineEvent | undefined;
        if (e?.outcome !== 'refreshed' || e.answerAt === undefined || e.persistedAt === undefined) {
          throw new Error(`refresh ${i} did not rotate (${e?.outcome ?? 'no event'}: ${e?.message ?? ''})`);
        }
        toRename.push(lastRenameAt - e.answerAt);
        toDurable.push(e.persistedAt - e.answerAt);
      }
    } finally {
      await lk.close();
    }
    const stats = await idp.stats();
    note(`${REFRESHES} refreshes; IdP refresh successes ${stats.refreshSuccesses}, revoked grants ${stats.revokedGrants}`);
    figures('answer_to_rename_ms', toRename);
    figures('answer_to_durable_ms', toDurable);
    out({ figure: 'revoked_grants', value: stats.revokedGrants, limit: 0, unit: 'grants' });
  } finally {
    restore();
    await idp.close();
    await home.remove();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
