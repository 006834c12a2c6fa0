import { LatchkeyError } from '../../core/errors.js';
import type { Secret } from '../../core/secret.js';
import type { SecretOpener } from '../store-document.js';
import type { FailureRecord, SourceMeta, SourceRecord, SourceRecordInput, StoredGrant } from '../store.js';
import { open, seal, type MasterKeyring, type SealedAt } from './envelope.js';

/**
 * A source record ↔ its row in `sources`: metadata in plain columns (read by listMeta without the
 * master key), each secret in its own sealed column (bound to the row and column).
 */

/** The columns a metadata listing reads: never a sealed one. */
export const META_COLUMNS = 'name, version, has_grant, expires_at, obtained_at, revoked, last_refresh_at, refresh_count, last_failure, session_updated_at, refresh_token IS NOT NULL AS has_refresh_token, session_cookies IS NOT NULL AS has_session';
/** The columns a full read takes. */
export const RECORD_COLUMNS = 'name, version, has_grant, expires_at, obtained_at, revoked, grant_meta, last_refresh_at, refresh_count, last_failure, session_updated_at, access_token, refresh_token, session_cookies';
/** {@link RECORD_COLUMNS} of the `sources` row aliased `s` (in a join with the claim row). */
export const RECORD_COLUMNS_OF_S = RECORD_COLUMNS.split(', ')
  .map((col) => `s.${col}`)
  .join(', ');
/** The columns a write sets, in the order of {@link rowValues}. */
export const WRITE_COLUMNS = ['has_grant', 'expires_at', 'obtained_at', 'revoked', 'grant_meta', 'last_refresh_at', 'refresh_count', 'last_failure', 'session_updated_at', 'access_token', 'refresh_token', 'session_cookies', 'key_id'] as const;
/** SQL casts of the written values (jsonb as text). */
export const WRITE_CASTS: Record<(typeof WRITE_COLUMNS)[number], string> = {
  has_grant: 'boolean',
  expires_at: 'float8',
  obtained_at: 'float8',
  revoked: 'jsonb',
  grant_meta: 'jsonb',
  last_refresh_at: 'float8',
  refresh_count: 'bigint',
  last_failure: 'jsonb',
  session_updated_at: 'float8',
  access_token: 'bytea',
  refresh_token: 'bytea',
  session_cookies: 'bytea',
  key_id: 'text',
};

/** Where a source's secret column is sealed for: its table, column and row (the source name). */
export function sourceSealedAt(name: string, column: 'access_token' | 'refresh_token' | 'session_cookies'): SealedAt {
  return { table: 'sources', column, row: name };
}

export interface SourceRow {
  name: string;
  version: string | number;
  has_grant: boolean;
  expires_at: string | null;
  obtained_at: string | null;
  revoked: { at: number; reason: string } | null;
  grant_meta?: GrantMeta | null;
  last_refresh_at: string | null;
  refresh_count: string | null;
  last_failure: FailureRecord | null;
  session_updated_at: string | null;
  access_token?: Buffer | null;
  refresh_token?: Buffer | null;
  session_cookies?: Buffer | null;
  has_refresh_token?: boolean;
  has_session?: boolean;
}

/** The grant's non-secret fields that have no column of their own. */
interface GrantMeta {
  tokenType?: string;
  scope?: string;
  tokenEndpoint?: string;
  issuer?: string;
  clientId?: string;
}

const num = (v: string | number | null | undefined): number | undefined => (v === null || v === undefined ? undefined : Number(v));

/** A row's metadata (listMeta): no sealed column is read or opened. */
export function metaOfRow(row: SourceRow): SourceMeta {
  const meta: SourceMeta = { version: Number(row.version), hasGrant: row.has_grant, hasRefreshToken: row.has_grant && row.has_refresh_token === true, hasSession: row.has_session === true };
  const expiresAt = num(row.expires_at);
  if (row.has_grant && expiresAt !== undefined) meta.expiresAt = expiresAt;
  const obtainedAt = num(row.obtained_at);
  if (row.has_grant && obtainedAt !== undefined) meta.obtainedAt = obtainedAt;
  if (row.has_grant && row.revoked) meta.revoked = row.revoked;
  const lastRefreshAt = num(row.last_refresh_at);
  if (lastRefreshAt !== undefined) meta.lastRefreshAt = lastRefreshAt;
  const refreshCount = num(row.refresh_count);
  if (refreshCount !== undefined) meta.refreshCount = refreshCount;
  if (row.last_failure) meta.lastFailure = row.last_failure;
  const sessionUpdatedAt = num(row.session_updated_at);
  if (meta.hasSession && sessionUpdatedAt !== undefined) meta.sessionUpdatedAt = sessionUpdatedAt;
  return meta;
}

/** A row as a record, its sealed columns opened (only this row's). */
export function recordOfRow(row: SourceRow, ring: MasterKeyring, openSecret: SecretOpener): SourceRecord {
  const rec: SourceRecord = { version: Number(row.version) };
  if (row.has_grant) {
    if (!row.access_token) throw new LatchkeyError('LK_STORE_CORRUPT', `the stored grant of "${row.name}" has no access token column; it was left as it is`, { source: row.name });
    const grant: StoredGrant = { accessToken: openSecret(open(ring, sourceSealedAt(row.name, 'access_token'), row.access_token)), obtainedAt: num(row.obtained_at) ?? 0 };
    if (row.refresh_token) grant.refreshToken = openSecret(open(ring, sourceSealedAt(row.name, 'refresh_token'), row.refresh_token));
    const m = row.grant_meta ?? {};
    if (m.tokenType !== undefined) grant.tokenType = m.tokenType;
    if (m.scope !== undefined) grant.scope = m.scope;
    const expiresAt = num(row.expires_at);
    if (expiresAt !== undefined) grant.expiresAt = expiresAt;
    if (m.tokenEndpoint !== undefined) grant.tokenEndpoint = m.tokenEndpoint;
    if (m.issuer !== undefined) grant.issuer = m.issuer;
    if (m.clientId !== undefined) grant.clientId = m.clientId;
    if (row.revoked) grant.revoked = row.revoked;
    rec.grant = grant;
  }
  if (row.session_cookies) {
    const text = open(ring, sourceSealedAt(row.name, 'session_cookies'), row.session_cookies);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (typeof parsed !== 'object' || parsed === null || Object.values(parsed).some((v) => typeof v !== 'string')) {
      throw new LatchkeyError('LK_STORE_CORRUPT', `the stored session cookies of "${row.name}" are not a cookie map; they were left as they are`, { source: row.name });
    }
    const cookies: Record<string, Secret> = {};
    for (const [k, v] of Object.entries(parsed as Record<string, string>)) cookies[k] = openSecret(v);
    rec.session = { cookies, updatedAt: num(row.session_updated_at) ?? 0 };
  }
  const lastRefreshAt = num(row.last_refresh_at);
  if (lastRefreshAt !== undefined) rec.lastRefreshAt = lastRefreshAt;
  const refreshCount = num(row.refresh_count);
  if (refreshCount !== undefined) rec.refreshCount = refreshCount;
  if (row.last_failure) rec.lastFailure = row.last_failure;
  return rec;
}

/** The values of {@link WRITE_COLUMNS} for a record, its secrets sealed for this row. */
export function rowValues(name: string, record: SourceRecordInput, ring: MasterKeyring): unknown[] {
  const g = record.grant;
  const meta: GrantMeta = {};
  if (g?.tokenType !== undefined) meta.tokenType = g.tokenType;
  if (g?.scope !== undefined) meta.scope = g.scope;
  if (g?.tokenEndpoint !== undefined) meta.tokenEndpoint = g.tokenEndpoint;
  if (g?.issuer !== undefined) meta.issuer = g.issuer;
  if (g?.clientId !== undefined) meta.clientId = g.clientId;
  const cookies = record.session ? JSON.stringify(Object.fromEntries(Object.entries(record.session.cookies).map(([k, v]) => [k, v.reveal()]))) : undefined;
  return [
    g !== undefined,
    g?.expiresAt ?? null,
    g?.obtainedAt ?? null,
    g?.revoked ? JSON.stringify(g.revoked) : null,
    g ? JSON.stringify(meta) : null,
    record.lastRefreshAt ?? null,
    record.refreshCount ?? null,
    record.lastFailure ? JSON.stringify(record.lastFailure) : null,
    record.session?.updatedAt ?? null,
    g ? seal(ring, sourceSealedAt(name, 'access_token'), g.accessToken.reveal()) : null,
    g?.refreshToken ? seal(ring, sourceSealedAt(name, 'refresh_token'), g.refreshToken.reveal()) : null,
    cookies !== undefined ? seal(ring, sourceSealedAt(name, 'session_cookies'), cookies) : null,
    ring.current.id,
  ];
}
