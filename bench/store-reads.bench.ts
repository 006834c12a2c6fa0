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
 * Counted by the file store itself (`fileStoreCounters`: calls of `read`/`tx.read`, of the
 * listings, and of actual parses of store.json; a read that finds the file unchanged since the
 * last parse costs an fstat, not a parse).
 */
import { PassThrough } from 'node:stream';
import { command as tokenCommand } from '../src/cli/commands/token.js';
import { Keeper } from '../src/keeper/keeper.js';
import { jsonLineLog } from '../src/keeper/log.js';
import { openLatchkey } from '../src/index.js';
import { systemClock } from '../src/clock.js';
import { fileStoreCounters } from '../src/store/file-store.js';
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
        extra: { sources: SOURCES, ...fresh, parsesPerSource: per(fresh.parses), grants: 'fresh: refresh-ahead not due' },
      });
      out({
        figure: 'reads_per_source_keeper_cycle_due',
        value: per(due.reads + due.listings + due.metaListings),
        unit: 'reads/source',
        subject: 'latchkey',
        extra: { sources: SOURCES, ...due, parsesPerSource: per(due.parses), grants: 'all due: each refreshed once under its lock' },
      });
    } finally {
      await keeper.stop(0);
    }
  } finally {
    await home.remove();
    await idp.close();
  }
}

main().catch((err: unknown) => {
  note(`store-reads could not run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
