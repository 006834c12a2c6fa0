import { dirname, join } from 'node:path';
import { LatchkeyError } from '../errors.js';
import { ensurePrivateDir, removeAbandonedTempFiles, writeFileAtomic } from './atomic-file.js';
import { acquireLockFile } from './lock-file.js';
import { privateFileProblem, symlinkedStoreProblem } from './private-mode.js';
import { readRegularFile } from './read-file.js';
import { readFailure } from './regular-file.js';
import { parseStoreDocument, serialize } from './store-document.js';
import type { SourceRecord, SourceRecordInput, Store, WithLockOptions } from './store.js';

export { parseStoreDocument, serialize } from './store-document.js';

export interface FileStoreOptions {
  /** Path of the JSON document (default `<home>/store.json`). */
  path: string;
  /** Directory for lock files (default `<dir>/locks`). */
  locksDir?: string;
  /** A source lock older than this is abandoned (default 30 s: above the 15 s refresh timeout). */
  staleLockMs?: number;
  lockTimeoutMs?: number;
}

/**
 * The embedded default store: one JSON document, 0600 in a 0700 directory, replaced
 * atomically. Per-source lock files serialise refreshes; a short document lock serialises
 * the read-modify-write of the document itself, so writers of different sources never lose
 * each other's updates.
 */
export class FileStore implements Store {
  readonly location: string;
  readonly #locksDir: string;
  readonly #staleLockMs: number;
  readonly #lockTimeoutMs: number;
  #dirChecked = false;
  #tempSwept = false;

  constructor(options: FileStoreOptions) {
    this.location = options.path;
    this.#locksDir = options.locksDir ?? join(dirname(options.path), 'locks');
    this.#staleLockMs = options.staleLockMs ?? 30_000;
    this.#lockTimeoutMs = options.lockTimeoutMs ?? 45_000;
  }

  async read(source: string): Promise<SourceRecord | undefined> {
    const doc = await this.#readDoc();
    return doc.get(source);
  }

  async list(): Promise<Map<string, SourceRecord>> {
    return this.#readDoc();
  }

  async write(source: string, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord> {
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

  async remove(source: string, expectedVersion?: number): Promise<void> {
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

  async withLock<T>(source: string, fn: () => Promise<T>, options: WithLockOptions = {}): Promise<T> {
    await this.#ensureDirs();
    const release = await acquireLockFile(join(this.#locksDir, `${encodeLockName(source)}.lock`), {
      staleMs: this.#staleLockMs,
      timeoutMs: options.timeoutMs ?? this.#lockTimeoutMs,
      label: `for source "${source}"`,
    });
    try {
      return await fn();
    } finally {
      await release();
    }
  }

  async close(): Promise<void> {
    // Nothing held between calls.
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
      try {
        await writeFileAtomic(this.location, serialize(doc));
      } catch (err) {
        // Disk full, read-only filesystem, quota: the old document is still in place, whole.
        throw new LatchkeyError('LK_STORE_IO', `cannot write the store ${this.location}: ${readFailure(err)}; it was left as it was`, { cause: err });
      }
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

  async #readDoc(): Promise<Map<string, SourceRecord>> {
    let read: Awaited<ReturnType<typeof readRegularFile>>;
    try {
      // Not through a symbolic link, a regular file only (a FIFO must not hang every reader).
      read = await readRegularFile(this.location, { noFollow: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return new Map();
      if (code === 'ELOOP') throw symlinkedStoreProblem(this.location);
      throw new LatchkeyError('LK_STORE_IO', `cannot read the store ${this.location}: ${readFailure(err)}`, { cause: err });
    }
    if (!this.#dirChecked) await ensurePrivateDir(dirname(this.location));
    // Checked on the opened file itself, on every read: no window between check and use.
    const problem = privateFileProblem(this.location, read.stat);
    if (problem) throw problem;
    return parseStoreDocument(read.text, this.location);
  }
}

function encodeLockName(source: string): string {
  return source.replace(/[^A-Za-z0-9._-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}
