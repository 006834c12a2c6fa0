import { lstat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LatchkeyError } from '../core/errors.js';
import { ensurePrivateDir, removeAbandonedTempFiles, writeFileAtomic } from './atomic-file.js';
import { acquireLockFile } from './lock-file.js';
import { privateFileProblem, symlinkedStoreProblem } from './private-mode.js';
import type { Stats } from 'node:fs';
import type { Secret } from '../core/secret.js';
import type { FileKeyspaces } from './keyspace-files.js';
import { readRegularFileIfChanged } from './read-file.js';
import { readFailure } from './regular-file.js';
import { metaOfSources, parseStoreDocument, parseStoreEnvelope, recordOf, serializeDocument, type RawSources, type SecretOpener } from './store-document.js';
import type { RawEntry } from './store-copy.js';
import type { Keyspace, LeaderLock, LeaderLockOptions, SourceMeta, SourceRecord, SourceRecordInput, Store, StoreTx, WithLockOptions } from './store.js';

export { parseStoreDocument, serialize } from './store-document.js';

export interface FileStoreOptions {
  /** Path of the JSON document (default `<home>/store.json`). */
  path: string;
  /** Directory for lock files (default `<dir>/locks`). */
  locksDir?: string;
  /** A source lock older than this is abandoned (default 30 s: above the 15 s refresh timeout). */
  staleLockMs?: number;
  lockTimeoutMs?: number;
  /** Directory of the keyspaces' entry files (default `<dir>/keyspaces`). */
  keyspacesDir?: string;
  /** The leader (keeper) lock file (default `<locksDir>/keeper.lock`). */
  leaderLockPath?: string;
  /** The clock keyspace expiry is judged by (default Date.now). */
  now?: () => number;
  /** How a stored secret's text becomes a Secret (default: wrapped as is). */
  openSecret?: SecretOpener;
}

/**
 * What every FileStore in this process has done, for the bench's "store reads per need" figures
 * (bench/store-reads.bench.ts): calls of `read` (unlocked and `tx.read`), of the listings, and
 * how many times the document's text was actually parsed. Counting costs an increment.
 */
export const fileStoreCounters = { reads: 0, listings: 0, metaListings: 0, parses: 0 };

/** Which file a parse was of: inode, size and times (every write renames a new inode in). */
interface FileIdentity {
  dev: number;
  ino: number;
  size: number;
  mtimeMs: number;
  ctimeMs: number;
}

/** The parsed document's envelope, kept while the file is the same one. */
interface ParsedDoc extends FileIdentity {
  sources: RawSources;
}

function identity(st: FileIdentity): FileIdentity {
  return { dev: st.dev, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
}

/**
 * The embedded default store (store contract v2, see "The file store" in docs/DESIGN.md).
 *
 * Sources: one JSON document (`store.json`), 0600 in a 0700 directory, replaced atomically.
 * Per-key lock files serialise the locked work ({@link withLock}); a short document lock
 * serialises the read-modify-write of the document itself, so writers of different sources never
 * lose each other's updates. A write is renamed and fsync'd before `tx.write` resolves, so the
 * locked work is durable when `withLock` resolves.
 *
 * Reads: the document's parsed envelope is kept while the file is the same one (same inode,
 * size and times, checked by fstat on every read: every write renames a new file in), and a
 * read builds only the record asked for; {@link listMeta} builds no record at all. So a keeper
 * cycle or a refreshing `latchkey token` parses the document once, not once per stage.
 *
 * Keyspaces: one file per entry (src/store/keyspace-files.ts).
 */
export class FileStore implements Store {
  readonly location: string;
  readonly #locksDir: string;
  readonly #staleLockMs: number;
  readonly #lockTimeoutMs: number;
  readonly #keyspacesDir: string;
  readonly #leaderLockPath: string;
  readonly #now: () => number;
  readonly #openSecret: SecretOpener | undefined;
  #dirChecked = false;
  #tempSwept = false;
  #parsed: ParsedDoc | undefined;
  /** A parse under way (its file's identity), for readers of the same file meanwhile. */
  #parsing: { id: FileIdentity; promise: Promise<RawSources> } | undefined;
  #keyspaces: Promise<FileKeyspaces> | undefined;

  constructor(options: FileStoreOptions) {
    this.location = options.path;
    this.#locksDir = options.locksDir ?? join(dirname(options.path), 'locks');
    this.#staleLockMs = options.staleLockMs ?? 30_000;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 45_000;
    this.#keyspacesDir = options.keyspacesDir ?? join(dirname(options.path), 'keyspaces');
    this.#leaderLockPath = options.leaderLockPath ?? join(this.#locksDir, 'keeper.lock');
    this.#now = options.now ?? Date.now;
    this.#openSecret = options.openSecret;
  }

  async read(source: string): Promise<SourceRecord | undefined> {
    fileStoreCounters.reads++;
    const sources = await this.#readSources();
    return sources && recordOf(sources, source, this.location, this.#openSecret);
  }

  async list(): Promise<Map<string, SourceRecord>> {
    fileStoreCounters.listings++;
    const sources = await this.#readSources();
    const out = new Map<string, SourceRecord>();
    if (sources === undefined) return out;
    for (const name of Object.keys(sources)) out.set(name, recordOf(sources, name, this.location, this.#openSecret) as SourceRecord);
    return out;
  }

  async listMeta(): Promise<Map<string, SourceMeta>> {
    fileStoreCounters.metaListings++;
    const sources = await this.#readSources();
    return sources ? metaOfSources(sources, this.location) : new Map();
  }

  async #write(source: string, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord> {
    return this.#mutate((doc) => {
      const current = doc.get(source);
      const currentVersion = current?.version ?? 0;
      if (currentVersion !== expectedVersion) {
        throw new LatchkeyError(
          'LK_STORE_CONFLICT',
          `store record for "${source}" changed underneath (expected version ${expectedVersion}, found ${currentVersion})`,
          { source },
        );
      }
      const next: SourceRecord = { ...record, version: currentVersion + 1 };
      doc.set(source, next);
      return next;
    });
  }

  async #remove(source: string, expectedVersion?: number): Promise<void> {
    await this.#mutate((doc) => {
      const current = doc.get(source);
      if (!current) return undefined;
      if (expectedVersion !== undefined && current.version !== expectedVersion) {
        throw new LatchkeyError('LK_STORE_CONFLICT', `store record for "${source}" changed underneath`, { source });
      }
      doc.delete(source);
      return undefined;
    });
  }

  async withLock<T>(source: string, fn: (tx: StoreTx) => Promise<T>, options: WithLockOptions = {}): Promise<T> {
    await this.#ensureDirs();
    const release = await acquireLockFile(join(this.#locksDir, `${encodeLockName(source)}.lock`), {
      staleMs: this.#staleLockMs,
      timeoutMs: options.timeoutMs ?? this.#lockTimeoutMs,
      label: `for source "${source}"`,
      ...(options.signal ? { signal: options.signal } : {}),
    });
    let open = true;
    const bound = (key: string, what: string): void => {
      if (!open) throw new LatchkeyError('LK_STORE_IO', `a ${what} of "${key}" came after its lock was released; nothing was written`);
      if (key !== source) throw new LatchkeyError('LK_STORE_IO', `a ${what} of "${key}" under the lock of "${source}": each key is written under its own lock; nothing was written`);
    };
    const tx: StoreTx = {
      read: async (key) => {
        bound(key, 'read');
        return this.read(key);
      },
      // Each write is renamed and fsync'd before it resolves: durable before withLock resolves.
      write: async (key, record, expectedVersion) => {
        bound(key, 'write');
        return this.#write(key, record, expectedVersion);
      },
      remove: async (key, expectedVersion) => {
        bound(key, 'removal');
        return this.#remove(key, expectedVersion);
      },
      // Entries are one file each, renamed and fsync'd before these resolve; the lock file is
      // what serialises them (a session's lock key is its own, not the entry's file).
      getEntry: async (keyspace, id) => {
        if (!open) throw new LatchkeyError('LK_STORE_IO', `a read of a ${keyspace} entry came after its lock was released`);
        return this.get(keyspace, id);
      },
      putEntry: async (keyspace, id, value, ttlMs) => {
        if (!open) throw new LatchkeyError('LK_STORE_IO', `a write of a ${keyspace} entry came after its lock was released; nothing was written`);
        return this.put(keyspace, id, value, ttlMs);
      },
      deleteEntry: async (keyspace, id) => {
        if (!open) throw new LatchkeyError('LK_STORE_IO', `a removal of a ${keyspace} entry came after its lock was released; nothing was removed`);
        return this.delete(keyspace, id);
      },
    };
    try {
      return await fn(tx);
    } finally {
      open = false;
      await release();
    }
  }

  async put(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void> {
    await this.#ensureHome();
    return (await this.#ks()).put(keyspace, id, value, ttlMs);
  }

  async get(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    return (await this.#ks()).get(keyspace, id);
  }

  async delete(keyspace: Keyspace, id: string): Promise<boolean> {
    return (await this.#ks()).delete(keyspace, id);
  }

  async consume(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    return (await this.#ks()).consume(keyspace, id);
  }

  async sweep(): Promise<number> {
    return (await this.#ks()).sweep();
  }

  /** Every live entry of a keyspace by digest (`store copy`). */
  async rawEntries(keyspace: Keyspace): Promise<RawEntry[]> {
    return (await this.#ks()).rawEntries(keyspace);
  }

  /** Writes an entry copied from another store unless this one holds it or a newer one (`store copy`). */
  async putRawEntry(keyspace: Keyspace, entry: RawEntry): Promise<'copied' | 'unchanged' | 'kept_newer'> {
    await this.#ensureHome();
    return (await this.#ks()).putRawEntry(keyspace, entry);
  }

  async leaderLock(options: LeaderLockOptions = {}): Promise<LeaderLock> {
    const { acquireFileLeaderLock } = await import('./leader-lock.js');
    return acquireFileLeaderLock(this.#leaderLockPath, options);
  }

  async close(): Promise<void> {
    // Nothing held between calls.
  }

  /** Loaded on first use: `latchkey token` never needs the keyspaces (nor node:crypto). */
  #ks(): Promise<FileKeyspaces> {
    this.#keyspaces ??= import('./keyspace-files.js').then(({ FileKeyspaces }) => new FileKeyspaces(this.#keyspacesDir, this.#now, this.#openSecret));
    return this.#keyspaces;
  }

  async #ensureHome(): Promise<void> {
    if (!this.#dirChecked) await ensurePrivateDir(dirname(this.location));
  }

  async #ensureDirs(): Promise<void> {
    if (this.#dirChecked) return;
    await ensurePrivateDir(dirname(this.location));
    await ensurePrivateDir(this.#locksDir);
    this.#dirChecked = true;
  }

  async #mutate<T>(change: (doc: Map<string, SourceRecord>) => T): Promise<T> {
    await this.#ensureDirs();
    const release = await acquireLockFile(join(this.#locksDir, 'store-document.lock'), {
      staleMs: 10_000,
      timeoutMs: this.#lockTimeoutMs,
      label: `for ${this.location}`,
    });
    try {
      // Read inside the document lock; a read that fails throws here and nothing is written.
      const doc = await this.#readDoc();
      const result = change(doc);
      const next = serializeDocument(doc);
      let written: { dev: number; ino: number };
      try {
        written = await writeFileAtomic(this.location, next.text);
      } catch (err) {
        // Disk full, read-only filesystem, quota: the old document is still in place, whole.
        throw new LatchkeyError('LK_STORE_IO', `cannot write the store ${this.location}: ${readFailure(err)}; it was left as it was`, { cause: err });
      }
      await this.#keepParsed(written, next.sources);
      if (!this.#tempSwept) {
        // Once per instance, after the rename (never inside the answer→rename window of a
        // refresh): temp files of writers killed before their rename would pile up forever.
        this.#tempSwept = true;
        await removeAbandonedTempFiles(dirname(this.location));
        await removeAbandonedTempFiles(this.#locksDir);
      }
      return result;
    } finally {
      await release();
    }
  }

  /**
   * Keeps what was just written as the parsed copy, when the file now at the path is the one
   * written (same inode: no writer came after), so the next read costs an fstat, not a parse of
   * the whole document. Best effort: any doubt leaves the next read to parse.
   */
  async #keepParsed(written: { dev: number; ino: number }, sources: RawSources): Promise<void> {
    this.#parsed = undefined;
    try {
      const st = await lstat(this.location);
      if (st.dev !== written.dev || st.ino !== written.ino) return;
      this.#parsed = { ...identity(st), sources };
    } catch {
      // the next read parses
    }
  }

  /** Every record, each checked (what a write starts from). */
  async #readDoc(): Promise<Map<string, SourceRecord>> {
    const text = await this.#readText();
    if (text !== undefined) fileStoreCounters.parses++;
    return text === undefined ? new Map() : parseStoreDocument(text, this.location, this.#openSecret);
  }

  /**
   * The document's envelope, parsed once per version of the file: fstat on the opened file says
   * whether it is still the one parsed (every write renames a new inode in; an edit in place
   * changes the size or the times). Undefined when there is no store yet.
   */
  async #readSources(): Promise<RawSources | undefined> {
    let hit: RawSources | Promise<RawSources> | undefined;
    let mine: { resolve(s: RawSources): void; reject(e: unknown): void } | undefined;
    // Called right after fstat on the opened file, synchronously: the parsed copy of this very
    // file, or the parse another reader of it has started, is used instead of reading it again.
    const settleOnError = (err: unknown): never => {
      // Never leave readers waiting on a parse that will not happen (a refused file, an I/O error).
      mine?.reject(err);
      if (mine !== undefined) this.#parsing = undefined;
      throw err;
    };
    const read = await this.#open((st) => {
      const cached = this.#parsed;
      if (cached !== undefined && sameFile(cached, st)) hit = cached.sources;
      else if (this.#parsing !== undefined && sameFile(this.#parsing.id, st)) hit = this.#parsing.promise;
      else {
        const promise = new Promise<RawSources>((resolve, reject) => (mine = { resolve, reject }));
        promise.catch(() => undefined); // its error goes to the reader that parses; waiters get it too
        this.#parsing = { id: identity(st), promise };
      }
      return hit !== undefined;
    }).catch(settleOnError);
    if (read === undefined) return undefined;
    if (read.text === undefined) return hit;
    const id = identity(read.stat);
    try {
      fileStoreCounters.parses++;
      const sources = parseStoreEnvelope(read.text, this.location);
      this.#parsed = { ...id, sources };
      mine?.resolve(sources);
      return sources;
    } catch (err) {
      mine?.reject(err);
      throw err;
    } finally {
      if (this.#parsing !== undefined && sameFile(this.#parsing.id, read.stat)) this.#parsing = undefined;
    }
  }

  async #readText(): Promise<string | undefined> {
    return (await this.#open(() => false))?.text;
  }

  async #open(unchanged: (st: Stats) => boolean): Promise<{ text: string | undefined; stat: Stats } | undefined> {
    let read: Awaited<ReturnType<typeof readRegularFileIfChanged>>;
    try {
      // Not through a symbolic link, a regular file only (a FIFO must not hang every reader).
      read = await readRegularFileIfChanged(this.location, { noFollow: true }, unchanged);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') throw symlinkedStoreProblem(this.location);
      throw new LatchkeyError('LK_STORE_IO', `cannot read the store ${this.location}: ${readFailure(err)}`, { cause: err });
    }
    if (!this.#dirChecked) await ensurePrivateDir(dirname(this.location));
    // Checked on the opened file itself, on every read: no window between check and use.
    const problem = privateFileProblem(this.location, read.stat);
    if (problem) throw problem;
    return read;
  }
}

function sameFile(a: FileIdentity, st: FileIdentity): boolean {
  return a.dev === st.dev && a.ino === st.ino && a.size === st.size && a.mtimeMs === st.mtimeMs && a.ctimeMs === st.ctimeMs;
}

function encodeLockName(source: string): string {
  return source.replace(/[^A-Za-z0-9._-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}
