import { readFile, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { LatchkeyError } from '../errors.js';
import { Secret } from '../secret.js';
import { ensurePrivateDir, writeFileAtomic } from './atomic-file.js';
import { acquireLockFile } from './lock-file.js';
import type { FailureRecord, SourceRecord, SourceRecordInput, Store, StoredGrant, StoredSession, WithLockOptions } from './store.js';

const FORMAT = 'latchkey-store';
const FORMAT_VERSION = 1;

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
      await writeFileAtomic(this.location, serialize(doc));
      return result;
    } finally {
      await release();
    }
  }

  async #readDoc(): Promise<Map<string, SourceRecord>> {
    let text: string;
    try {
      text = await readFile(this.location, 'utf8');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return new Map();
      throw new LatchkeyError('LK_STORE_IO', `cannot read the store ${this.location}: ${code ?? String(err)}`, { cause: err });
    }
    await this.#checkFileMode();
    return parseStoreDocument(text, this.location);
  }

  async #checkFileMode(): Promise<void> {
    if (process.platform === 'win32' || this.#dirChecked) return;
    await ensurePrivateDir(dirname(this.location));
    const st = await stat(this.location);
    if ((st.mode & 0o077) !== 0) {
      throw new LatchkeyError(
        'LK_STORE_PERMISSIONS',
        `${this.location} is readable by other users (mode ${(st.mode & 0o777).toString(8)}). Fix: chmod 600 ${this.location}`,
      );
    }
  }
}

function encodeLockName(source: string): string {
  return source.replace(/[^A-Za-z0-9._-]/g, (c) => `%${c.charCodeAt(0).toString(16)}`);
}

// ---- (de)serialisation: the only place where stored secrets are revealed to disk ----

function corrupt(file: string, what: string): LatchkeyError {
  return new LatchkeyError(
    'LK_STORE_CORRUPT',
    `the store ${file} is corrupt (${what}); it was left untouched. Restore it from a backup or move it aside and run \`latchkey login\` again`,
  );
}

export function parseStoreDocument(text: string, file: string): Map<string, SourceRecord> {
  if (text.trim() === '') throw corrupt(file, 'the file is empty');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw corrupt(file, `not valid JSON: ${(err as Error).message.replace(/ in JSON at.*$/, '')}`);
  }
  if (!isObject(raw)) throw corrupt(file, 'expected a JSON object');
  if (raw.format !== FORMAT) throw corrupt(file, `"format" must be "${FORMAT}"`);
  if (raw.formatVersion !== FORMAT_VERSION) throw corrupt(file, `unsupported "formatVersion" ${String(raw.formatVersion)}`);
  if (!isObject(raw.sources)) throw corrupt(file, '"sources" must be an object');
  const out = new Map<string, SourceRecord>();
  for (const [name, value] of Object.entries(raw.sources)) {
    out.set(name, parseRecord(value, `sources.${name}`, file));
  }
  return out;
}

function parseRecord(value: unknown, at: string, file: string): SourceRecord {
  if (!isObject(value)) throw corrupt(file, `${at} must be an object`);
  if (typeof value.version !== 'number' || !Number.isInteger(value.version) || value.version < 1) {
    throw corrupt(file, `${at}.version must be a positive integer`);
  }
  const rec: SourceRecord = { version: value.version };
  if (value.grant !== undefined) rec.grant = parseGrant(value.grant, `${at}.grant`, file);
  if (value.session !== undefined) rec.session = parseSession(value.session, `${at}.session`, file);
  if (typeof value.lastRefreshAt === 'number') rec.lastRefreshAt = value.lastRefreshAt;
  if (typeof value.refreshCount === 'number') rec.refreshCount = value.refreshCount;
  if (isObject(value.lastFailure)) {
    const f = value.lastFailure;
    if (typeof f.at === 'number' && typeof f.kind === 'string' && typeof f.message === 'string') {
      rec.lastFailure = { at: f.at, kind: f.kind as FailureRecord['kind'], message: f.message };
    }
  }
  return rec;
}

function parseGrant(value: unknown, at: string, file: string): StoredGrant {
  if (!isObject(value)) throw corrupt(file, `${at} must be an object`);
  if (typeof value.accessToken !== 'string' || value.accessToken === '') throw corrupt(file, `${at}.accessToken must be a non-empty string`);
  if (typeof value.obtainedAt !== 'number') throw corrupt(file, `${at}.obtainedAt must be a number`);
  const g: StoredGrant = { accessToken: new Secret(value.accessToken), obtainedAt: value.obtainedAt };
  if (value.refreshToken !== undefined) {
    if (typeof value.refreshToken !== 'string') throw corrupt(file, `${at}.refreshToken must be a string`);
    if (value.refreshToken !== '') g.refreshToken = new Secret(value.refreshToken);
  }
  if (value.expiresAt !== undefined) {
    if (typeof value.expiresAt !== 'number') throw corrupt(file, `${at}.expiresAt must be a number`);
    g.expiresAt = value.expiresAt;
  }
  for (const key of ['tokenType', 'scope', 'tokenEndpoint', 'issuer', 'clientId'] as const) {
    const v = value[key];
    if (v !== undefined) {
      if (typeof v !== 'string') throw corrupt(file, `${at}.${key} must be a string`);
      g[key] = v;
    }
  }
  if (value.revoked !== undefined) {
    const r = value.revoked;
    if (!isObject(r) || typeof r.at !== 'number' || typeof r.reason !== 'string') throw corrupt(file, `${at}.revoked is malformed`);
    g.revoked = { at: r.at, reason: r.reason };
  }
  return g;
}

function parseSession(value: unknown, at: string, file: string): StoredSession {
  if (!isObject(value) || !isObject(value.cookies) || typeof value.updatedAt !== 'number') {
    throw corrupt(file, `${at} must have "cookies" (object) and "updatedAt" (number)`);
  }
  const cookies: Record<string, Secret> = {};
  for (const [k, v] of Object.entries(value.cookies)) {
    if (typeof v !== 'string') throw corrupt(file, `${at}.cookies.${k} must be a string`);
    cookies[k] = new Secret(v);
  }
  return { cookies, updatedAt: value.updatedAt };
}

export function serialize(doc: Map<string, SourceRecord>): string {
  const sources: Record<string, unknown> = {};
  for (const [name, rec] of [...doc.entries()].sort(([a], [b]) => a.localeCompare(b))) {
    sources[name] = {
      version: rec.version,
      grant: rec.grant && {
        ...rec.grant,
        accessToken: rec.grant.accessToken.reveal(),
        refreshToken: rec.grant.refreshToken?.reveal(),
      },
      session: rec.session && {
        updatedAt: rec.session.updatedAt,
        cookies: Object.fromEntries(Object.entries(rec.session.cookies).map(([k, v]) => [k, v.reveal()])),
      },
      lastRefreshAt: rec.lastRefreshAt,
      refreshCount: rec.refreshCount,
      lastFailure: rec.lastFailure,
    };
  }
  return `${JSON.stringify({ format: FORMAT, formatVersion: FORMAT_VERSION, sources }, null, 2)}\n`;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
