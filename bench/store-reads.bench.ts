/**
 * Store reads per need (issue 9): how often the store is read, and how often its document is
 * actually parsed, for
 *
 * - one `latchkey token <source>` whose grant is due (the real command, in process, against the
 *   fixture IdP in its own process): the needs are the unlocked read (is it fresh?) and the
 *   re-read under the lock (the protocol's double check). Limit: 2 reads;
 * - a keeper cycle over N OAuth sources (the real Keeper, in process), per source: once with
 *   every grant fresh (refresh-ahead not due), once with every grant due (each refreshed).
 *
 * - a session write (`store.put('sessions', …)`) with 100 and with 10,000 sessions stored: the
 *   median time of 50 puts at each size, and their ratio (one file per entry: O(1) in the
 *   number of sessions, limit 2x).
 *
 * Counted by the file store itself (`fileStoreCounters`: calls of `read`/`tx.read`, of the
 * listings, and of actual parses of store.json; a read that finds the file unchanged since the
 * last parse costs an fstat, not a parse).
 */
import { PassThrough } from 'node:stream';
import { command as tokenCommand } from '../src/cli/commands/token.js';
import { Keeper } from '../src/keeper/keeper.js';
import { jsonLineLog } from '../src/keeper/log.js';
import { openLatchkey } from '../src/index.js';
import { systemClock } from '../src/core/clock.js';
import { FileStore, fileStoreCounters } from '../src/store/file-store.js';
import { FileKeyspaces } from '../src/store/keyspace-files.js';
import { Secret } from '../src/core/secret.js';
import { median } from './lib/stats.js';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startIdpProcess } from '../test/fixtures/idp-process.js';
import { makeHome } from './lib/home.js';
import { note, reporter } from './lib/report.js';

const BENCH = 'store-reads';
const SOURCES = Number(process.env.LATCHKEY_BENCH_STORE_READS_SOURCES ?? 20);
const out = reporter(BENCH);

function snapshot(): typeof fileStoreCounters {
  return { ...fileStoreCounters };
}
function delta(before: typeof fileStoreCounters): typeof fileStoreCounters {
  return {
    reads: fileStoreCounters.reads - before.reads,
    listings: fileStoreCounters.listings - before.listings,
    metaListings: fileStoreCounters.metaListings - before.metaListings,
    parses: fileStoreCounters.parses - before.parses,
  };
}

/** Makes every listed source's grant due now (expiresAt in the past), under each source's lock. */
async function makeDue(home: string, names: string[]): Promise<void> {
  const lk = await openLatchkey({ home });
  try {
    for (const name of names) {
      await lk.store.withLock(name, async (tx) => {
        const rec = await tx.read(name);
        if (!rec?.grant) throw new Error(`no grant for ${name}`);
        const { version, ...rest } = rec;
        await tx.write(name, { ...rest, grant: { ...rec.grant, expiresAt: Date.now() - 1_000 } }, version);
      });
    }
  } finally {
    await lk.close();
  }
}

async function main(): Promise<void> {
  const idp = await startIdpProcess({ accessTtl: 3600 });
  const names = Array.from({ length: SOURCES }, (_, i) => `s${i}`);
  const oauth = { tokenEndpoint: idp.info.tokenEndpoint, clientId: 'public-client' };
  const home = await makeHome('store-reads', Object.fromEntries(names.map((n) => [n, { oauth }])));
  try {
    const setup = await openLatchkey({ home: home.home });
    for (const n of names) await setup.installGrant(n, await idp.mintGrant());
    await setup.close();

    // ---- latchkey token, refreshing ----
    await makeDue(home.home, ['s0']);
    const stdout = new PassThrough();
    let printed = '';
    stdout.on('data', (c: Buffer) => (printed += c.toString()));
    const io = { stdout, stderr: new PassThrough(), stdin: new PassThrough(), env: { ...process.env, LATCHKEY_HOME: home.home } };
    const beforeToken = snapshot();
    const code = await tokenCommand.run(['s0'], io);
    const token = delta(beforeToken);
    if (code !== 0 || printed.trim() === '') throw new Error(`latchkey token exited ${code}`);
    out({
      figure: 'reads_per_token_refresh',
      value: token.reads + token.listings + token.metaListings,
      limit: 2,
      unit: 'reads',
      subject: 'latchkey',
      extra: { method: '`latchkey token s0` (the command, in process) with the grant due: it refreshes once', ...token, needs: 'unlocked read (fresh?) + re-read under the lock' },
    });
    out({ figure: 'parses_per_token_refresh', value: token.parses, unit: 'parses', subject: 'latchkey', extra: { note: 'store.json parsed: the read, and the full check before the write (a corrupt record is never rewritten)' } });

    // ---- keeper cycles ----
    let logText = '';
    const log = jsonLineLog({ write: (c: string) => (logText += c) }, systemClock);
    const keeper = await Keeper.open({ open: { home: home.home, env: process.env }, log, intervalSeconds: 3600 });
    try {
      await keeper.runCycle(); // the first cycle also settles s0 and state files
      const beforeFresh = snapshot();
      await keeper.runCycle();
      const fresh = delta(beforeFresh);
      await makeDue(home.home, names);
      const beforeDue = snapshot();
      await keeper.runCycle();
      const due = delta(beforeDue);
      const per = (n: number): number => Math.round((n / SOURCES) * 100) / 100;
      out({
        figure: 'reads_per_source_keeper_cycle_fresh',
        value: per(fresh.reads + fresh.listings + fresh.metaListings),
        unit: 'reads/source',
        subject: 'latchkey',
        extra: {
          sources: SOURCES,
          ...fresh,
          parsesPerSource: per(fresh.parses),
          grants: 'fresh: refresh-ahead not due',
          needs: 'the cycle lists metadata twice (its own listing, the refresh plan): no secret; the keeper reads no record; each probe reads its own source twice (the oauth method: availability, expiry)',
        },
      });
      out({
        figure: 'reads_per_source_keeper_cycle_due',
        value: per(due.reads + due.listings + due.metaListings),
        unit: 'reads/source',
        subject: 'latchkey',
        extra: {
          sources: SOURCES,
          ...due,
          parsesPerSource: per(due.parses),
          grants: 'all due: each refreshed once under its lock',
          needs: 'metadata listings as above; per refreshed source the engine re-read under the lock and one read back (what happened, the new expiry); the probe two as above',
        },
      });
    } finally {
      await keeper.stop(0);
    }
  } finally {
    await home.remove();
    await idp.close();
  }
}

/** Median ms of `n` session puts into a store that holds `stored` sessions. */
async function sessionPuts(home: string, stored: number, n: number): Promise<number> {
  const store = new FileStore({ path: join(home, 'store.json') });
  await store.put('sessions', 'seed', new Secret('seed'), 3_600_000); // creates the directories
  // The others are laid down directly (no fsync each): only the puts below are timed.
  const ks = new FileKeyspaces(join(home, 'keyspaces'), Date.now);
  const text = `${JSON.stringify({ format: 'latchkey-entry', formatVersion: 1, expiresAt: Date.now() + 3_600_000, value: 'x'.repeat(400) })}\n`;
  for (let i = 0; i < stored; i++) await writeFile(ks.fileOf('sessions', `pre-${i}`), text, { mode: 0o600 });
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await store.put('sessions', `timed-${i % 10}`, new Secret('y'.repeat(400)), 3_600_000);
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function sessionFigures(): Promise<void> {
  const small = await makeHome('sessions-100', {});
  const large = await makeHome('sessions-10000', {});
  try {
    const at100 = await sessionPuts(small.home, 100, 50);
    const at10k = await sessionPuts(large.home, 10_000, 50);
    out({ figure: 'session_put_ms_at_100', value: Math.round(at100 * 1000) / 1000, unit: 'ms', subject: 'latchkey', extra: { puts: 50, note: 'temp file, fsync, rename, fsync dir' } });
    out({ figure: 'session_put_ms_at_10000', value: Math.round(at10k * 1000) / 1000, unit: 'ms', subject: 'latchkey', extra: { puts: 50 } });
    out({ figure: 'session_put_ratio_10000_vs_100', value: Math.round((at10k / at100) * 100) / 100, limit: 2, unit: 'x', subject: 'latchkey', extra: { rule: 'O(1) in the number of sessions' } });
  } finally {
    await small.remove();
    await large.remove();
  }
}

main()
  .then(sessionFigures)
  .catch((err: unknown) => {
    note(`store-reads could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  });
