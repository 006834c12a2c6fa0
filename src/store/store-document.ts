import { jsonSyntaxWhere, LatchkeyError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { clampExpiresAt, clampTime } from '../lifetime.js';
import type { FailureRecord, SourceMeta, SourceRecord, StoredGrant, StoredSession } from './store.js';

/**
 * The file store's document (`store.json`): parsing and serialising, nothing else, so the
 * CLI's synchronous fast path (src/cli/fast-path.ts) reads it with exactly the rules of
 * FileStore and without loading its async file and lock machinery.
 */

const FORMAT = 'latchkey-store';
const FORMAT_VERSION = 1;

// ---- (de)serialisation: the only place where stored secrets are revealed to disk ----

function corrupt(file: string, what: string): LatchkeyError {
  return new LatchkeyError(
    'LK_STORE_CORRUPT',
    `the store ${file} is corrupt (${what}); it was left untouched. Restore it from a backup or move it aside and run \`latchkey login\` again`,
  );
}

/**
 * The document's envelope checked (JSON, format, version, a `sources` object), its records not
 * built: what {@link recordOf} and {@link metaOf} build one record or the metadata from.
 */
export type RawSources = Readonly<Record<string, unknown>>;

export function parseStoreEnvelope(text: string, file: string): RawSources {
  if (text.trim() === '') throw corrupt(file, 'the file is empty');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    // Never the parser's message: it may quote the text, and the text holds tokens.
    throw corrupt(file, `not valid JSON ${jsonSyntaxWhere(err, text)}`);
  }
  if (!isObject(raw)) throw corrupt(file, 'expected a JSON object');
  if (raw.format !== FORMAT) throw corrupt(file, `"format" must be "${FORMAT}"`);
  if (raw.formatVersion !== FORMAT_VERSION) throw corrupt(file, `unsupported "formatVersion" ${String(raw.formatVersion).slice(0, 20)}`);
  if (!isObject(raw.sources)) throw corrupt(file, '"sources" must be an object');
  return raw.sources;
}

/** Every record, each checked: what a write starts from (a corrupt record anywhere is never rewritten). */
export function parseStoreDocument(text: string, file: string, openSecret: SecretOpener = newSecret): Map<string, SourceRecord> {
  const sources = parseStoreEnvelope(text, file);
  const out = new Map<string, SourceRecord>();
  for (const [name, value] of Object.entries(sources)) {
    out.set(name, parseRecord(value, `sources.${name}`, file, openSecret));
  }
  return out;
}

/**
 * One source's record, built (and its secrets wrapped) without building any other: the store's
 * per-source read and the CLI's fast path, so both apply the same rules to the same bytes.
 */
export function recordOf(sources: RawSources, name: string, file: string, openSecret: SecretOpener = newSecret): SourceRecord | undefined {
  if (!Object.hasOwn(sources, name)) return undefined;
  return parseRecord(sources[name], `sources.${name}`, file, openSecret);
}

/**
 * Turns a stored secret's text into a {@link Secret}: the one place a backend opens a secret
 * (an encrypting backend decrypts here). The contract suite passes one that counts, to prove
 * that {@link metaOfSources} and a single-source read open no other secret.
 */
export type SecretOpener = (value: string) => Secret;
const newSecret: SecretOpener = (value) => new Secret(value);

/** `recordOf` straight from the document's text. */
export function parseStoreRecord(text: string, file: string, name: string): SourceRecord | undefined {
  return recordOf(parseStoreEnvelope(text, file), name, file);
}

/**
 * Every source's metadata, checked by the same rules as a full parse but never constructing a
 * {@link Secret}: a token's value is looked at only to be a non-empty string.
 */
export function metaOfSources(sources: RawSources, file: string): Map<string, SourceMeta> {
  const out = new Map<string, SourceMeta>();
  for (const [name, value] of Object.entries(sources)) {
    const at = `sources.${name}`;
    const { rec, grant, session } = checkRecord(value, at, file);
    const meta: SourceMeta = { version: rec.version, hasGrant: grant !== undefined, hasRefreshToken: grant?.refreshToken !== undefined, hasSession: session !== undefined };
    if (grant) {
      meta.obtainedAt = grant.obtainedAt;
      if (grant.expiresAt !== undefined) meta.expiresAt = grant.expiresAt;
      if (grant.revoked) meta.revoked = grant.revoked;
    }
    if (session) meta.sessionUpdatedAt = session.updatedAt;
    if (rec.lastRefreshAt !== undefined) meta.lastRefreshAt = rec.lastRefreshAt;
    if (rec.refreshCount !== undefined) meta.refreshCount = rec.refreshCount;
    if (rec.lastFailure) meta.lastFailure = rec.lastFailure;
    out.set(name, meta);
  }
  return out;
}

/** A grant's fields as checked, its token values still plain strings (only {@link parseRecord} wraps them). */
type CheckedGrant = Omit<StoredGrant, 'accessToken' | 'refreshToken'> & { accessToken: string; refreshToken?: string };
type CheckedSession = { cookies: Record<string, string>; updatedAt: number };

function parseRecord(value: unknown, at: string, file: string, openSecret: SecretOpener): SourceRecord {
  const { rec, grant, session } = checkRecord(value, at, file);
  if (grant) {
    // Spread first: the fields keep their order, so a rewrite keeps the document's layout.
    const built: StoredGrant = { ...grant, accessToken: openSecret(grant.accessToken), refreshToken: undefined };
    if (grant.refreshToken !== undefined) built.refreshToken = openSecret(grant.refreshToken);
    else delete built.refreshToken;
    rec.grant = built;
  }
  if (session) rec.session = { cookies: Object.fromEntries(Object.entries(session.cookies).map(([k, v]) => [k, openSecret(v)])), updatedAt: session.updatedAt } satisfies StoredSession;
  return rec;
}

/** Checks one record; everything but its secrets is in `rec`, the grant and session come apart. */
function checkRecord(value: unknown, at: string, file: string): { rec: SourceRecord; grant?: CheckedGrant; session?: CheckedSession } {
  if (!isObject(value)) throw corrupt(file, `${at} must be an object`);
  if (typeof value.version !== 'number' || !Number.isInteger(value.version) || value.version < 1) {
    throw corrupt(file, `${at}.version must be a positive integer`);
  }
  const rec: SourceRecord = { version: value.version };
  const grant = value.grant !== undefined ? checkGrant(value.grant, `${at}.grant`, file) : undefined;
  const session = value.session !== undefined ? checkSession(value.session, `${at}.session`, file) : undefined;
  if (typeof value.lastRefreshAt === 'number') rec.lastRefreshAt = clampTime(value.lastRefreshAt);
  if (typeof value.refreshCount === 'number') rec.refreshCount = value.refreshCount;
  if (isObject(value.lastFailure)) {
    const f = value.lastFailure;
    if (typeof f.at === 'number' && typeof f.kind === 'string' && typeof f.message === 'string') {
      rec.lastFailure = { at: clampTime(f.at), kind: f.kind as FailureRecord['kind'], message: f.message };
      if (f.maybeConsumed === true) rec.lastFailure.maybeConsumed = true;
      if (typeof f.until === 'number') rec.lastFailure.until = clampTime(f.until);
    }
  }
  return { rec, ...(grant ? { grant } : {}), ...(session ? { session } : {}) };
}

function checkGrant(value: unknown, at: string, file: string): CheckedGrant {
  if (!isObject(value)) throw corrupt(file, `${at} must be an object`);
  if (typeof value.accessToken !== 'string' || value.accessToken === '') throw corrupt(file, `${at}.accessToken must be a non-empty string`);
  if (typeof value.obtainedAt !== 'number') throw corrupt(file, `${at}.obtainedAt must be a number`);
  // Times are bounded on read (see clampExpiresAt): a value past the Date range would make every
  // reader that formats it throw.
  const g: CheckedGrant = { accessToken: value.accessToken, obtainedAt: clampTime(value.obtainedAt) };
  if (value.refreshToken !== undefined) {
    if (typeof value.refreshToken !== 'string') throw corrupt(file, `${at}.refreshToken must be a string`);
    if (value.refreshToken !== '') g.refreshToken = value.refreshToken;
  }
  if (value.expiresAt !== undefined) {
    if (typeof value.expiresAt !== 'number') throw corrupt(file, `${at}.expiresAt must be a number`);
    g.expiresAt = clampExpiresAt(g.obtainedAt, value.expiresAt);
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
    g.revoked = { at: clampTime(r.at), reason: r.reason };
  }
  return g;
}

function checkSession(value: unknown, at: string, file: string): CheckedSession {
  if (!isObject(value) || !isObject(value.cookies) || typeof value.updatedAt !== 'number') {
    throw corrupt(file, `${at} must have "cookies" (object) and "updatedAt" (number)`);
  }
  const cookies: Record<string, string> = {};
  for (const [k, v] of Object.entries(value.cookies)) {
    if (typeof v !== 'string') throw corrupt(file, `${at}.cookies.${k} must be a string`);
    cookies[k] = v;
  }
  return { cookies, updatedAt: value.updatedAt };
}

export function serialize(doc: Map<string, SourceRecord>): string {
  return serializeDocument(doc).text;
}

/**
 * The document's text, and its `sources` as the plain object that text is the JSON of (what a
 * reader's {@link parseStoreEnvelope} of that text yields, so a writer can keep it as its parsed
 * copy instead of parsing what it just wrote).
 */
export function serializeDocument(doc: Map<string, SourceRecord>): { text: string; sources: RawSources } {
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
  const text = `${JSON.stringify({ format: FORMAT, formatVersion: FORMAT_VERSION, sources }, null, 2)}\n`;
  return { text, sources };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
