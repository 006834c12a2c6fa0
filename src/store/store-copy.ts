import { LatchkeyError } from '../core/errors.js';
import type { Secret } from '../core/secret.js';
import type { Keyspace, SourceRecord, SourceRecordInput, Store, StoreTx } from './store.js';

/**
 * `latchkey store copy`: every source record (and the live keyspace entries a backend can
 * export) from one store to another, one record at a time, each under its lock in BOTH stores,
 * the destination written with compare-and-set on the version it just read.
 *
 * Nothing is lost on either side, whenever it stops:
 *
 * - the origin is only read (under its lock, so no refresh rotates the record mid-copy);
 * - a record is written to the destination in one durable unit (a renamed file, a committed
 *   row), so a copy killed halfway leaves each record either copied whole or not at all;
 * - a destination record is replaced only by a newer one: a record whose content is the same is
 *   left alone (a re-run writes nothing it already wrote), and one that is newer in the
 *   destination (refreshed there since: its refresh token is the live one) is kept, reported,
 *   never overwritten with an older, maybe consumed, refresh token.
 *
 * The two locks are always taken in the same order (by the stores' locations), so two copies
 * running in opposite directions cannot deadlock.
 */

/** What happened to one record. */
export type CopyOutcome = 'copied' | 'unchanged' | 'kept_newer' | 'kept_conflict' | 'gone';

export interface CopyOptions {
  /** Decide and report, write nothing. */
  dryRun?: boolean;
  /** Lock wait per record (default: each store's own). */
  lockTimeoutMs?: number;
  /** How each side lists / takes keyspace entries (default: the store itself, when it implements {@link EntryTransfer}). */
  entries?: { from?: EntryTransfer; to?: EntryTransfer };
  /** Called after each record (progress). */
  onRecord?: (kind: 'source' | Keyspace, name: string, outcome: CopyOutcome) => void;
}

export interface CopyReport {
  sources: Record<CopyOutcome, string[]>;
  /** Per keyspace: counts (entry ids are credentials and are never named). */
  entries: Partial<Record<Keyspace, Record<CopyOutcome, number>>>;
  /** Keyspaces not copied, with the reason. */
  skippedKeyspaces: Partial<Record<Keyspace, string>>;
}

/**
 * A keyspace entry as a backend holds it: the SHA-256 of its id (hex; the id itself is never
 * stored), when it expires, and its value.
 */
export interface RawEntry {
  digest: string;
  expiresAt: number;
  value: Secret;
}

/** What a backend implements so that `store copy` can carry its keyspace entries over. */
export interface EntryTransfer {
  /** Every live entry of `keyspace`. */
  rawEntries(keyspace: Keyspace): Promise<RawEntry[]>;
  /**
   * Writes `entry` unless the store holds the same one, or one that expires later (written
   * since: a rotated session); never revives an expired entry.
   */
  putRawEntry(keyspace: Keyspace, entry: RawEntry): Promise<'copied' | 'unchanged' | 'kept_newer'>;
}

/** Keyspaces copied: sessions and rotation successors. Tickets are single-use: a copy would make one usable twice. */
export const COPIED_KEYSPACES: readonly Keyspace[] = ['sessions', 'successors'];

export function hasEntryTransfer(store: Store): store is Store & EntryTransfer {
  const s = store as Partial<EntryTransfer>;
  return typeof s.rawEntries === 'function' && typeof s.putRawEntry === 'function';
}

/** Which side of a copy an error came from, for messages: `--from <location>`. */
export type CopySide = 'from' | 'to';

/** Re-throws `err` with the side and the store named first (same code and exit code). */
export function sideError(side: CopySide, store: Store, err: unknown): LatchkeyError {
  const where = `--${side} ${store.location}`;
  if (err instanceof LatchkeyError) {
    if (err.message.startsWith('--from ') || err.message.startsWith('--to ')) return err;
    return new LatchkeyError(err.code, `${where}: ${err.message}`, { source: err.source, operatorAction: err.operatorAction, exitCode: err.exitCode, fix: err.fix, cause: err });
  }
  const msg = err instanceof Error ? err.message : String(err);
  return new LatchkeyError('LK_STORE_IO', `${where}: ${msg}`, { cause: err });
}

async function onSide<T>(side: CopySide, store: Store, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw sideError(side, store, err);
  }
}

function emptyOutcomes<T>(make: () => T): Record<CopyOutcome, T> {
  return { copied: make(), unchanged: make(), kept_newer: make(), kept_conflict: make(), gone: make() };
}

export async function copyStore(from: Store, to: Store, options: CopyOptions = {}): Promise<CopyReport> {
  if (from.location === to.location) throw new LatchkeyError('LK_USAGE', `--from and --to are the same store (${from.location}); nothing was copied`);
  const report: CopyReport = { sources: emptyOutcomes(() => [] as string[]), entries: {}, skippedKeyspaces: {} };
  const names = [...(await onSide('from', from, () => from.listMeta())).keys()].sort();
  for (const name of names) {
    const outcome = await copyRecord(from, to, name, options);
    report.sources[outcome].push(name);
    options.onRecord?.('source', name, outcome);
  }
  for (const ks of ['sessions', 'successors', 'tickets'] as const) {
    if (!COPIED_KEYSPACES.includes(ks)) {
      report.skippedKeyspaces[ks] = 'single-use entries are not duplicated';
      continue;
    }
    const fromEntries = options.entries?.from ?? (hasEntryTransfer(from) ? from : undefined);
    const toEntries = options.entries?.to ?? (hasEntryTransfer(to) ? to : undefined);
    if (fromEntries === undefined || toEntries === undefined) {
      report.skippedKeyspaces[ks] = `the ${fromEntries === undefined ? '--from' : '--to'} store cannot list its entries`;
      continue;
    }
    const counts = emptyOutcomes(() => 0);
    const entries = await onSide('from', from, () => fromEntries.rawEntries(ks));
    for (const entry of entries) {
      const outcome = options.dryRun ? 'copied' : await onSide('to', to, () => toEntries.putRawEntry(ks, entry));
      counts[outcome]++;
      options.onRecord?.(ks, entry.digest.slice(0, 8), outcome);
    }
    report.entries[ks] = counts;
  }
  return report;
}

/** One source: both locks (in a fixed order), read both, write the destination with CAS. */
async function copyRecord(from: Store, to: Store, name: string, options: CopyOptions): Promise<CopyOutcome> {
  const lockOptions = options.lockTimeoutMs === undefined ? {} : { timeoutMs: options.lockTimeoutMs };
  const work = async (txFrom: StoreTx, txTo: StoreTx): Promise<CopyOutcome> => {
    const origin = await onSide('from', from, () => txFrom.read(name));
    if (!origin) return 'gone';
    const existing = await onSide('to', to, () => txTo.read(name));
    const outcome = decide(origin, existing);
    if (outcome === 'copied' && !options.dryRun) await onSide('to', to, () => txTo.write(name, inputOf(origin), existing?.version ?? 0));
    return outcome;
  };
  const fromFirst = from.location < to.location;
  const [first, second] = fromFirst ? ([['from', from], ['to', to]] as const) : ([['to', to], ['from', from]] as const);
  return onSide(first[0], first[1], () =>
    first[1].withLock(
      name,
      (txFirst) =>
        onSide(second[0], second[1], () =>
          second[1].withLock(name, (txSecond) => (fromFirst ? work(txFirst, txSecond) : work(txSecond, txFirst)), lockOptions),
        ),
      lockOptions,
    ),
  );
}

/** Whether the destination takes the origin's record (see {@link copyStore}). */
export function decide(origin: SourceRecord, existing: SourceRecord | undefined): CopyOutcome {
  if (!existing) return 'copied';
  if (sameContent(origin, existing)) return 'unchanged';
  const a = freshness(origin);
  const b = freshness(existing);
  if (b > a) return 'kept_newer';
  if (b === a) return 'kept_conflict';
  return 'copied';
}

/** The latest moment a record says something happened to it (a grant obtained, a refresh, a failure, a session write). */
export function freshness(rec: SourceRecord): number {
  return Math.max(rec.grant?.obtainedAt ?? 0, rec.lastRefreshAt ?? 0, rec.lastFailure?.at ?? 0, rec.grant?.revoked?.at ?? 0, rec.session?.updatedAt ?? 0);
}

function inputOf(rec: SourceRecord): SourceRecordInput {
  const { version: _version, ...input } = rec;
  return input;
}

/** Same record, secrets compared by value (in memory only), the version aside. */
export function sameContent(a: SourceRecord, b: SourceRecord): boolean {
  return canonical(inputOf(a)) === canonical(inputOf(b));
}

function canonical(value: unknown): string {
  return JSON.stringify(value, function replacer(this: Record<string, unknown>, key: string, v: unknown) {
    // JSON.stringify has already called toJSON (a Secret's says "[redacted]"): look at the holder's own value.
    const raw = key === '' ? v : this[key];
    if (raw !== null && typeof raw === 'object' && typeof (raw as { reveal?: unknown }).reveal === 'function') return { secret: (raw as Secret).reveal() };
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      const sorted: Record<string, unknown> = {};
      for (const k of Object.keys(v).sort()) {
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined) sorted[k] = x;
      }
      return sorted;
    }
    return v;
  });
}
