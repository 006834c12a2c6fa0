import { createHash } from 'node:crypto';
import { link, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { LatchkeyError } from '../core/errors.js';
import { clampTime } from '../lifetime.js';
import { Secret } from '../core/secret.js';
import { ensurePrivateDir, removeAbandonedTempFiles, tempPathFor, writeFileAtomic } from './atomic-file.js';
import { privateFileProblem, symlinkedStoreProblem } from './private-mode.js';
import { readRegularFile } from './read-file.js';
import { readFailure } from './regular-file.js';
import { KEYSPACES, type Keyspace } from './store.js';
import type { RawEntry } from './store-copy.js';

/**
 * The file store's keyspaces (`sessions`, `successors`, `tickets`): one file per entry,
 * `<dir>/<keyspace>/<sha256(id)>.json`, so that writing one session costs the same with ten or
 * ten thousand others (no document holding all of them is rewritten). The id never reaches the
 * disk (a session id or a ticket is itself a credential): only its hash names the file.
 *
 * Every file is written like the store (temp file 0600 → fsync → rename → fsync the directory,
 * in 0700 directories), read without following a symbolic link and only when private to this
 * user, and a file that does not parse is named in the error and left untouched.
 *
 * `consume` claims the file by renaming it to a fresh temp name: rename(2) is atomic, so of N
 * processes renaming the same file exactly one succeeds and the others see ENOENT. The winner
 * reads the claimed file and removes it; a winner killed in between leaves a temp file that the
 * abandoned-temp sweep removes (the entry was consumed: it must not come back).
 */

const FORMAT = 'latchkey-entry';
const FORMAT_VERSION = 1;
const ENTRY_NAME = /^[0-9a-f]{64}\.json$/;

interface Entry {
  expiresAt: number;
  value: string;
}

export class FileKeyspaces {
  readonly #dir: string;
  readonly #now: () => number;
  readonly #openSecret: (value: string) => Secret;
  readonly #checked = new Set<Keyspace>();
  #tempSwept = false;

  constructor(dir: string, now: () => number, openSecret: (value: string) => Secret = (value) => new Secret(value)) {
    this.#dir = dir;
    this.#now = now;
    this.#openSecret = openSecret;
  }

  /** The file of `id` (its hash: the id itself is never written anywhere). */
  fileOf(keyspace: Keyspace, id: string): string {
    checkKeyspace(keyspace);
    if (typeof id !== 'string' || id === '') throw new LatchkeyError('LK_USAGE', `a ${keyspace} entry needs a non-empty id`);
    return join(this.#dir, keyspace, `${createHash('sha256').update(id, 'utf8').digest('hex')}.json`);
  }

  async put(keyspace: Keyspace, id: string, value: Secret, ttlMs: number): Promise<void> {
    const file = this.fileOf(keyspace, id);
    if (!Number.isFinite(ttlMs) || ttlMs <= 0) throw new LatchkeyError('LK_USAGE', `a ${keyspace} entry needs a positive lifetime (got ${String(ttlMs)} ms)`);
    await this.#ensureDir(keyspace);
    const text = `${JSON.stringify({ format: FORMAT, formatVersion: FORMAT_VERSION, expiresAt: this.#now() + ttlMs, value: value.reveal() })}\n`;
    try {
      await writeFileAtomic(file, text);
    } catch (err) {
      throw new LatchkeyError('LK_STORE_IO', `cannot write the store entry ${file}: ${readFailure(err)}; it was left as it was`, { cause: err });
    }
    if (!this.#tempSwept) {
      this.#tempSwept = true;
      for (const ks of KEYSPACES) await removeAbandonedTempFiles(join(this.#dir, ks));
    }
  }

  async get(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    const entry = await this.#read(this.fileOf(keyspace, id));
    return entry && this.#now() < entry.expiresAt ? this.#openSecret(entry.value) : undefined;
  }

  async delete(keyspace: Keyspace, id: string): Promise<boolean> {
    const file = this.fileOf(keyspace, id);
    try {
      await unlink(file);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw new LatchkeyError('LK_STORE_IO', `cannot remove the store entry ${file}: ${readFailure(err)}`, { cause: err });
    }
  }

  async consume(keyspace: Keyspace, id: string): Promise<Secret | undefined> {
    const file = this.fileOf(keyspace, id);
    const claimed = await this.#claim(file);
    if (claimed === undefined) return undefined;
    let entry: Entry | undefined;
    try {
      entry = await this.#read(claimed, file);
    } catch (err) {
      // Not ours to judge or destroy: the entry goes back where it was, byte for byte.
      await link(claimed, file).catch(() => undefined);
      await unlink(claimed).catch(() => undefined);
      throw err;
    }
    await unlink(claimed).catch(() => undefined);
    return entry && this.#now() < entry.expiresAt ? this.#openSecret(entry.value) : undefined;
  }

  /**
   * Removes expired entries. Each is claimed (renamed) before it is judged again, so an entry a
   * writer replaced meanwhile with a live one is put back, never lost; a corrupt one is left.
   */
  async sweep(): Promise<number> {
    let removed = 0;
    const now = this.#now();
    for (const keyspace of KEYSPACES) {
      const dir = join(this.#dir, keyspace);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue;
      }
      for (const name of names) {
        if (!ENTRY_NAME.test(name)) continue;
        const file = join(dir, name);
        const entry = await this.#read(file).catch(() => undefined);
        if (entry === undefined || now < entry.expiresAt) continue;
        const claimed = await this.#claim(file);
        if (claimed === undefined) continue;
        const again = await this.#read(claimed, file).catch(() => undefined);
        if (again !== undefined && now >= again.expiresAt) {
          await unlink(claimed).catch(() => undefined);
          removed++;
        } else {
          // Replaced by a live entry (or unreadable) between the two reads: put it back, unless
          // a newer one took its place meanwhile (link fails, the newer one wins).
          await link(claimed, file).catch(() => undefined);
          await unlink(claimed).catch(() => undefined);
        }
      }
      await removeAbandonedTempFiles(dir);
    }
    return removed;
  }

  /** Every live entry of `keyspace` by its file's digest (for `store copy`; the ids are not known here). */
  async rawEntries(keyspace: Keyspace): Promise<RawEntry[]> {
    checkKeyspace(keyspace);
    const dir = join(this.#dir, keyspace);
    const names = await readdir(dir).catch(() => [] as string[]);
    const out: RawEntry[] = [];
    const now = this.#now();
    for (const name of names.sort()) {
      if (!ENTRY_NAME.test(name)) continue;
      const entry = await this.#read(join(dir, name));
      if (entry !== undefined && now < entry.expiresAt) out.push({ digest: name.slice(0, 64), expiresAt: entry.expiresAt, value: this.#openSecret(entry.value) });
    }
    return out;
  }

  /**
   * Writes an entry copied from another store under its digest, unless this store holds the
   * same value or one that expires later (written since). Not under the entry's lock: the lock
   * is named by the id, which no store keeps; a writer racing the copy wins or loses as with a
   * plain put.
   */
  async putRawEntry(keyspace: Keyspace, entry: RawEntry): Promise<'copied' | 'unchanged' | 'kept_newer'> {
    checkKeyspace(keyspace);
    if (!/^[0-9a-f]{64}$/.test(entry.digest)) throw new LatchkeyError('LK_USAGE', `a copied ${keyspace} entry needs a SHA-256 digest (64 hex digits)`);
    const file = join(this.#dir, keyspace, `${entry.digest}.json`);
    const existing = await this.#read(file);
    if (existing !== undefined && existing.value === entry.value.reveal()) return 'unchanged';
    if (existing !== undefined && existing.expiresAt >= entry.expiresAt) return 'kept_newer';
    await this.#ensureDir(keyspace);
    const text = `${JSON.stringify({ format: FORMAT, formatVersion: FORMAT_VERSION, expiresAt: entry.expiresAt, value: entry.value.reveal() })}\n`;
    try {
      await writeFileAtomic(file, text);
    } catch (err) {
      throw new LatchkeyError('LK_STORE_IO', `cannot write the store entry ${file}: ${readFailure(err)}; it was left as it was`, { cause: err });
    }
    return 'copied';
  }

  /** Renames `file` to a fresh temp name; undefined when it is not there (another claimed it). */
  async #claim(file: string): Promise<string | undefined> {
    const claimed = await tempPathFor(file);
    try {
      await rename(file, claimed);
      return claimed;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new LatchkeyError('LK_STORE_IO', `cannot take the store entry ${file}: ${readFailure(err)}`, { cause: err });
    }
  }

  async #read(path: string, named = path): Promise<Entry | undefined> {
    let read: Awaited<ReturnType<typeof readRegularFile>>;
    try {
      read = await readRegularFile(path, { noFollow: true });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return undefined;
      if (code === 'ELOOP') throw symlinkedStoreProblem(named);
      throw new LatchkeyError('LK_STORE_IO', `cannot read the store entry ${named}: ${readFailure(err)}`, { cause: err });
    }
    const problem = privateFileProblem(named, read.stat);
    if (problem) throw problem;
    return parseEntry(read.text, named);
  }

  async #ensureDir(keyspace: Keyspace): Promise<void> {
    if (this.#checked.has(keyspace)) return;
    await ensurePrivateDir(this.#dir);
    await ensurePrivateDir(join(this.#dir, keyspace));
    this.#checked.add(keyspace);
  }
}

function parseEntry(text: string, file: string): Entry {
  const bad = (what: string): LatchkeyError =>
    new LatchkeyError('LK_STORE_CORRUPT', `the store entry ${file} is corrupt (${what}); it was left untouched. Move it aside or remove it`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    // Never the parser's message: it may quote the text, and the text holds a secret.
    throw bad('not valid JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('expected a JSON object');
  const r = raw as Record<string, unknown>;
  if (r.format !== FORMAT || r.formatVersion !== FORMAT_VERSION) throw bad(`"format" must be "${FORMAT}" version ${FORMAT_VERSION}`);
  if (typeof r.expiresAt !== 'number' || typeof r.value !== 'string') throw bad('"expiresAt" (number) and "value" (string) are required');
  return { expiresAt: clampTime(r.expiresAt), value: r.value };
}

function checkKeyspace(keyspace: Keyspace): void {
  if (!KEYSPACES.includes(keyspace)) throw new LatchkeyError('LK_USAGE', `unknown store keyspace "${String(keyspace)}" (known: ${KEYSPACES.join(', ')})`);
}
