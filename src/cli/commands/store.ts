import { parseArgs } from 'node:util';
import { ExitCode, LatchkeyError } from '../../core/errors.js';
import { copyStore, type CopyReport, type CopySide, type EntryTransfer } from '../../store/store-copy.js';
import { fileStoreExists, openStoreSpec, parseStoreSpec, type StoreSpec } from '../../store/store-spec.js';
import type { Store } from '../../store/store.js';
import { usageError, type CliIO, type Command } from '../io.js';

const USAGE = `latchkey store copy --from <file|url> --to <file|url> [--dry-run] [--json]
  <file> is a store.json or a LATCHKEY_HOME directory; <url> is postgres://user@host:port/db[?schema=name].
  Copies every source record, each under its lock in both stores (compare-and-set in the
  destination), and the live sessions and rotation successors. A destination record that is the
  same is left alone, one that is newer there is kept: re-running is safe, and a copy stopped
  halfway loses nothing on either side. The origin is only read.`;

export const command: Command = {
  summary: 'copy the stored credentials from one store to another (file or PostgreSQL), safely re-runnable',
  usage: USAGE,
  async run(args, io) {
    const { values, positionals } = parseArgs({
      args,
      options: { from: { type: 'string' }, to: { type: 'string' }, 'dry-run': { type: 'boolean' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
    const [sub, ...extra] = positionals;
    if (sub !== 'copy') throw usageError(`store: expected the subcommand copy\nusage: ${USAGE}`);
    if (extra.length > 0) throw usageError(`store copy: takes no arguments besides its options\nusage: ${USAGE}`);
    if (values.from === undefined) throw usageError(`store copy: --from is required\nusage: ${USAGE}`);
    if (values.to === undefined) throw usageError(`store copy: --to is required\nusage: ${USAGE}`);
    const fromSpec = await parseStoreSpec(values.from, '--from');
    const toSpec = await parseStoreSpec(values.to, '--to');
    if (fromSpec.kind === 'file' && !(await fileStoreExists(fromSpec.path))) {
      throw new LatchkeyError('LK_USAGE', `--from ${fromSpec.path}: there is no store file there; nothing was copied`);
    }
    const closers: (() => Promise<void>)[] = [];
    const from = await open(fromSpec, 'from', io, closers);
    let to: Opened | undefined;
    try {
      to = await open(toSpec, 'to', io, closers);
      const report = await copyStore(from, to, { dryRun: values['dry-run'] === true, entries: { from: from.entries, to: to.entries } });
      io.stdout.write(values.json ? `${JSON.stringify(report)}\n` : formatReport(report, from.location, to.location, values['dry-run'] === true));
      return ExitCode.ok;
    } finally {
      await Promise.allSettled([from.close(), to?.close(), ...closers.map((c) => c())]);
    }
  },
};

type Opened = Store & { entries?: EntryTransfer };

async function open(spec: StoreSpec, side: CopySide, io: CliIO, closers: (() => Promise<void>)[]): Promise<Opened> {
  try {
    let entries: EntryTransfer | undefined;
    const store: Opened = await openStoreSpec(spec, async (url) => {
      const pgStore = await openPostgresStore(url, io.env);
      entries = pgStore.entries;
      closers.push(() => pgStore.entries.close());
      return pgStore.store;
    });
    if (entries !== undefined) store.entries = entries;
    return store;
  } catch (err) {
    if (err instanceof LatchkeyError) throw new LatchkeyError(err.code, `--${side}: ${err.message}`, { exitCode: err.exitCode, fix: err.fix, cause: err });
    throw err;
  }
}

/** A PostgreSQL store (schema checked now, so a bad URL or a missing schema is named before anything is read) with its entry transfer. */
async function openPostgresStore(url: string, env: NodeJS.ProcessEnv): Promise<{ store: Store; entries: EntryTransfer & { close(): Promise<void> } }> {
  const [{ PgStore }, { PgEntryTransfer }, { masterKeyringFromEnv }] = await Promise.all([
    import('../../store/pg/pg-store.js'),
    import('../../store/pg/entry-transfer.js'),
    import('../../store/pg/master-keyring.js'),
  ]);
  let ring: ReturnType<typeof masterKeyringFromEnv> | undefined;
  const keys = (): ReturnType<typeof masterKeyringFromEnv> => (ring ??= masterKeyringFromEnv(env));
  const store = new PgStore({ url, env, masterKey: keys });
  try {
    await store.listMeta();
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  return { store, entries: new PgEntryTransfer(store.target, keys) };
}

function formatReport(r: CopyReport, from: string, to: string, dryRun: boolean): string {
  const lines = [`${dryRun ? 'would copy' : 'copied'} from ${from} to ${to}:`];
  const s = r.sources;
  lines.push(`  sources: ${s.copied.length} ${dryRun ? 'to copy' : 'copied'}, ${s.unchanged.length} already there`);
  if (s.kept_newer.length > 0) lines.push(`  kept (newer in the destination, not overwritten): ${s.kept_newer.join(', ')}`);
  if (s.kept_conflict.length > 0) lines.push(`  kept (different, same age: check which one is live, then remove the stale one): ${s.kept_conflict.join(', ')}`);
  if (s.gone.length > 0) lines.push(`  removed from the origin while copying (nothing to copy): ${s.gone.join(', ')}`);
  for (const [ks, c] of Object.entries(r.entries)) lines.push(`  ${ks}: ${c.copied} ${dryRun ? 'to copy' : 'copied'}, ${c.unchanged} already there, ${c.kept_newer} newer in the destination`);
  for (const [ks, why] of Object.entries(r.skippedKeyspaces)) lines.push(`  ${ks}: not copied (${why})`);
  return `${lines.join('\n')}\n`;
}
