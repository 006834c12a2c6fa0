import { jsonSyntaxWhere, LatchkeyError } from '../errors.js';
import { Secret } from '../secret.js';
import { clampExpiresAt, clampTime } from '../lifetime.js';
import type { FailureRecord, SourceRecord, StoredGrant, StoredSession } from './store.js';

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

export function parseStoreDocument(text: string, file: string): Map<string, SourceRecord> {
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
  return rec;
}

function parseGrant(value: unknown, at: string, file: string): StoredGrant {
  if (!isObject(value)) throw corrupt(file, `${at} must be an object`);
  if (typeof value.accessToken !== 'string' || value.accessToken === '') throw corrupt(file, `${at}.accessToken must be a non-empty string`);
  if (typeof value.obtainedAt !== 'number') throw corrupt(file, `${at}.obtainedAt must be a number`);
  // Times are bounded on read (see clampExpiresAt): a value past the Date range would make every
  // reader that formats it throw.
  const g: StoredGrant = { accessToken: new Secret(value.accessToken), obtainedAt: clampTime(value.obtainedAt) };
  if (value.refreshToken !== undefined) {
    if (typeof value.refreshToken !== 'string') throw corrupt(file, `${at}.refreshToken must be a string`);
    if (value.refreshToken !== '') g.refreshToken = new Secret(value.refreshToken);
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
