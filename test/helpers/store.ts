import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../../src/store/atomic-file.js';
import { parseStoreDocument, serialize } from '../../src/store/store-document.js';
import type { Secret } from '../../src/core/secret.js';
import type {
  Keyspace,
  LeaderLock,
  LeaderLockOptions,
  SourceMeta,
  SourceRecord,
  SourceRecordInput,
  Store,
  StoreTx,
  WithLockOptions,
} from '../../src/store/store.js';

/** A record written the way every Latchkey writer writes: under the key's lock, CAS on the version. */
export function writeRecord(store: Store, key: string, record: SourceRecordInput, expectedVersion: number): Promise<SourceRecord> {
  return store.withLock(key, (tx) => tx.write(key, record, expectedVersion));
}

/** A record removed under its lock. */
export function removeRecord(store: Store, key: string, expectedVersion?: number): Promise<void> {
  return store.withLock(key, (tx) => tx.remove(key, expectedVersion));
}

/**
 * A writer that skips every lock (a login on another machine of a shared home, a hand edit):
 * it rewrites the file store's document with `key` set to `record` at the next version.
 */
export async function writeOutOfBand(storePath: string, key: string, record: SourceRecordInput): Promise<void> {
  const doc = parseStoreDocument(await readFile(storePath, 'utf8'), storePath);
  doc.set(key, { ...record, version: (doc.get(key)?.version ?? 0) + 1 });
  await writeFileAtomic(storePath, serialize(doc));
}

/** A store that hands every call to `inner`; tests override what they script, `wrapTx` for locked writes. */
export class DelegatingStore implements Store {
  readonly inner: Store;
  constructor(inner: Store) {
    this.inner = inner;
  }
  get location(): string {
    return this.inner.location;
  }
  read(source: string): Promise<SourceRecord | undefined> {
    return this.inner.read(source);
  }
  list(): Promise<Map<string, SourceRecord>> {
    return this.inner.list();
  }
  listMeta(): Promise<Map<string, SourceMeta>> {
    return this.inner.listMeta();
  }
  withLock<T>(key: string, fn: (tx: StoreTx) => Promise<T>, options?: WithLockOptions): Promise<T> {
    return this.inner.withLock(key, (tx) => fn(this.wrapTx(tx)), options);
  }
  /** The transaction handed to locked work (as is, unless a test overrides it). */
  wrapTx(tx: StoreTx): StoreTx {
    return tx;
  }
  put(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void> {
    return this.inner.put(keyspace, id, value, ttlMs);
  }
  get(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    return this.inner.get(keyspace, id);
  }
  delete(keyspace: Keyspace, id: string): Promise<boolean> {
    return this.inner.delete(keyspace, id);
  }
  consume(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    return this.inner.consume(keyspace, id);
  }
  sweep(): Promise<number> {
    return this.inner.sweep();
  }
  leaderLock(options?: LeaderLockOptions): Promise<LeaderLock> {
    return this.inner.leaderLock(options);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** Counts the store reads made through it (unlocked and under a lock): the "reads per need" figure. */
export class CountingStore extends DelegatingStore {
  reads = 0;
  lists = 0;
  metaLists = 0;
  writes = 0;
  override read(source: string): Promise<SourceRecord | undefined> {
    this.reads++;
    return super.read(source);
  }
  override list(): Promise<Map<string, SourceRecord>> {
    this.lists++;
    return super.list();
  }
  override listMeta(): Promise<Map<string, SourceMeta>> {
    this.metaLists++;
    return super.listMeta();
  }
  override wrapTx(tx: StoreTx): StoreTx {
    return {
      ...tx,
      read: (key) => {
        this.reads++;
        return tx.read(key);
      },
      write: (key, record, version) => {
        this.writes++;
        return tx.write(key, record, version);
      },
      remove: (key, version) => tx.remove(key, version),
    };
  }
  reset(): void {
    this.reads = this.lists = this.metaLists = this.writes = 0;
  }
}
